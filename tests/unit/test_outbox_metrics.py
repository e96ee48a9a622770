"""Per-number gauges: exported while a replica is a number's sender, gone when it lets go."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from services.outbox import metrics


def _held(pnid: str) -> float | None:
    return REGISTRY.get_sample_value("baton_outbox_held_sends", {"phone_number_id": pnid})


def _free(pnid: str) -> float | None:
    return REGISTRY.get_sample_value("baton_outbox_free_send_slots", {"phone_number_id": pnid})


def test_a_number_reports_while_its_sender_holds_it() -> None:
    pnid = "9" + uuid.uuid4().hex[:12]
    sender = object()
    metrics.report_number(pnid, sender, held=lambda: 7, free=lambda: 3)
    assert (_held(pnid), _free(pnid)) == (7, 3)
    metrics.forget_number(pnid, sender)
    assert (_held(pnid), _free(pnid)) == (None, None)
    metrics.forget_number(pnid, sender)  # letting go twice is harmless


def test_the_previous_sender_letting_go_late_keeps_the_new_senders_series() -> None:
    # In one process (tests), the new sender may activate before the old one notices it lost
    # the number: the old one's cleanup must not remove what the new one exports.
    pnid = "9" + uuid.uuid4().hex[:12]
    old, new = object(), object()
    metrics.report_number(pnid, old, held=lambda: 1, free=lambda: 0)
    metrics.report_number(pnid, new, held=lambda: 5, free=lambda: 2)
    metrics.forget_number(pnid, old)
    assert (_held(pnid), _free(pnid)) == (5, 2)
    metrics.forget_number(pnid, new)
    assert _held(pnid) is None
