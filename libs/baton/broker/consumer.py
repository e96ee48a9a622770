"""Settling broker deliveries in exactly one place.

Outcomes of a handler:
- returns           → ack (its work is durably done before it returns)
- raises Duplicate  → ack, nothing else: the effect already happened
- raises Poison, a validation or a JSON error → dead-letter at once, with the reason in the headers
- raises anything else → retry after a backoff; after `max_attempts` → dead-letter with the reason
- cancelled         → never acked: the broker redelivers it
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractQueue, DeliveryMode
from pydantic import ValidationError

from baton import metrics

log = structlog.get_logger()

RETRY_BASE_SECONDS = 0.2
RETRY_CAP_SECONDS = 10.0


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
    """Exponential backoff with full jitter, capped."""
    return random.uniform(0, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1)))


class Consumer:
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

    @property
    def queue_name(self) -> str:
        return self._queue.name

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self, *, timeout: float) -> None:
        """Cancel the subscription, then wait for in-flight handlers to settle."""
        if self._tag is not None:
            await self._queue.cancel(self._tag)
            self._tag = None
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
        with structlog.contextvars.bound_contextvars(
            message_id=delivery.message_id, message_type=delivery.type, queue=queue
        ):
            try:
                await self._handler(delivery)
            except Duplicate:
                await message.ack()
                metrics.CONSUMED.labels(queue=queue, outcome="duplicate").inc()
            except (Poison, ValidationError, json.JSONDecodeError) as exc:
                await self._dead_letter(message, delivery, reason=_reason(exc))
                metrics.CONSUMED.labels(queue=queue, outcome="dead_lettered").inc()
            except Exception as exc:
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
            finally:
                metrics.HANDLE_SECONDS.labels(queue=queue).observe(time.perf_counter() - started)

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


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
