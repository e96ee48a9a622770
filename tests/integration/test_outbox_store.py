"""The outbox area of the PostgreSQL store: claims, attempts, numbers and replicas."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from baton.store import PostgresStore
from baton.store.outbox_records import ClaimStatus
from baton.store.records import DeliveryStatus, NewOutbound, StatusUpdate
from baton.types import Author
from tests.outbox_harness import customer_id, number_id

pytestmark = pytest.mark.integration


async def _outbound(store: PostgresStore) -> NewOutbound:
    pnid = number_id()
    conversation = await store.conversation(pnid, customer_id())
    return NewOutbound(
        idempotency_key=uuid.uuid4().hex,
        conversation_id=conversation.id,
        phone_number_id=pnid,
        author=Author.HUMAN,
        body="Olá",
        agent_id="ana",
    )


async def test_a_send_is_claimed_once_until_its_outcome_is_known(store: PostgresStore) -> None:
    message = await _outbound(store)
    first = await store.claim_outbound(message, abandon_after_seconds=15)
    assert (first.status, first.attempt, first.in_doubt) == (ClaimStatus.CLAIMED, 1, False)
    assert first.message.status == "pending"
    again = await store.claim_outbound(message, abandon_after_seconds=15)
    assert again.status is ClaimStatus.BUSY
    assert 14 < again.busy_seconds <= 15

    await store.release_outbound_attempt(message.idempotency_key)  # a retryable error
    retry = await store.claim_outbound(message, abandon_after_seconds=15)
    assert (retry.status, retry.attempt, retry.in_doubt) == (ClaimStatus.CLAIMED, 2, False)

    await store.complete_outbound(message.idempotency_key, "wamid.OUT1", datetime.now(UTC))
    done = await store.claim_outbound(message, abandon_after_seconds=15)
    assert done.status is ClaimStatus.SENT
    assert done.message.wamid == "wamid.OUT1"
    assert done.attempt == 2


async def test_an_abandoned_attempt_is_claimed_again_in_doubt(store: PostgresStore) -> None:
    message = await _outbound(store)
    await store.claim_outbound(message, abandon_after_seconds=15)
    # Its holder crashed: no outcome was ever recorded.
    resend = await store.claim_outbound(message, abandon_after_seconds=0)
    assert (resend.status, resend.attempt, resend.in_doubt) == (ClaimStatus.CLAIMED, 2, True)


async def test_a_permanent_failure_is_final(store: PostgresStore) -> None:
    message = await _outbound(store)
    await store.claim_outbound(message, abandon_after_seconds=15)
    await store.fail_outbound(message.idempotency_key, error_code=131047, reason="window")
    claim = await store.claim_outbound(message, abandon_after_seconds=15)
    assert claim.status is ClaimStatus.FAILED
    assert claim.message.error_code == 131047
    assert claim.attempt == 1


async def test_a_dead_lettered_send_can_be_replayed(store: PostgresStore) -> None:
    message = await _outbound(store)
    await store.claim_outbound(message, abandon_after_seconds=15)
    await store.give_up_outbound(message.idempotency_key, error_code=131000, reason="gave up")
    replay = await store.claim_outbound(message, abandon_after_seconds=15)
    assert (replay.status, replay.attempt) == (ClaimStatus.CLAIMED, 2)


async def test_sent_messages_take_later_delivery_statuses(store: PostgresStore) -> None:
    message = await _outbound(store)
    await store.claim_outbound(message, abandon_after_seconds=15)
    wamid = f"wamid.{uuid.uuid4().hex}"
    await store.complete_outbound(message.idempotency_key, wamid, datetime.now(UTC))
    await store.record_status(
        StatusUpdate(
            phone_number_id=message.phone_number_id,
            wamid=wamid,
            status=DeliveryStatus.DELIVERED,
            at=datetime.now(UTC),
        )
    )
    claim = await store.claim_outbound(message, abandon_after_seconds=15)
    assert (claim.message.wamid, claim.message.status) == (wamid, "delivered")


async def test_numbers_and_replicas(store: PostgresStore) -> None:
    pnid = number_id()
    assert await store.register_outbox_number(pnid)
    assert not await store.register_outbox_number(pnid)
    assert pnid in await store.outbox_numbers()

    a, b = f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    await store.outbox_heartbeat(a, ttl_seconds=60)
    live = await store.outbox_heartbeat(b, ttl_seconds=60)
    assert {a, b} <= set(live)
    await store.outbox_leave(a)
    assert a not in await store.outbox_heartbeat(b, ttl_seconds=60)
