"""Fan-out of conversation events to SSE clients, from the event log every replica shares.

Event ids are the log's ids (`services/console/eventlog.py` writes each event once, whichever
replica consumes it): the same event has the same id on every console replica, and ids grow in
the order events became visible, without gaps. So a client that reconnects with
`Last-Event-ID`, to this replica or another, gets what it missed while the log still holds it
(retention by age and count); otherwise it first gets a `reset` event (refetch what you show,
some events are gone) and then the live stream. A client too slow to keep its queue from
filling up is disconnected, and reconnects the same way.

The hub follows the log by polling it: at once when this replica's broker feed saw an event go
by (`publish`, a doorbell), otherwise every `poll_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from baton.store.event_log_records import EventLogBounds, LoggedEvent
from baton.types import ConversationId, PhoneNumberId
from services.console import metrics

log = structlog.get_logger()

BATCH = 500  # events read from the log per poll
# After a doorbell, the event may not be committed to the log yet: look again this often, this
# many times, before falling back to the regular poll.
EAGER_DELAY_SECONDS = 0.02
EAGER_POLLS = 25
PRUNE_EVERY_SECONDS = 60.0
# A client behind by several events gets them in one write (bench/fanout.py: with 500 clients,
# a write per event per client is most of the console's CPU); at most this many per write.
COALESCE = 64

# The labelled children, looked up once.
_DELIVERED = metrics.SSE_EVENTS.labels(outcome="delivered")
_DROPPED = metrics.SSE_EVENTS.labels(outcome="dropped")


class EventLog(Protocol):
    """The part of the store the hub reads (`PostgresStore` in production)."""

    async def console_events_after(
        self,
        after: int,
        *,
        limit: int,
        numbers: frozenset[PhoneNumberId] | None = None,
        conversation_id: ConversationId | None = None,
    ) -> list[LoggedEvent]: ...

    async def console_event_bounds(self) -> EventLogBounds: ...

    async def prune_console_events(self, *, older_than: datetime, keep: int) -> int: ...


@dataclass(frozen=True)
class HubEvent:
    seq: int  # the log's id
    id: str
    type: str  # e.g. conversation.mode_changed, message_sent
    data: bytes  # the broker message's JSON body, one line
    phone_number_id: PhoneNumberId | None
    conversation_id: ConversationId | None
    # The event as SSE, encoded once for every client (not once per client).
    frame: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        frame = b"id: %s\nevent: %s\ndata: %s\n\n" % (
            self.id.encode(),
            self.type.encode(),
            self.data,
        )
        object.__setattr__(self, "frame", frame)

    @classmethod
    def of(cls, logged: LoggedEvent) -> HubEvent:
        return cls(
            seq=logged.id,
            id=str(logged.id),
            type=logged.type,
            data=logged.data.encode(),
            phone_number_id=logged.phone_number_id,
            conversation_id=logged.conversation_id,
        )


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
        self._buffer = buffer
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=buffer)
        self._ended = False
        self._held: list[HubEvent] | None = None  # live events kept aside while replaying
        self._last_seq = 0
        # Taken from the queue by `ready` but not an event (a reset, or the end: None).
        self._back: list[Item] = []

    def offer(self, event: HubEvent) -> bool:
        """Queue `event` for this client if it wants it; whether it was queued."""
        if self._ended or not self.filter.accepts(event):
            return False
        if self._held is not None:
            self._held.append(event)
            if len(self._held) > self._buffer:
                self.end()
            return False
        if event.seq <= self._last_seq:
            return False  # sent already: a replayed event that also came live
        try:
            self._queue.put_nowait(event)
            self._last_seq = event.seq
            return True
        except asyncio.QueueFull:
            # Too slow: disconnect it; it reconnects with Last-Event-ID and replays or resets.
            _DROPPED.inc()
            log.warning("console.sse_client_too_slow")
            self.end()
            return False

    def hold(self) -> None:
        """Keep live events aside until `release`: the replay must come first."""
        self._held = []

    def release(self, replay: list[HubEvent] | None) -> None:
        """Deliver what was missed (or a reset when that is unknown), then what came meanwhile."""
        held, self._held = self._held or [], None
        if replay is None:
            self.announce_reset()
        else:
            _DELIVERED.inc(sum(self.offer(event) for event in replay))
        _DELIVERED.inc(sum(self.offer(event) for event in held))

    def announce_reset(self) -> None:
        """Tell the client it missed events it cannot get back (it stays subscribed)."""
        if not self._ended:
            self._queue.put_nowait(_RESET)

    def end(self) -> None:
        """End the stream after what is queued (or at once, if the queue is full)."""
        if self._ended:
            return
        self._ended = True
        self._held = None
        if self._queue.full():
            # Dropping only the oldest would leave a gap that Last-Event-ID cannot see.
            while not self._queue.empty():
                self._queue.get_nowait()
        self._queue.put_nowait(_END)

    def ready(self) -> HubEvent | None:
        """The next queued event if there is one (and it is an event), without waiting."""
        if self._back or self._queue.empty():
            return None
        item = self._queue.get_nowait()
        if isinstance(item, HubEvent):
            return item
        self._back.append(item)  # `get` returns it next
        return None

    async def get(self, timeout: float) -> Item | TimeoutError:
        """The next item, or TimeoutError after `timeout` seconds without one."""
        if self._back:
            return self._back.pop()
        if not self._queue.empty():
            return self._queue.get_nowait()
        try:
            # Not wait_for: it wraps the get in a new task, per event per client.
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError as exc:
            return exc

    def close(self) -> None:
        self._hub.unsubscribe(self)


class EventHub:
    """Events in from the shared log, out to every subscribed client of this replica."""

    def __init__(
        self,
        log: EventLog,
        *,
        replay: int,
        client_buffer: int,
        poll_seconds: float = 0.25,
        retention: timedelta = timedelta(hours=1),
        retention_events: int = 100_000,
    ) -> None:
        self._log = log
        self._replay = replay
        self._client_buffer = client_buffer
        self._poll_seconds = poll_seconds
        self._retention = retention
        self._retention_events = retention_events
        self._cursor: int | None = None  # the last log id offered to clients
        self._subscriptions: set[Subscription] = set()
        self._closed = False
        self._doorbell = asyncio.Event()
        self._eager = 0
        self._polled_at: float | None = None

    @property
    def clients(self) -> int:
        return len(self._subscriptions)

    @property
    def following(self) -> bool:
        """Whether the log was read lately (readiness: clients would miss events otherwise)."""
        if self._polled_at is None:
            return False
        return time.monotonic() - self._polled_at < max(10.0, 20 * self._poll_seconds)

    def publish(self, type: str, body: bytes) -> None:
        """This replica's broker feed saw an event go by: read the log now."""
        metrics.SSE_EVENTS.labels(outcome="received").inc()
        self._doorbell.set()

    async def start(self) -> None:
        """Follow the log from its newest event (clients before now replay by their id)."""
        bounds = await self._log.console_event_bounds()
        self._cursor = bounds.newest or 0
        self._polled_at = time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        """Offer new log events to clients until `stop`; prune the log now and then."""
        next_prune = time.monotonic()
        failures = 0
        while not stop.is_set():
            try:
                if self._cursor is None:
                    await self.start()
                found = await self.poll()
                failures = 0
            except Exception as exc:  # the store is away: keep trying, clients wait
                failures += 1
                log.warning("console.event_log_unreadable", error=repr(exc), failures=failures)
                await self._sleep(stop, min(5.0, self._poll_seconds * 2**failures))
                continue
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                await self._prune()
            if found >= BATCH:
                continue  # more is waiting
            delay = EAGER_DELAY_SECONDS if self._eager > 0 else self._poll_seconds
            self._eager = max(0, self._eager - 1)
            await self._sleep(stop, delay)

    async def poll(self) -> int:
        """Offer the log's events after the cursor to every client; how many there were."""
        assert self._cursor is not None, "start() first"
        rows = await self._log.console_events_after(self._cursor, limit=BATCH)
        self._polled_at = time.monotonic()
        delivered = 0
        for row in rows:
            event = HubEvent.of(row)
            self._cursor = row.id
            for subscription in list(self._subscriptions):
                delivered += subscription.offer(event)
        # Counted once per poll: a locked increment per event per client costs ~10% of the CPU.
        if delivered:
            _DELIVERED.inc(delivered)
        return len(rows)

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        ringing = asyncio.ensure_future(self._doorbell.wait())
        try:
            await asyncio.wait({stopping, ringing}, timeout=seconds, return_when="FIRST_COMPLETED")
        finally:
            for waiter in (stopping, ringing):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
        if self._doorbell.is_set():
            self._doorbell.clear()
            self._eager = EAGER_POLLS

    async def _prune(self) -> None:
        try:
            pruned = await self._log.prune_console_events(
                older_than=datetime.now(UTC) - self._retention, keep=self._retention_events
            )
        except Exception as exc:
            log.warning("console.event_log_prune_failed", error=repr(exc))
            return
        if pruned:
            log.info("console.event_log_pruned", events=pruned)

    async def subscribe(
        self, filter: EventFilter, last_event_id: str | None = None
    ) -> Subscription:
        """A new client; replays what it missed since `last_event_id` when the log has it."""
        subscription = Subscription(self, filter, self._client_buffer)
        if self._closed:
            subscription.end()
            return subscription
        self._subscriptions.add(subscription)
        metrics.SSE_CLIENTS.set(len(self._subscriptions))
        if last_event_id is None:
            return subscription
        subscription.hold()  # live events meanwhile wait behind the replay
        try:
            missed = await self._since(last_event_id, filter)
        except asyncio.CancelledError:
            self.unsubscribe(subscription)
            raise
        except Exception as exc:
            log.warning("console.replay_failed", error=repr(exc))
            missed = None
        subscription.release(missed)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        metrics.SSE_CLIENTS.set(len(self._subscriptions))

    def close(self) -> None:
        """End every stream (shutting down): clients reconnect to another replica."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.end()

    async def _since(self, last_event_id: str, filter: EventFilter) -> list[HubEvent] | None:
        if not last_event_id.isascii() or not last_event_id.isdigit():
            return None  # not one of the log's ids (e.g. from before the shared log)
        last = int(last_event_id)
        bounds = await self._log.console_event_bounds()
        if bounds.newest is None or last > bounds.newest:
            return None  # an id this log never gave
        if bounds.oldest is not None and last + 1 < bounds.oldest:
            return None  # the gap was pruned
        rows = await self._log.console_events_after(
            last,
            limit=self._replay + 1,
            numbers=filter.numbers,
            conversation_id=filter.conversation_id,
        )
        if len(rows) > self._replay:
            return None  # more than a client may replay: refetching is cheaper
        return [HubEvent.of(row) for row in rows]


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
    subscription = await hub.subscribe(filter, last_event_id)
    try:
        yield f"retry: {retry_ms}\n\n".encode()
        while True:
            item = await subscription.get(heartbeat_seconds)
            if isinstance(item, TimeoutError):
                yield b": keep-alive\n\n"
            elif isinstance(item, HubEvent):
                frames = [item.frame]
                while len(frames) < COALESCE and (more := subscription.ready()) is not None:
                    frames.append(more.frame)
                yield b"".join(frames)  # one frame: joined without a copy
            elif isinstance(item, Reset):
                yield b"event: reset\ndata: {}\n\n"
            else:
                return
    finally:
        subscription.close()
