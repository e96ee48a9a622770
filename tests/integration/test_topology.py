"""The declared topology survives a broker restart: durable exchanges, durable quorum queues.

RabbitMQ refuses to redeclare an existing queue or exchange with different properties
(PRECONDITION_FAILED), so asking for a classic or a transient one proves what the code declared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractRobustConnection
from aiormq.abc import FieldTable

from baton.broker import Broker
from baton.broker.topology import (
    COMMANDS,
    DLX,
    EVENTS,
    QUEUES,
    UNROUTED,
    WEBHOOKS,
    dead_letter_queue,
    outbox_number_queue,
)

pytestmark = pytest.mark.integration

NUMBER_QUEUE = outbox_number_queue("900000000000999")  # declared when outbox meets a number
EVERY_QUEUE = sorted(
    {
        *QUEUES,
        NUMBER_QUEUE.name,
        *(dead_letter_queue(name) for name in (*QUEUES, NUMBER_QUEUE.name)),
    }
)


@pytest.fixture
async def connection(broker: Broker, amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    await broker.declare_topology()
    await broker.declare_queue(NUMBER_QUEUE)
    conn = await aio_pika.connect_robust(amqp_url)
    yield conn
    await conn.close()


async def _refused(
    conn: AbstractRobustConnection, queue: str, *, durable: bool, arguments: FieldTable
) -> bool:
    channel = await conn.channel()
    try:
        await channel.declare_queue(queue, durable=durable, arguments=arguments)
    except aiormq.exceptions.ChannelPreconditionFailed:
        return True
    await channel.close()
    return False


@pytest.mark.parametrize("queue", EVERY_QUEUE)
async def test_every_queue_is_a_durable_quorum_queue(
    connection: AbstractRobustConnection, queue: str
) -> None:
    classic: FieldTable = {"x-queue-type": "classic"}
    assert await _refused(connection, queue, durable=True, arguments=classic), (
        f"{queue} is not a quorum queue"
    )
    assert await _refused(connection, queue, durable=False, arguments={}), f"{queue} is transient"


@pytest.mark.parametrize("exchange", [WEBHOOKS, COMMANDS, EVENTS, DLX, UNROUTED])
async def test_every_exchange_is_durable(
    connection: AbstractRobustConnection, exchange: str
) -> None:
    channel = await connection.channel()
    kind = {UNROUTED: aio_pika.ExchangeType.FANOUT, DLX: aio_pika.ExchangeType.DIRECT}.get(
        exchange, aio_pika.ExchangeType.TOPIC
    )
    arguments: FieldTable = {"alternate-exchange": UNROUTED} if exchange == WEBHOOKS else {}
    # The same declaration as the code's is accepted; only durability differs below.
    await channel.declare_exchange(exchange, kind, durable=True, arguments=arguments)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await channel.declare_exchange(exchange, kind, durable=False, arguments=arguments)
