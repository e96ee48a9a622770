"""The broker wrapper against the real RabbitMQ: confirms, settling, dead-lettering."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aio_pika
import pytest

from baton.broker import COMMANDS, Broker, Delivery, Duplicate, Poison, PublishFailed, QueueSpec
from baton.broker.topology import dead_letter_queue
from baton.messages import SendText
from baton.types import Author
from tests.conftest import unique

pytestmark = pytest.mark.integration


def _spec() -> QueueSpec:
    name = unique("test.q")
    return QueueSpec(name, COMMANDS, (name,))


def _message(body: str) -> SendText:
    return SendText(
        idempotency_key=unique("k"),
        conversation_id=1,
        phone_number_id="900",
        to="5511",
        body=body,
        author=Author.SYSTEM,
    )


async def _dead_letters(
    amqp_url: str, queue: str, expected: int, timeout: float = 10
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Poll the DLQ until `expected` messages are there (or fail after `timeout`)."""
    connection = await aio_pika.connect(amqp_url)
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    try:
        channel = await connection.channel()
        dlq = await channel.get_queue(dead_letter_queue(queue))
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < expected and asyncio.get_running_loop().time() < deadline:
            message = await dlq.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            got.append(message)
    finally:
        await connection.close()
    return got


async def _wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_publish_is_confirmed_and_consumed(broker: Broker) -> None:
    spec = _spec()
    seen: list[SendText] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(SendText.model_validate_json(delivery.body))

    await broker.consume(spec, handle, prefetch=4, max_attempts=3)
    sent = _message("hello")
    await broker.publish(COMMANDS, spec.name, sent)
    await _wait_for(lambda: len(seen) == 1)
    assert seen[0] == sent


async def test_unroutable_command_is_not_confirmed(broker: Broker) -> None:
    with pytest.raises(PublishFailed):
        await broker.publish(COMMANDS, unique("nobody.listens"), _message("lost?"))


async def test_poison_goes_to_dead_letters_with_reason_and_does_not_block(
    broker: Broker, amqp_url: str
) -> None:
    spec = _spec()
    processed: list[str] = []

    async def handle(delivery: Delivery) -> None:
        message = SendText.model_validate_json(delivery.body)
        if message.body == "poison":
            raise Poison("cannot be processed")
        processed.append(message.body)

    await broker.consume(spec, handle, prefetch=1, max_attempts=3)
    await broker.publish(COMMANDS, spec.name, _message("poison"))
    await broker.publish(COMMANDS, spec.name, _message("next"))
    await _wait_for(lambda: processed == ["next"])
    parked = await _dead_letters(amqp_url, spec.name, expected=1)
    assert len(parked) == 1
    assert parked[0].headers["x-baton-error"] == "Poison: cannot be processed"
    assert parked[0].headers["x-baton-queue"] == spec.name


async def test_invalid_body_is_dead_lettered_not_retried(broker: Broker, amqp_url: str) -> None:
    spec = _spec()
    attempts: list[int] = []

    async def handle(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        SendText.model_validate_json(delivery.body)

    await broker.consume(spec, handle, prefetch=1, max_attempts=5)
    await broker.publish_raw(COMMANDS, spec.name, b'{"not": "a send"}', type=SendText.TYPE)
    parked = await _dead_letters(amqp_url, spec.name, expected=1)
    assert "ValidationError" in str(parked[0].headers["x-baton-error"])
    assert attempts == [1]


async def test_transient_failure_is_retried_then_succeeds(broker: Broker) -> None:
    spec = _spec()
    attempts: list[int] = []

    async def handle(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt < 3:
            raise RuntimeError("briefly broken")

    await broker.consume(spec, handle, prefetch=1, max_attempts=5)
    await broker.publish(COMMANDS, spec.name, _message("retry me"))
    await _wait_for(lambda: attempts[-1:] == [3])
    assert attempts == [1, 2, 3]


async def test_persistent_failure_is_dead_lettered_after_bounded_attempts(
    broker: Broker, amqp_url: str
) -> None:
    spec = _spec()
    attempts: list[int] = []

    async def handle(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise RuntimeError("always broken")

    await broker.consume(spec, handle, prefetch=1, max_attempts=3)
    await broker.publish(COMMANDS, spec.name, _message("doomed"))
    parked = await _dead_letters(amqp_url, spec.name, expected=1, timeout=20)
    assert attempts == [1, 2, 3]
    assert parked[0].headers["x-baton-attempts"] == 3
    assert "RuntimeError: always broken" in str(parked[0].headers["x-baton-error"])


async def _ready_messages(amqp_url: str, queue: str) -> int:
    """Messages waiting in `queue` (ready, not held by any consumer)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def test_duplicate_is_acked_once(broker: Broker, amqp_url: str) -> None:
    spec = _spec()
    seen: list[int] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery.attempt)
        raise Duplicate

    await broker.consume(spec, handle, prefetch=1, max_attempts=3)
    await broker.publish(COMMANDS, spec.name, _message("again"))
    await _wait_for(lambda: seen == [1])
    # Draining closes the consumer's channel: an unacknowledged delivery would be back in the
    # queue now (and seen again by nobody), so an empty queue proves the ack.
    await broker.drain(timeout=5)
    assert seen == [1]
    assert await _ready_messages(amqp_url, spec.name) == 0
    assert await _dead_letters(amqp_url, spec.name, expected=1, timeout=0.5) == []


async def test_a_cancelled_handler_never_acks(broker: Broker, amqp_url: str) -> None:
    spec = _spec()
    running: list[asyncio.Task[object]] = []
    started = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.append(task)
        started.set()
        await asyncio.Event().wait()  # until cancelled

    await broker.consume(spec, handle, prefetch=1, max_attempts=3)
    await broker.publish(COMMANDS, spec.name, _message("cancel me"))
    await asyncio.wait_for(started.wait(), 10)
    running[0].cancel()
    await _wait_for(lambda: running[0].done())
    await broker.drain(timeout=5)
    # Neither acked nor dead-lettered: back in the queue for the next consumer.
    assert await _ready_messages(amqp_url, spec.name) == 1
    assert await _dead_letters(amqp_url, spec.name, expected=1, timeout=0.5) == []


async def test_an_outage_is_waited_out_not_counted(broker: Broker, amqp_url: str) -> None:
    spec = _spec()
    attempts: list[int] = []

    async def handle(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if len(attempts) < 4:
            raise ConnectionRefusedError("the store is restarting")

    # One attempt allowed: an outage counted as a failure would dead-letter at once.
    await broker.consume(spec, handle, prefetch=1, max_attempts=1)
    await broker.publish(COMMANDS, spec.name, _message("wait for the store"))
    await _wait_for(lambda: len(attempts) == 4, timeout=20)
    await broker.drain(timeout=5)
    assert attempts == [1, 1, 1, 1]
    assert await _ready_messages(amqp_url, spec.name) == 0
    assert await _dead_letters(amqp_url, spec.name, expected=1, timeout=0.5) == []


async def test_drain_waits_for_in_flight_work(broker: Broker) -> None:
    spec = _spec()
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def handle(delivery: Delivery) -> None:
        started.set()
        await release.wait()
        finished.append("done")

    await broker.consume(spec, handle, prefetch=1, max_attempts=3)
    await broker.publish(COMMANDS, spec.name, _message("slow"))
    await asyncio.wait_for(started.wait(), 10)
    draining = asyncio.create_task(broker.drain(timeout=10))
    await asyncio.sleep(0)
    assert not draining.done()
    release.set()
    await asyncio.wait_for(draining, 10)
    assert finished == ["done"]
