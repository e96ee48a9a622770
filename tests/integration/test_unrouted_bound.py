"""`webhooks.unrouted` is bounded (length, bytes, age, oldest dropped) and the account-level
fields Baton uses no longer land there: they are bound to `history.webhooks`."""

from __future__ import annotations

import aio_pika
import aiormq
import pytest
from aiormq.abc import FieldTable

from baton.broker import WEBHOOKS, Broker
from baton.broker.topology import HISTORY_WEBHOOKS, WEBHOOKS_UNROUTED
from tests.conftest import unique

pytestmark = pytest.mark.integration


async def _declare(amqp_url: str, name: str, arguments: FieldTable) -> bool:
    """Whether the broker accepts this declaration (it refuses different arguments)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments=arguments)
        return True
    except aiormq.exceptions.ChannelPreconditionFailed:
        return False
    finally:
        await connection.close()


async def test_the_unrouted_queue_is_declared_with_its_bounds(
    broker: Broker, amqp_url: str
) -> None:
    await broker.declare_topology()
    arguments = WEBHOOKS_UNROUTED.arguments()
    assert arguments["x-overflow"] == "drop-head"
    assert "x-dead-letter-exchange" not in arguments  # what it drops must not pile up elsewhere
    assert await _declare(amqp_url, WEBHOOKS_UNROUTED.name, arguments)
    for bound in ("x-max-length", "x-max-length-bytes", "x-message-ttl"):
        unbounded = {k: v for k, v in arguments.items() if k != bound}
        assert not await _declare(amqp_url, WEBHOOKS_UNROUTED.name, unbounded), bound


async def _take(amqp_url: str, name: str, message_id: str) -> bool:
    """Remove our message from `name` (leaving anything else there); whether it was there."""
    connection = await aio_pika.connect(amqp_url)
    try:
        queue = await (await connection.channel()).declare_queue(name, passive=True)
        # Others stay unacknowledged, so they go back to the queue when the connection closes.
        while (message := await queue.get(fail=False, no_ack=False)) is not None:
            if message.message_id == message_id:
                await message.ack()
                return True
        return False
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("field", "queue"),
    [
        ("calls", WEBHOOKS_UNROUTED.name),
        ("phone_number_quality_update", WEBHOOKS_UNROUTED.name),
        ("message_template_status_update", HISTORY_WEBHOOKS.name),
        ("template_category_update", HISTORY_WEBHOOKS.name),
        ("user_preferences", HISTORY_WEBHOOKS.name),
    ],
)
async def test_each_field_lands_where_it_is_used(
    broker: Broker, amqp_url: str, field: str, queue: str
) -> None:
    await broker.declare_topology()
    message_id = unique("routing-probe")
    await broker.publish_raw(WEBHOOKS, field, b"{}", type="webhook.change", message_id=message_id)
    # Published with a confirm, and nobody consumes here: it is in its queue now.
    assert await _take(amqp_url, queue, message_id)
