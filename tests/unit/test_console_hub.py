"""The SSE fan-out over the shared event log: filters, replay after Last-Event-ID, slow clients,
shutdown. The log is an in-memory fake of the store's event-log methods (the real one is tested
against PostgreSQL in tests/integration/test_console_event_log.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest

from baton.store.event_log_records import EventLogBounds, LoggedEvent
from baton.types import ConversationId, PhoneNumberId
from services.console.hub import EventFilter, EventHub, HubEvent, Reset, Subscription, sse_stream


class MemoryLog:
    """Gapless ids in append order, like the store's log."""

    def __init__(self) -> None:
        self.events: list[LoggedEvent] = []
        self.next_id = 1

    def append(self, type: str, number: str = "n1", conversation: int = 1, **extra: str) -> int:
        data = orjson.dumps({"phone_number_id": number, "conversation_id": conversation, **extra})
        self.events.append(
            LoggedEvent(
                id=self.next_id,
                type=type,
                data=data.decode(),
                phone_number_id=number,
                conversation_id=conversation,
                logged_at=datetime.now(UTC),
            )
        )
        self.next_id += 1
        return self.next_id - 1

    def prune_through(self, id_: int) -> None:
        self.events = [e for e in self.events if e.id > id_]

    async def console_events_after(
        self,
        after: int,
        *,
        limit: int,
        numbers: frozenset[PhoneNumberId] | None = None,
        conversation_id: ConversationId | None = None,
    ) -> list[LoggedEvent]:
        return [
            e
            for e in self.events
            if e.id > after
            and (numbers is None or e.phone_number_id in numbers)
            and (conversation_id is None or e.conversation_id == conversation_id)
        ][:limit]

    async def console_event_bounds(self) -> EventLogBounds:
        ids = [e.id for e in self.events]
        return EventLogBounds(oldest=min(ids, default=None), newest=max(ids, default=None))

    async def prune_console_events(self, *, older_than: datetime, keep: int) -> int:
        return 0


async def hub_over(log: MemoryLog, *, replay: int = 10, client_buffer: int = 10) -> EventHub:
    hub = EventHub(log, replay=replay, client_buffer=client_buffer)
    await hub.start()
    return hub


async def drain(subscription: Subscription) -> list[HubEvent | Reset | None]:
    items: list[HubEvent | Reset | None] = []
    while True:
        item = await subscription.get(0.01)
        if isinstance(item, TimeoutError):
            return items
        items.append(item)
        if item is None:
            return items


def ids(items: list[HubEvent | Reset | None]) -> list[str | None]:
    return [i.id if isinstance(i, HubEvent) else None for i in items]


async def test_events_carry_the_logs_ids_and_are_filtered_by_number_and_conversation() -> None:
    log = MemoryLog()
    log.append("earlier")  # before the hub started: never offered live
    hub = await hub_over(log)
    everything = await hub.subscribe(EventFilter())
    one_number = await hub.subscribe(EventFilter(numbers=frozenset({"n2"})))
    one_conversation = await hub.subscribe(EventFilter(conversation_id=7))
    first = log.append("conversation.mode_changed", "n1", 7)
    second = log.append("message_sent", "n2", 8)
    assert await hub.poll() == 2
    assert ids(await drain(everything)) == [str(first), str(second)]
    assert ids(await drain(one_number)) == [str(second)]
    assert ids(await drain(one_conversation)) == [str(first)]


async def test_last_event_id_replays_what_was_missed_from_the_log() -> None:
    log = MemoryLog()
    seen = log.append("a")
    missed = [log.append("b"), log.append("c")]
    hub = await hub_over(log)  # e.g. another replica, started after those events
    again = await hub.subscribe(EventFilter(), last_event_id=str(seen))
    assert ids(await drain(again)) == [str(i) for i in missed]
    up_to_date = await hub.subscribe(EventFilter(), last_event_id=str(missed[-1]))
    assert await drain(up_to_date) == []


async def test_a_replay_is_not_repeated_by_the_live_stream() -> None:
    log = MemoryLog()
    seen = log.append("a")
    hub = await hub_over(log)
    missed = log.append("b")  # in the log, not yet polled: replayed, then seen live too
    again = await hub.subscribe(EventFilter(), last_event_id=str(seen))
    assert await hub.poll() == 1
    live = log.append("c")
    await hub.poll()
    assert ids(await drain(again)) == [str(missed), str(live)]


@pytest.mark.parametrize("last_id", ["abc-1", "garbage", "٣", "99", "1"])
async def test_an_id_that_cannot_be_replayed_gets_a_reset_first(last_id: str) -> None:
    log = MemoryLog()
    for name in "abcd":
        log.append(name)
    log.prune_through(2)  # after 1 came 2, which is gone; 99 was never given
    hub = await hub_over(log)
    subscription = await hub.subscribe(EventFilter(), last_event_id=last_id)
    items = await drain(subscription)
    assert len(items) == 1 and isinstance(items[0], Reset)
    live = log.append("e")
    await hub.poll()
    assert ids(await drain(subscription)) == [str(live)]


async def test_more_missed_than_a_client_may_replay_is_a_reset() -> None:
    log = MemoryLog()
    seen = log.append("a")
    for name in "bcd":
        log.append(name)
    hub = await hub_over(log, replay=2)
    subscription = await hub.subscribe(EventFilter(), last_event_id=str(seen))
    assert [type(i) for i in await drain(subscription)] == [Reset]


async def test_a_client_too_slow_is_ended_and_can_resume() -> None:
    log = MemoryLog()
    hub = await hub_over(log, client_buffer=2)
    slow = await hub.subscribe(EventFilter())
    events = [log.append(n) for n in "abc"]
    await hub.poll()
    assert await drain(slow) == [None]  # ended at once, nothing half-delivered
    slow.close()
    assert hub.clients == 0
    resumed = await hub.subscribe(EventFilter(), last_event_id=str(events[0]))
    assert ids(await drain(resumed)) == [str(e) for e in events[1:]]


async def test_the_doorbell_makes_the_hub_read_the_log_at_once() -> None:
    log = MemoryLog()
    hub = EventHub(log, replay=10, client_buffer=10, poll_seconds=60)
    await hub.start()
    subscription = await hub.subscribe(EventFilter())
    stop = asyncio.Event()
    following = asyncio.create_task(hub.run(stop))
    try:
        event = log.append("a")
        hub.publish("event.a", b"{}")  # without it the next read would be a minute away
        item = await subscription.get(5)
        assert isinstance(item, HubEvent) and item.seq == event
        assert hub.following
    finally:
        stop.set()
        await following


async def test_closing_the_hub_ends_every_stream() -> None:
    log = MemoryLog()
    hub = await hub_over(log)
    stream = sse_stream(hub, EventFilter(), None, heartbeat_seconds=60)
    assert (await anext(stream)).startswith(b"retry:")
    event = log.append("conversation.mode_changed", note="a b")
    await hub.poll()
    frame = await anext(stream)
    data = log.events[-1].data.encode()
    assert frame == b"id: %d\nevent: conversation.mode_changed\ndata: %s\n\n" % (event, data)
    hub.close()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert hub.clients == 0
    late = await hub.subscribe(EventFilter())
    assert await drain(late) == [None]


async def test_quiet_streams_get_keep_alive_comments() -> None:
    hub = await hub_over(MemoryLog())
    stream = sse_stream(hub, EventFilter(), None, heartbeat_seconds=0.01)
    await anext(stream)
    assert await anext(stream) == b": keep-alive\n\n"
    await stream.aclose()
    assert hub.clients == 0


async def test_a_client_behind_gets_what_is_queued_in_one_write_then_the_end() -> None:
    log = MemoryLog()
    hub = await hub_over(log)
    stream = sse_stream(hub, EventFilter(), None, heartbeat_seconds=60)
    await anext(stream)
    ids = [log.append("conversation.mode_changed", conversation=i) for i in range(3)]
    await hub.poll()  # three events queued before the stream reads again
    hub.close()
    chunk = await anext(stream)
    frames = chunk.split(b"\n\n")
    assert frames[-1] == b"" and len(frames) == 4
    assert [f.split(b"\n")[0] for f in frames[:3]] == [b"id: %d" % i for i in ids]
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_a_reset_queued_behind_events_comes_after_them() -> None:
    log = MemoryLog()
    hub = await hub_over(log)
    subscription = await hub.subscribe(EventFilter())
    first = log.append("a")
    await hub.poll()
    subscription.announce_reset()
    item = await subscription.get(5)
    assert isinstance(item, HubEvent) and item.seq == first
    assert subscription.ready() is None  # the reset is not an event: `get` gives it
    assert isinstance(await subscription.get(5), Reset)
    subscription.close()
