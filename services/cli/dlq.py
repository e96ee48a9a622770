"""`baton dlq list|show|replay`: what was parked, why, and sending it back where it failed.

A dead-lettered message carries why it failed and where (`x-baton-error`, `x-baton-queue`,
`x-baton-routing-key`, `x-baton-attempts`, `x-baton-failed-at`). A replay publishes it, with its
own properties and headers, through the default exchange straight to the queue it failed in,
so only the consumer that failed sees it again (a topic re-publish would reach every binding).
It is acked in the dead-letter queue only after the broker confirmed the copy, and recorded in
the store with the operator's name. A crash between the confirm and the ack leaves the message
in the dead-letter queue too: replaying it again is harmless, since every consumer is idempotent.
Messages looked at but not replayed return to their queue when the command's channel closes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq.exceptions import ChannelNotFoundEntity

from baton.broker.topology import CHATWOOT_EVENTS, QUEUES, dead_letter_queue, outbox_number_queue
from baton.store import Store
from baton.store.ops_records import DlqReplay

_FAILURE_HEADERS = (
    "x-baton-error",
    "x-baton-attempts",
    "x-baton-queue",
    "x-baton-routing-key",
    "x-baton-failed-at",
)
PREVIEW_BYTES = 300


@dataclass(frozen=True)
class Parked:
    """One dead-lettered message, as an operator reads it."""

    dead_letter_queue: str
    source_queue: str
    message_id: str
    type: str
    reason: str
    attempts: int
    failed_at: str
    routing_key: str
    body: bytes

    def summary(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "type": self.type,
            "queue": self.source_queue,
            "reason": self.reason,
            "attempts": self.attempts,
            "failed_at": self.failed_at,
        }

    def detail(self) -> dict[str, Any]:
        preview = self.body[:PREVIEW_BYTES].decode("utf-8", errors="replace")
        return {**self.summary(), "routing_key": self.routing_key, "body_preview": preview}


def parked(dlq: str, message: AbstractIncomingMessage) -> Parked:
    headers: Mapping[str, Any] = message.headers or {}
    return Parked(
        dead_letter_queue=dlq,
        source_queue=str(headers.get("x-baton-queue") or dlq.removesuffix(".dlq")),
        message_id=message.message_id or "",
        type=message.type or "",
        reason=str(headers.get("x-baton-error", "")),
        attempts=int(str(headers.get("x-baton-attempts", 0))),
        failed_at=str(headers.get("x-baton-failed-at", "")),
        routing_key=str(headers.get("x-baton-routing-key", "")),
        body=message.body,
    )


def known_queues(numbers: Sequence[str]) -> list[str]:
    """Every queue that dead-letters: the topology's, the bridge's, each number's outbox queue."""
    specs = [*QUEUES.values(), CHATWOOT_EVENTS, *(outbox_number_queue(n) for n in numbers)]
    return [spec.name for spec in specs if spec.dead_letter]


async def counts(
    connection: aio_pika.abc.AbstractConnection, queues: Sequence[str]
) -> dict[str, int]:
    """Messages waiting in each existing dead-letter queue (missing ones are left out)."""
    found: dict[str, int] = {}
    for queue in queues:
        # A failed passive declare closes its channel: one channel per look.
        async with connection.channel() as channel:
            try:
                declared = await channel.declare_queue(dead_letter_queue(queue), passive=True)
            except ChannelNotFoundEntity:
                continue
            found[queue] = declared.declaration_result.message_count or 0
    return found


async def peek(channel: AbstractChannel, queue: str, limit: int) -> list[Parked]:
    """Up to `limit` parked messages of `queue`, left in place (the caller closes the channel)."""
    dlq = dead_letter_queue(queue)
    source = await channel.get_queue(dlq, ensure=True)
    seen: list[Parked] = []
    while len(seen) < limit:
        message = await source.get(no_ack=False, fail=False)
        if message is None:
            break
        seen.append(parked(dlq, message))
    return seen


async def replay(
    connection: aio_pika.abc.AbstractConnection,
    store: Store,
    queue: str,
    *,
    limit: int,
    operator: str,
    dry_run: bool,
    message_id: str | None = None,
) -> list[Parked]:
    """Send up to `limit` parked messages of `queue` (or the one `message_id`) back to it."""
    dlq = dead_letter_queue(queue)
    channel = await connection.channel(publisher_confirms=True)
    try:
        source = await channel.get_queue(dlq, ensure=True)
        sent: list[Parked] = []
        # A message skipped (another id) stays unacked until the channel closes, so it is not
        # fetched twice; cap the look-ups so one command never drains a huge queue into memory.
        for _ in range(max(limit, 1) * 50 if message_id else limit):
            if len(sent) >= limit:
                break
            message = await source.get(no_ack=False, fail=False)
            if message is None:
                break
            item = parked(dlq, message)
            if message_id is not None and item.message_id != message_id:
                continue
            if not dry_run:
                await channel.default_exchange.publish(
                    _copy(message, operator), routing_key=item.source_queue, mandatory=True
                )
                await store.record_dlq_replay(
                    DlqReplay(
                        operator=operator,
                        queue=item.source_queue,
                        message_id=item.message_id,
                        message_type=item.type,
                        failure=item.reason,
                    )
                )
                await message.ack()
            sent.append(item)
        return sent
    finally:
        await channel.close()


def _copy(message: AbstractIncomingMessage, operator: str) -> aio_pika.Message:
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _FAILURE_HEADERS}
    replays = int(str(headers.get("x-baton-replays", 0))) + 1
    headers.update(
        {
            "x-baton-replays": replays,
            "x-baton-replayed-by": operator,
            "x-baton-replayed-at": datetime.now(UTC).isoformat(),
        }
    )
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        timestamp=message.timestamp,
    )
