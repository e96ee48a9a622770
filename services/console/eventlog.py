"""Writes agents' events into the log every console replica shares, once each.

Each console replica consumes the durable quorum queue `console.event_log` (bound like the
per-process feed), but a single active consumer at a time: one writer, in the queue's order.
It appends each event under the broker message id (a redelivery or a second replica's attempt
is a duplicate) and acknowledges only once the row is committed, so an event the broker has is
never lost for agents; the log's retention is what bounds how far back a client can resume.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Protocol

import orjson

from baton.broker import EVENTS, Delivery, Duplicate, Poison, QueueSpec
from baton.store.event_log_records import NewLoggedEvent
from baton.types import ConversationId, PhoneNumberId
from services.console.feed import BINDINGS

# Bound like the feed, so the log holds exactly what clients can see. Bounded too: with no
# console running, the oldest events go first (clients would get a reset for them anyway).
EVENT_LOG_MAX_QUEUED = 100_000
CONSOLE_EVENT_LOG = QueueSpec(
    "console.event_log",
    EVENTS,
    BINDINGS,
    single_active_consumer=True,
    extra_arguments={"x-max-length": EVENT_LOG_MAX_QUEUED, "x-overflow": "drop-head"},
    dead_letter=False,
)


class EventAppender(Protocol):
    async def append_console_event(self, event: NewLoggedEvent) -> int | None: ...


class EventLogWriter:
    """The handler of `console.event_log`: one event, one row."""

    def __init__(self, store: EventAppender) -> None:
        self._store = store
        # Deliveries are handled concurrently; the log must keep the queue's order.
        self._order = asyncio.Lock()

    async def on_event(self, delivery: Delivery) -> None:
        try:
            data = delivery.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Poison("an event body that is not UTF-8") from exc
        phone_number_id, conversation_id = routing_fields(delivery.body)
        event = NewLoggedEvent(
            message_id=delivery.message_id or _content_id(delivery.body),
            type=(delivery.type or delivery.routing_key or "unknown").removeprefix("event."),
            data=data.replace("\n", " ").replace("\r", " "),  # one SSE `data:` line
            phone_number_id=phone_number_id,
            conversation_id=conversation_id,
        )
        async with self._order:
            logged = await self._store.append_console_event(event)
        if logged is None:
            raise Duplicate


def routing_fields(body: bytes) -> tuple[PhoneNumberId | None, ConversationId | None]:
    """The business number and conversation an event is about, for clients' filters."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    number = parsed.get("phone_number_id")
    conversation = parsed.get("conversation_id")
    return (
        str(number) if number is not None else None,
        conversation if isinstance(conversation, int) else None,
    )


def _content_id(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()[:32]
