"""Every subscription comes back by itself: broker restart, closed connection, lost channel.

Against a private RabbitMQ node (tests/faultinfra.py), so stopping it breaks nobody else's test.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest

from baton.broker import COMMANDS, Broker, BrokerUnavailable, Delivery, PublishFailed, QueueSpec
from baton.messages import SendText
from baton.types import Author
from tests.conftest import unique
from tests.faultinfra import PrivateBroker, broker_for_module
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rabbit() -> Iterator[PrivateBroker]:
    with broker_for_module() as node:
        yield node


@pytest.fixture
async def service_broker(rabbit: PrivateBroker) -> AsyncIterator[Broker]:
    name = unique("recovery")
    broker = Broker(rabbit.url, name=name)
    await broker.connect()
    yield broker
    await broker.drain(timeout=5)
    await broker.close()


def _message(body: str) -> SendText:
    return SendText(
        idempotency_key=unique("k"),
        conversation_id=1,
        phone_number_id="900",
        to="5511",
        body=body,
        author=Author.SYSTEM,
    )


class Collector:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def __call__(self, delivery: Delivery) -> None:
        self.bodies.append(SendText.model_validate_json(delivery.body).body)


async def _publish_until_confirmed(broker: Broker, queue: str, body: str) -> None:
    """Publish once the broker takes it (a publisher retries across the outage too)."""

    async def confirmed() -> bool:
        try:
            await broker.publish(COMMANDS, queue, _message(body), timeout=2)
        except (BrokerUnavailable, PublishFailed):
            return False
        return True

    await eventually(confirmed, timeout=60, what=f"{body!r} to be confirmed")


async def _consumed(rabbit: PrivateBroker, queue: str) -> bool:
    return (await rabbit.consumed_queues()).get(queue, 0) >= 1


@pytest.mark.parametrize("fault", ["restart", "close_connection"])
async def test_a_consumer_resumes_after_the_broker_comes_back(
    rabbit: PrivateBroker, service_broker: Broker, fault: str
) -> None:
    name = unique("test.recover")
    spec = QueueSpec(name, COMMANDS, (name,))
    seen = Collector()
    consumer = await service_broker.consume(spec, seen, prefetch=4, max_attempts=3)
    await service_broker.publish(COMMANDS, name, _message("before"))
    await eventually(lambda: _true(seen.bodies == ["before"]), what="the first message")

    started = time.monotonic()
    if fault == "restart":
        await rabbit.restart()
    else:
        assert await rabbit.close_connections(service_broker_name(service_broker)) == 1
    await _publish_until_confirmed(service_broker, name, "after")
    await eventually(lambda: _true(seen.bodies == ["before", "after"]), what="the resumed consumer")
    recovered = time.monotonic() - started
    assert consumer.consuming
    assert consumer.resubscriptions >= 1
    assert await eventually(lambda: _consumed(rabbit, name), what="a consumer on the queue")
    assert service_broker.not_ready_reasons() == []
    print(f"\n{fault}: consumer resumed {recovered:.2f}s after the fault")


async def test_a_channel_closed_by_the_broker_is_reopened(
    rabbit: PrivateBroker, service_broker: Broker
) -> None:
    name = unique("test.recover")
    spec = QueueSpec(name, COMMANDS, (name,))
    seen = Collector()
    consumer = await service_broker.consume(spec, seen, prefetch=4, max_attempts=3)
    # Deleting the queue makes the broker cancel the subscription (as when a quorum queue's
    # leader goes away); the consumer must notice, declare the queue again and resume.
    connection = await aio_pika.connect(rabbit.url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(name)
    finally:
        await connection.close()
    await eventually(lambda: _true(consumer.resubscriptions >= 1), what="a re-subscription")
    await _publish_until_confirmed(service_broker, name, "after delete")
    await eventually(lambda: _true(seen.bodies == ["after delete"]), what="the resumed consumer")


async def test_not_ready_names_the_queue_while_the_broker_is_down(
    rabbit: PrivateBroker, service_broker: Broker
) -> None:
    name = unique("test.recover")
    spec = QueueSpec(name, COMMANDS, (name,))
    await service_broker.consume(spec, Collector(), prefetch=4, max_attempts=3)
    assert service_broker.not_ready_reasons() == []
    await rabbit.stop()
    try:
        await eventually(
            lambda: _true(service_broker.not_ready_reasons() == ["broker unreachable"]),
            what="the broker to be reported unreachable",
        )
    finally:
        await rabbit.start()
    await eventually(
        lambda: _true(service_broker.not_ready_reasons() == []), timeout=60, what="ready again"
    )


def service_broker_name(broker: Broker) -> str:
    return broker.name


async def _true(value: bool) -> bool:
    return value
