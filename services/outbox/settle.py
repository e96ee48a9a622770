"""Settling the outbox's own deliveries, in one place: ack, or dead-letter with the reason.

The outbox consumes its queues itself (not through `baton.service`): per-conversation order
and exact pacing need in-order intake and in-process retries, never a nack that requeues.
Dead-lettered messages carry the same `x-baton-*` headers as every other consumer's, and every
settlement is counted in the same `baton_consumer_messages_total` as theirs.
"""

from __future__ import annotations

import structlog
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import ChannelInvalidStateError

from baton import metrics
from baton.broker import DLX, Broker
from baton.broker.consumer import dead_letter_headers

log = structlog.get_logger()


def channel_open(message: AbstractIncomingMessage) -> bool:
    """Whether the delivery can still be settled (its channel is open)."""
    try:
        return not message.channel.is_closed
    except ChannelInvalidStateError:
        return False


class Settler:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def ack(
        self, message: AbstractIncomingMessage, *, queue: str, outcome: str = "processed"
    ) -> bool:
        """Ack; False when the channel is gone (the broker redelivers, idempotency absorbs it)."""
        if not await self._ack(message):
            return False
        metrics.CONSUMED.labels(queue=queue, outcome=outcome).inc()
        return True

    async def _ack(self, message: AbstractIncomingMessage) -> bool:
        try:
            await message.ack()
        except Exception as exc:
            log.warning("outbox.ack_failed", error=repr(exc))
            return False
        return True

    async def dead_letter(
        self, message: AbstractIncomingMessage, *, queue: str, reason: str, attempts: int
    ) -> bool:
        """Park the message in `<queue>.dlq` with the reason (confirmed), then ack it."""
        log.error(
            "outbox.dead_lettered",
            queue=queue,
            reason=reason,
            attempts=attempts,
            message_id=message.message_id,
        )
        headers = dead_letter_headers(
            message.headers or {},
            reason=reason,
            attempts=attempts,
            queue=queue,
            routing_key=message.routing_key or "",
        )
        try:
            await self._broker.publish_raw(
                DLX,
                queue,
                message.body,
                type=message.type or "",
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                headers=headers,
            )
        except Exception as exc:
            # Not acked: the broker gives it back later rather than it being lost.
            log.error(
                "outbox.dead_letter_failed",
                queue=queue,
                error=repr(exc),
                message_id=message.message_id,
            )
            return False
        if not await self._ack(message):
            return False
        metrics.CONSUMED.labels(queue=queue, outcome="dead_lettered").inc()
        return True
