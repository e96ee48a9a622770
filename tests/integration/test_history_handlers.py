"""History's webhook handler against the real store, fed deliveries exactly as ingest makes them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from baton.broker import Delivery, Duplicate, Poison
from baton.messages import WebhookChange
from baton.store import PostgresStore
from baton.store.history_records import ImportState, SyncStatus, SyncType
from baton.types import JSON
from services.history.handlers import History
from services.ingest.changes import split
from simulator.webhooks import (
    envelope,
    history_chunk,
    history_declined,
    history_media,
    history_message,
    media_message,
    partner_removed,
    state_sync_contact,
)
from tests.conftest import unique

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CUSTOMER = "5511988887777"


def deliveries_of(*changes: JSON, waba_id: str = "800000000000001") -> list[Delivery]:
    return [
        Delivery(
            body=c.body,
            type=WebhookChange.TYPE,
            message_id=c.message_id,
            correlation_id=None,
            routing_key=c.routing_key,
            attempt=1,
        )
        for c in split(envelope(list(changes), waba_id=waba_id), NOW)
    ]


def _history(store: PostgresStore) -> History:
    return History(store, batch_size=7, clock=lambda: NOW)


async def _rows(store: PostgresStore, pnid: str) -> list[tuple[str, str, str, bool]]:
    rows = await store.pool.fetch(
        "SELECT wamid, author, type, imported FROM messages WHERE phone_number_id = $1"
        " ORDER BY sent_at",
        pnid,
    )
    return [(r["wamid"], r["author"], r["type"], r["imported"]) for r in rows]


def history_thread(pnid: str, n: int, start: int = 1_760_000_000) -> list[JSON]:
    return [
        history_message(
            CUSTOMER if i % 2 else "15550001111",
            f"m{i}",
            to=None if i % 2 else CUSTOMER,
            wamid=f"{pnid}-{i:03d}",
            timestamp=start + i,
        )
        for i in range(n)
    ]


async def test_a_chunk_is_imported_once_and_its_redelivery_is_a_duplicate(
    store: PostgresStore,
) -> None:
    pnid = unique("9")
    await store.onboard_number(pnid, now=NOW, deadline=NOW)
    [delivery] = deliveries_of(
        history_chunk(pnid, {CUSTOMER: history_thread(pnid, 20)}, progress=100)
    )
    history = _history(store)
    await history.on_webhook(delivery)
    with pytest.raises(Duplicate):
        await history.on_webhook(delivery)
    rows = await _rows(store, pnid)
    assert len(rows) == 20
    assert rows[0] == (f"{pnid}-000", "app", "text", True)
    assert rows[1] == (f"{pnid}-001", "customer", "text", True)
    status = await store.number_history(pnid)
    assert status is not None
    assert status.progress.state is ImportState.COMPLETED
    assert status.progress.messages_imported == 20
    # History arriving proves Meta has the history sync request.
    sync = status.sync(SyncType.HISTORY)
    assert sync is not None
    assert sync.status is SyncStatus.ACCEPTED


async def test_declined_history_is_recorded(store: PostgresStore) -> None:
    pnid = unique("9")
    [delivery] = deliveries_of(history_declined(pnid))
    await _history(store).on_webhook(delivery)
    status = await store.number_history(pnid)
    assert status is not None
    assert status.progress.state is ImportState.DECLINED
    with pytest.raises(Duplicate):
        await _history(store).on_webhook(delivery)


async def test_recent_media_fills_in_the_placeholders(store: PostgresStore) -> None:
    pnid = unique("9")
    placeholder = history_message(CUSTOMER, None, wamid=f"{pnid}-p", timestamp=1_760_000_000)
    [chunk] = deliveries_of(history_chunk(pnid, {CUSTOMER: [placeholder]}))
    image = media_message(
        CUSTOMER, "image", caption="nota", wamid=f"{pnid}-p", timestamp=1_760_000_000
    )
    [media] = deliveries_of(history_media(pnid, [image]))
    await _history(store).on_webhook(chunk)
    await _history(store).on_webhook(media)
    assert await _rows(store, pnid) == [(f"{pnid}-p", "customer", "image", True)]
    body = await store.pool.fetchval("SELECT body FROM messages WHERE wamid = $1", f"{pnid}-p")
    assert body == "[image] nota"


async def test_malformed_messages_are_kept_aside_and_the_rest_imported(
    store: PostgresStore,
) -> None:
    pnid = unique("9")
    messages = history_thread(pnid, 5)
    messages[2] = {"from": CUSTOMER, "id": f"{pnid}-bad", "type": "text"}
    [delivery] = deliveries_of(history_chunk(pnid, {CUSTOMER: messages}))
    await _history(store).on_webhook(delivery)
    assert len(await _rows(store, pnid)) == 4
    parked = await store.pool.fetch(
        "SELECT value FROM raw_changes WHERE phone_number_id = $1 AND field = 'history.rejected'",
        pnid,
    )
    assert [p["value"]["raw"]["id"] for p in parked] == [f"{pnid}-bad"]
    status = await store.number_history(pnid)
    assert status is not None
    assert status.progress.messages_rejected == 1


async def test_a_value_without_metadata_is_poison(store: PostgresStore) -> None:
    [delivery] = deliveries_of({"field": "history", "value": {"history": []}})
    with pytest.raises(Poison):
        await _history(store).on_webhook(delivery)


async def test_contacts_are_added_renamed_and_removed(store: PostgresStore) -> None:
    pnid = unique("9")
    other = "5511977776666"
    history = _history(store)
    for change in (
        state_sync_contact(pnid, CUSTOMER, full_name="Ana Souza", timestamp=1_770_000_000),
        state_sync_contact(pnid, other, full_name="Bruno", timestamp=1_770_000_000),
        state_sync_contact(pnid, CUSTOMER, full_name="Ana (VIP)", timestamp=1_770_000_100),
        state_sync_contact(pnid, other, action="remove", timestamp=1_770_000_100),
    ):
        for delivery in deliveries_of(change):
            await history.on_webhook(delivery)
    assert await store.contact_names(pnid, [CUSTOMER, other]) == {CUSTOMER: "Ana (VIP)"}


async def test_offboarding_disables_the_number_and_later_webhooks_are_ignored(
    store: PostgresStore,
) -> None:
    pnid, display = unique("9"), unique("1555")[:15]
    await store.onboard_number(pnid, now=NOW, deadline=NOW)
    history = _history(store)
    [first] = deliveries_of(
        history_chunk(pnid, {CUSTOMER: history_thread(pnid, 3)}, display_phone_number=display)
    )
    await history.on_webhook(first)  # teaches the display number
    [removed] = deliveries_of(partner_removed(display))
    await history.on_webhook(removed)
    assert await store.number_disabled(pnid)

    later = deliveries_of(
        history_chunk(
            pnid,
            {CUSTOMER: history_thread(pnid, 9, start=1_760_100_000)},
            chunk_order=2,
            display_phone_number=display,
        ),
        state_sync_contact(pnid, CUSTOMER, full_name="Ana", display_phone_number=display),
    )
    for delivery in later:
        await history.on_webhook(delivery)  # acknowledged: no exception
    assert len(await _rows(store, pnid)) == 3
    assert await store.contact_names(pnid, [CUSTOMER]) == {}
