"""The PostgreSQL adapter against the real server: idempotency and status ordering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from baton.store import PostgresStore
from baton.store.records import DeliveryStatus, NewInbound, NewOutbound, StatusUpdate
from baton.types import Author, Direction
from tests.conftest import unique

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _inbound(wa_id: str, wamid: str, at: datetime = T0, body: str = "oi") -> NewInbound:
    return NewInbound(
        phone_number_id="900000000000001",
        wa_id=wa_id,
        wamid=wamid,
        type="text",
        body=body,
        sent_at=at,
        payload={"id": wamid, "text": {"body": body}},
        customer_name="Ana",
    )


async def test_migrations_are_idempotent(store: PostgresStore) -> None:
    assert await store.migrate() == []


async def test_inbound_is_stored_once(store: PostgresStore) -> None:
    wa_id, wamid = unique("55"), unique("wamid")
    conversation, stored = await store.record_inbound(_inbound(wa_id, wamid))
    again, stored_again = await store.record_inbound(_inbound(wa_id, wamid))
    assert stored
    assert not stored_again
    assert again.id == conversation.id
    messages = await store.recent_messages(conversation.id, limit=10)
    assert [m.wamid for m in messages] == [wamid]
    assert messages[0].author == Author.CUSTOMER
    assert messages[0].direction == Direction.INBOUND
    assert conversation.customer_name == "Ana"


async def test_inbound_for_routing_stores_once_and_reads_the_state_with_it(
    store: PostgresStore,
) -> None:
    wa_id = unique("55")
    first = await store.record_inbound_for_routing(_inbound(wa_id, f"{wa_id}-1"))
    # A customer's first message: the conversation is created (with the name) and returned.
    assert (first.stored_now, first.routed) == (True, False)
    assert first.conversation.customer_name == "Ana"
    assert first.state.conversation_id == first.conversation.id
    assert first.state.version == 0

    again = await store.record_inbound_for_routing(_inbound(wa_id, f"{wa_id}-1"))
    assert (again.stored_now, again.routed) == (False, False)  # stored, not yet routed
    await store.mark_routed("900000000000001", [f"{wa_id}-1"])
    routed = await store.record_inbound_for_routing(_inbound(wa_id, f"{wa_id}-1"))
    assert (routed.stored_now, routed.routed) == (False, True)  # a redelivery to drop

    renamed = await store.record_inbound_for_routing(
        _inbound(wa_id, f"{wa_id}-2", T0 + timedelta(seconds=5)).model_copy(
            update={"customer_name": "Ana Maria"}
        )
    )
    assert renamed.stored_now and renamed.conversation.id == first.conversation.id
    assert renamed.conversation.customer_name == "Ana Maria"
    assert renamed.conversation.last_activity_at == T0 + timedelta(seconds=5)
    messages = await store.recent_messages(first.conversation.id, limit=10)
    assert [m.wamid for m in messages] == [f"{wa_id}-1", f"{wa_id}-2"]


async def test_recent_messages_are_oldest_first_and_bounded(store: PostgresStore) -> None:
    wa_id = unique("55")
    for i in range(5):
        await store.record_inbound(_inbound(wa_id, f"{wa_id}-{i}", T0 + timedelta(seconds=i)))
    conversation = await store.conversation("900000000000001", wa_id)
    latest = await store.recent_messages(conversation.id, limit=3)
    assert [m.wamid for m in latest] == [f"{wa_id}-2", f"{wa_id}-3", f"{wa_id}-4"]
    assert conversation.last_activity_at == T0 + timedelta(seconds=4)


async def test_outbound_is_begun_once_per_idempotency_key(store: PostgresStore) -> None:
    conversation = await store.conversation("900000000000001", unique("55"))
    key = unique("send")
    first = await store.begin_outbound(
        NewOutbound(
            idempotency_key=key,
            conversation_id=conversation.id,
            phone_number_id=conversation.phone_number_id,
            author=Author.BOT,
            body="olá",
            epoch=0,
        )
    )
    second = await store.begin_outbound(
        NewOutbound(
            idempotency_key=key,
            conversation_id=conversation.id,
            phone_number_id=conversation.phone_number_id,
            author=Author.BOT,
            body="olá",
            epoch=0,
        )
    )
    assert first.id == second.id
    assert first.wamid is None
    await store.complete_outbound(key, "wamid.OUT1" + key, T0)
    third = await store.begin_outbound(
        NewOutbound(
            idempotency_key=key,
            conversation_id=conversation.id,
            phone_number_id=conversation.phone_number_id,
            author=Author.BOT,
            body="olá",
        )
    )
    assert third.wamid == "wamid.OUT1" + key


async def test_status_before_send_record_is_applied_later_and_never_downgraded(
    store: PostgresStore,
) -> None:
    conversation = await store.conversation("900000000000001", unique("55"))
    key, wamid = unique("send"), unique("wamid.OUT")
    await store.begin_outbound(
        NewOutbound(
            idempotency_key=key,
            conversation_id=conversation.id,
            phone_number_id=conversation.phone_number_id,
            author=Author.SYSTEM,
            body="aviso",
        )
    )

    def status(s: DeliveryStatus) -> StatusUpdate:
        return StatusUpdate(phone_number_id="900000000000001", wamid=wamid, status=s, at=T0)

    # `delivered` overtakes the outbox's own record of the send.
    assert await store.record_status(status(DeliveryStatus.DELIVERED))
    assert not await store.record_status(status(DeliveryStatus.DELIVERED))
    await store.complete_outbound(key, wamid, T0)
    [message] = await store.recent_messages(conversation.id, limit=1)
    assert message.status == "delivered"
    # A late `sent` must not downgrade it; `read` upgrades it.
    await store.record_status(status(DeliveryStatus.SENT))
    [message] = await store.recent_messages(conversation.id, limit=1)
    assert message.status == "delivered"
    await store.record_status(status(DeliveryStatus.READ))
    [message] = await store.recent_messages(conversation.id, limit=1)
    assert message.status == "read"


async def test_raw_change_is_kept_once(store: PostgresStore) -> None:
    key = unique("change")
    value = {"history": [{"metadata": {"phase": 0, "chunk_order": 1, "progress": 10}}]}
    assert await store.record_raw_change(
        field="history", phone_number_id="900", dedupe_key=key, value=value
    )
    assert not await store.record_raw_change(
        field="history", phone_number_id="900", dedupe_key=key, value=value
    )
