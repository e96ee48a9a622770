"""Settling broker deliveries in exactly one place.

Outcomes of a handler:
- returns           → ack (its work is durably done before it returns)
- raises Duplicate  → ack, nothing else: the effect already happened
- raises Poison, a validation or a JSON error → dead-letter at once, with the reason in the headers
- raises anything else → retry after a backoff; after `max_attempts` → dead-letter with the reason
- raises an outage (the store or broker is down: `is_outage`) → tried again in place, with the
  same backoff, for as long as the outage lasts; never counted, never dead-lettered
- cancelled         → never acked: the broker redelivers it
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractQueue, DeliveryMode
from pydantic import ValidationError

from baton import metrics, tracing
from baton.backoff import Backoff
from baton.broker.errors import is_outage

log = structlog.get_logger()

RETRY = Backoff(base=0.2, cap=10.0)
# Between tries of a delivery whose handler met an outage (is_outage): the same policy, capped
# lower so work resumes within seconds of the dependency coming back.
OUTAGE = Backoff(base=0.2, cap=5.0)


class Duplicate(Exception):
    """The delivery's effect already happened; settle it without doing anything."""


class Poison(Exception):
    """The delivery can never be processed; park it in the dead-letter queue with this reason."""


@dataclass(frozen=True)
class Delivery:
    """A broker message as handlers see it: the body plus the envelope."""

    body: bytes
    type: str
    message_id: str
    correlation_id: str | None
    routing_key: str
    attempt: int  # 1 on the first delivery
    headers: Mapping[str, Any] = field(default_factory=dict)


def retry_delay(attempt: int) -> float:
    """How long a failed delivery waits before it goes back to the queue (the one policy)."""
    return RETRY.delay(attempt)


class Consumer:
    """One subscription on one channel; settles every delivery in `_settle`."""

    def __init__(
        self,
        queue: AbstractQueue,
        dead_letters: AbstractExchange,
        handler: Callable[[Delivery], Awaitable[None]],
        *,
        max_attempts: int,
    ) -> None:
        self._queue = queue
        self._dead_letters = dead_letters
        self._handler = handler
        self._max_attempts = max_attempts
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    @property
    def queue_name(self) -> str:
        return self._queue.name

    @property
    def busy(self) -> bool:
        """A handler of this subscription is still running."""
        return not self._idle.is_set()

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self, *, timeout: float) -> None:
        """Cancel the subscription, then wait for in-flight handlers to settle."""
        self._stopping = True
        if self._tag is not None:
            tag, self._tag = self._tag, None
            # A lost channel took the subscription with it.
            with contextlib.suppress(
                aio_pika.exceptions.ChannelInvalidStateError, aiormq.exceptions.AMQPError
            ):
                await self._queue.cancel(tag)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.error(
                "consumer.drain_timeout", queue=self.queue_name, in_flight=len(self._in_flight)
            )

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        self._idle.clear()
        try:
            await self._settle(message)
        except (aio_pika.exceptions.ChannelInvalidStateError, aiormq.exceptions.AMQPError) as exc:
            # The channel went away under the handler: the broker hands the delivery to the next
            # subscription (the supervisor re-subscribes), where the handler's idempotency makes
            # the work already done a duplicate.
            log.warning("consumer.settle_lost", queue=self.queue_name, error=repr(exc))
        finally:
            self._in_flight.discard(task)
            if not self._in_flight:
                self._idle.set()

    async def _settle(self, message: AbstractIncomingMessage) -> None:
        headers = dict(message.headers or {})
        delivery = Delivery(
            body=message.body,
            type=message.type or "",
            message_id=message.message_id or "",
            correlation_id=message.correlation_id,
            routing_key=message.routing_key or "",
            attempt=int(str(headers.get("x-delivery-count", 0))) + 1,
            headers=headers,
        )
        queue = self.queue_name
        started = time.perf_counter()
        with (
            structlog.contextvars.bound_contextvars(
                message_id=delivery.message_id, message_type=delivery.type, queue=queue
            ),
            tracing.consuming(queue, headers, message_id=delivery.message_id),
        ):
            try:
                await self._handle(message, delivery)
            finally:
                metrics.HANDLE_SECONDS.labels(queue=queue).observe(time.perf_counter() - started)

    async def _handle(self, message: AbstractIncomingMessage, delivery: Delivery) -> None:
        queue = self.queue_name
        outage = 0
        while True:
            try:
                await self._handler(delivery)
            except Duplicate:
                await message.ack()
                metrics.CONSUMED.labels(queue=queue, outcome="duplicate").inc()
            except (Poison, ValidationError, json.JSONDecodeError) as exc:
                tracing.failed(exc)
                await self._dead_letter(message, delivery, reason=_reason(exc))
                metrics.CONSUMED.labels(queue=queue, outcome="dead_lettered").inc()
            except Exception as exc:
                tracing.failed(exc)
                if is_outage(exc):
                    # The store or the broker is down, not this message bad: wait it out here,
                    # holding the delivery, without spending its attempts. If the channel goes
                    # (or we are stopping) it stays unsettled and the broker redelivers it.
                    if self._stopping or not _channel_open(message):
                        log.warning("consumer.outage_unsettled", error=_reason(exc))
                        return
                    outage += 1
                    delay = OUTAGE.delay(outage)
                    log.warning(
                        "consumer.outage",
                        error=_reason(exc),
                        waits=outage,
                        retry_in=round(delay, 3),
                    )
                    await asyncio.sleep(delay)
                    continue
                if delivery.attempt >= self._max_attempts:
                    await self._dead_letter(message, delivery, reason=_reason(exc))
                    metrics.CONSUMED.labels(queue=queue, outcome="dead_lettered").inc()
                else:
                    log.warning(
                        "consumer.retry",
                        attempt=delivery.attempt,
                        error=_reason(exc),
                        exc_info=True,
                    )
                    await asyncio.sleep(retry_delay(delivery.attempt))
                    await message.nack(requeue=True)
                    metrics.CONSUMED.labels(queue=queue, outcome="retried").inc()
            else:
                await message.ack()
                metrics.CONSUMED.labels(queue=queue, outcome="processed").inc()
            return

    async def _dead_letter(
        self, message: AbstractIncomingMessage, delivery: Delivery, *, reason: str
    ) -> None:
        """Republish to the DLQ with the reason (confirmed), then ack the original."""
        log.error("consumer.dead_lettered", attempt=delivery.attempt, reason=reason)
        parked = aio_pika.Message(
            message.body,
            content_type=message.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
            timestamp=message.timestamp,
            headers=dead_letter_headers(
                delivery.headers,
                reason=reason,
                attempts=delivery.attempt,
                queue=self.queue_name,
                routing_key=delivery.routing_key,
            ),
        )
        await self._dead_letters.publish(parked, routing_key=self.queue_name, mandatory=True)
        await message.ack()


def dead_letter_headers(
    headers: Mapping[str, Any], *, reason: str, attempts: int, queue: str, routing_key: str
) -> dict[str, Any]:
    """A parked message's headers: its own, plus why, after how many attempts, from where."""
    return {
        **headers,
        "x-baton-error": reason[:1000],
        "x-baton-attempts": attempts,
        "x-baton-queue": queue,
        "x-baton-routing-key": routing_key,
        "x-baton-failed-at": datetime.now(UTC).isoformat(),
    }


def _channel_open(message: AbstractIncomingMessage) -> bool:
    try:
        return not message.channel.is_closed
    except aio_pika.exceptions.ChannelInvalidStateError:
        return False


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
