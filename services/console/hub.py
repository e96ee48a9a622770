"""Fan-out of conversation events to SSE clients, with a short replay buffer.

Event ids are `<boot>-<seq>`: `boot` names this process's lifetime, `seq` grows by one per
event. A client reconnecting with `Last-Event-ID` gets what it missed if it is still in the
buffer and came from this same process; otherwise it first gets a `reset` event (refetch
what you show, some events are gone) and then the live stream. A client too slow to keep its
queue from filling up is disconnected, and reconnects the same way.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import orjson
import structlog

from baton.types import ConversationId, PhoneNumberId
from services.console import metrics

log = structlog.get_logger()


@dataclass(frozen=True)
class HubEvent:
    seq: int
    id: str
    type: str  # e.g. conversation.mode_changed, message_sent
    data: bytes  # the broker message's JSON body, one line
    phone_number_id: PhoneNumberId | None
    conversation_id: ConversationId | None


@dataclass(frozen=True)
class EventFilter:
    numbers: frozenset[PhoneNumberId] | None = None  # None → every number
    conversation_id: ConversationId | None = None

    def accepts(self, event: HubEvent) -> bool:
        if self.numbers is not None and event.phone_number_id not in self.numbers:
            return False
        return self.conversation_id is None or event.conversation_id == self.conversation_id


class Reset:
    """Some events were lost for this client: it should refetch, then follow the stream."""


_RESET = Reset()
_END = None
Item = HubEvent | Reset | None


class Subscription:
    def __init__(self, hub: EventHub, filter: EventFilter, buffer: int) -> None:
        self._hub = hub
        self.filter = filter
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=buffer)
        self._ended = False

    def offer(self, event: HubEvent) -> None:
        if self._ended or not self.filter.accepts(event):
            return
        try:
            self._queue.put_nowait(event)
            metrics.SSE_EVENTS.labels(outcome="delivered").inc()
        except asyncio.QueueFull:
            # Too slow: disconnect it; it reconnects with Last-Event-ID and replays or resets.
            metrics.SSE_EVENTS.labels(outcome="dropped").inc()
            log.warning("console.sse_client_too_slow")
            self.end()

    def announce_reset(self) -> None:
        """Tell the client it missed events it cannot get back (it stays subscribed)."""
        self._queue.put_nowait(_RESET)

    def end(self) -> None:
        """End the stream after what is queued (or at once, if the queue is full)."""
        if self._ended:
            return
        self._ended = True
        if self._queue.full():
            # Dropping only the oldest would leave a gap that Last-Event-ID cannot see.
            while not self._queue.empty():
                self._queue.get_nowait()
        self._queue.put_nowait(_END)

    async def get(self, timeout: float) -> Item | TimeoutError:
        """The next item, or TimeoutError after `timeout` seconds without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError as exc:
            return exc

    def close(self) -> None:
        self._hub.unsubscribe(self)


class EventHub:
    """Events in from the broker feed, out to every subscribed client."""

    def __init__(self, *, replay: int, client_buffer: int) -> None:
        self.boot = uuid.uuid4().hex[:12]
        self._seq = 0
        self._recent: deque[HubEvent] = deque(maxlen=replay)
        self._subscriptions: set[Subscription] = set()
        self._client_buffer = client_buffer
        self._closed = False

    @property
    def clients(self) -> int:
        return len(self._subscriptions)

    def publish(self, type: str, body: bytes) -> HubEvent:
        """Number one event and offer it to every client."""
        self._seq += 1
        phone_number_id, conversation_id = _routing_fields(body)
        event = HubEvent(
            seq=self._seq,
            id=f"{self.boot}-{self._seq}",
            type=type.removeprefix("event."),
            data=body.replace(b"\n", b" ").replace(b"\r", b" "),
            phone_number_id=phone_number_id,
            conversation_id=conversation_id,
        )
        metrics.SSE_EVENTS.labels(outcome="received").inc()
        self._recent.append(event)
        for subscription in list(self._subscriptions):
            subscription.offer(event)
        return event

    def subscribe(self, filter: EventFilter, last_event_id: str | None = None) -> Subscription:
        """A new client; replays what it missed since `last_event_id` when possible."""
        subscription = Subscription(self, filter, self._client_buffer)
        if self._closed:
            subscription.end()
            return subscription
        if last_event_id is not None:
            missed = self._since(last_event_id)
            if missed is None:
                subscription.announce_reset()
            else:
                for event in missed:
                    subscription.offer(event)
        self._subscriptions.add(subscription)
        metrics.SSE_CLIENTS.set(len(self._subscriptions))
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        metrics.SSE_CLIENTS.set(len(self._subscriptions))

    def close(self) -> None:
        """End every stream (shutting down): clients reconnect to another replica."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.end()

    def _since(self, last_event_id: str) -> list[HubEvent] | None:
        boot, _, seq_text = last_event_id.partition("-")
        if boot != self.boot or not seq_text.isdigit():
            return None
        seq = int(seq_text)
        if seq > self._seq:
            return None
        oldest = self._recent[0].seq if self._recent else self._seq + 1
        if seq + 1 < oldest:
            return None  # the gap fell out of the buffer
        return [event for event in self._recent if event.seq > seq]


def _routing_fields(body: bytes) -> tuple[PhoneNumberId | None, ConversationId | None]:
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


async def sse_stream(
    hub: EventHub,
    filter: EventFilter,
    last_event_id: str | None,
    *,
    heartbeat_seconds: float,
    retry_ms: int = 2000,
) -> AsyncGenerator[bytes, None]:
    """The text/event-stream body for one client, until the hub or the client ends it."""
    # Subscribed only once the response streams: a response never started leaks nothing.
    subscription = hub.subscribe(filter, last_event_id)
    try:
        yield f"retry: {retry_ms}\n\n".encode()
        while True:
            item = await subscription.get(heartbeat_seconds)
            if isinstance(item, TimeoutError):
                yield b": keep-alive\n\n"
            elif isinstance(item, HubEvent):
                yield b"id: %s\nevent: %s\ndata: %s\n\n" % (
                    item.id.encode(),
                    item.type.encode(),
                    item.data,
                )
            elif isinstance(item, Reset):
                yield b"event: reset\ndata: {}\n\n"
            else:
                return
    finally:
        subscription.close()
