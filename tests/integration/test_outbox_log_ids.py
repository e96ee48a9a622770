"""Every outbox log line about a message carries its conversation id and message id (issue 17),
and none carries the body."""

from __future__ import annotations

import math

import pytest
import structlog
from structlog.typing import EventDict

from baton.broker import Broker
from baton.messages import SendText
from baton.store import PostgresStore
from services.outbox.retry import RetryPolicy
from services.outbox.worker import WorkerConfig
from simulator import FaultKind, Simulator
from tests.outbox_harness import (
    coexistence,
    conversations,
    customer_id,
    number_id,
    publish,
    request,
    running_outbox,
)
from tests.waiting import eventually

pytestmark = pytest.mark.integration

# Per message, from the intake to the number's worker and the handlers it calls.
_PER_MESSAGE = {"outbox.sent", "outbox.retry", "outbox.send_failed"}


@pytest.fixture
async def publisher(broker: Broker) -> Broker:
    await broker.declare_topology()
    return broker


def _about(logs: list[EventDict], send: SendText) -> list[EventDict]:
    return [e for e in logs if e.get("idempotency_key") == send.idempotency_key]


async def test_log_lines_about_a_send_carry_its_conversation_and_message_ids(
    amqp_url: str, pg_url: str, sim: Simulator, store: PostgresStore, publisher: Broker
) -> None:
    pnid = number_id()
    sim.register(pnid, coexistence=True)
    sim.inject(FaultKind.SERVER_ERROR, phone_number_id=pnid, count=1)  # a retry, then sent
    wa_ids = [customer_id(0), customer_id(1)]
    ids = await conversations(store, pnid, wa_ids)
    retried = request(pnid, wa_ids[0], ids[wa_ids[0]], "secret body one")
    sent = request(pnid, wa_ids[1], ids[wa_ids[1]], "secret body two")
    worker = WorkerConfig(policy=RetryPolicy(transient_base=0.05), window_margin=math.inf)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        async with running_outbox(amqp_url, pg_url, sim.base_url, coexistence(pnid), worker=worker):
            await publish(publisher, [retried])
            await sim.wait_for_messages(1, phone_number_id=pnid, timeout=30)  # after its 5xx
            await publish(publisher, [sent])
            await sim.wait_for_messages(2, phone_number_id=pnid, timeout=30)

            async def both_logged() -> bool:
                return sum(1 for e in logs if e["event"] == "outbox.sent") == 2

            await eventually(both_logged, what="two outbox.sent lines")

    per_message = [e for e in logs if e["event"] in _PER_MESSAGE]
    assert {e["event"] for e in _about(per_message, retried)} == {"outbox.retry", "outbox.sent"}
    assert {e["event"] for e in _about(per_message, sent)} == {"outbox.sent"}
    message_ids = set()
    for send in (retried, sent):
        lines = _about(per_message, send)
        for line in lines:
            assert line["conversation_id"] == send.conversation_id, line
            assert line["phone_number_id"] == pnid, line
        # The broker message id, set at publish: one per delivery, on each of its lines.
        (message_id,) = {line["message_id"] for line in lines}
        assert message_id
        message_ids.add(message_id)
    assert len(message_ids) == 2
    # Every per-message line is about one of these two (none lost its ids).
    assert len(per_message) == len(_about(per_message, retried)) + len(_about(per_message, sent))
    assert not any("secret body" in repr(e) for e in logs)
