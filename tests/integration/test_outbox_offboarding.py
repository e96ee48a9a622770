"""The outbox refuses sends for an offboarded number (real broker and database, the WhatsApp
simulator as Meta): no Graph API call, recorded failed once with the reason, one SendFailed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from baton.broker import EVENTS, Broker
from baton.messages import SendFailed
from baton.settings import NumbersConfig
from baton.store import PostgresStore
from baton.types import Author
from simulator import Simulator
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


class FailedTap:
    """Every `event.send_failed` published while the test runs."""

    def __init__(self) -> None:
        self.failed: list[SendFailed] = []

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self.failed.append(SendFailed.model_validate_json(message.body))

    def of(self, idempotency_key: str) -> list[SendFailed]:
        return [f for f in self.failed if f.idempotency_key == idempotency_key]


@pytest.fixture
async def failed(amqp_url: str) -> AsyncIterator[FailedTap]:
    tap = FailedTap()
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EVENTS)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=SendFailed.TYPE)
        await queue.consume(tap.on_message, no_ack=True)
        yield tap


@pytest.fixture
async def publisher(broker: Broker) -> Broker:
    await broker.declare_topology()
    return broker


async def test_sends_for_an_offboarded_number_never_reach_meta_and_fail_once(
    amqp_url: str,
    pg_url: str,
    sim: Simulator,
    store: PostgresStore,
    publisher: Broker,
    failed: FailedTap,
) -> None:
    gone, connected = number_id(), number_id()
    wa_id = customer_id()
    gone_chat = (await conversations(store, gone, [wa_id]))[wa_id]
    live_chat = (await conversations(store, connected, [wa_id]))[wa_id]
    epoch = (await store.conversation(gone, wa_id)).epoch
    doomed = [
        request(gone, wa_id, gone_chat, "system #0"),
        request(gone, wa_id, gone_chat, "bot #1", author=Author.BOT, epoch=epoch),
        request(gone, wa_id, gone_chat, "agent #2", author=Author.HUMAN),
    ]
    live = [request(connected, wa_id, live_chat, f"live #{i}") for i in range(3)]
    # Queued while the number was still connected, then it is offboarded before they go out.
    await publish(publisher, [s for pair in zip(doomed, live, strict=True) for s in pair])
    assert await store.disable_number(
        phone_number_id=gone,
        display_phone_number=None,
        reason="PARTNER_REMOVED:ACCOUNT_DISCONNECTED",
        now=datetime.now(UTC),
    ) == [gone]
    numbers = NumbersConfig(numbers={**coexistence(gone).numbers, **coexistence(connected).numbers})
    async with running_outbox(amqp_url, pg_url, sim.base_url, numbers):
        await sim.wait_for_messages(3, phone_number_id=connected, timeout=30)

        async def all_failed() -> bool:
            return all(failed.of(s.idempotency_key) for s in doomed)

        await eventually(all_failed, what="a SendFailed for every send of the offboarded number")
        # A redelivery is a duplicate (nothing announced again); the marker behind it in the
        # same conversation shows the redelivery was handled.
        marker = request(gone, wa_id, gone_chat, "marker #3")
        await publish(publisher, [doomed[0], marker])
        await eventually(lambda: _async(failed.of(marker.idempotency_key)), what="the marker")

    assert sim.messages(gone) == []
    assert len(sim.accepted(connected)) == 3
    for send in [*doomed, marker]:
        [event] = failed.of(send.idempotency_key)
        assert (event.reason, event.error_code, event.author) == (
            "number_offboarded",
            None,
            send.author,
        )
    rows = await store.pool.fetch(
        "SELECT status, error_code, error_reason, wamid FROM messages"
        " WHERE idempotency_key = ANY($1::text[])",
        [s.idempotency_key for s in [*doomed, marker]],
    )
    assert [dict(r) for r in rows] == [
        {"status": "failed", "error_code": None, "error_reason": "number_offboarded", "wamid": None}
    ] * 4


async def _async(value: list[SendFailed]) -> list[SendFailed]:
    return value
