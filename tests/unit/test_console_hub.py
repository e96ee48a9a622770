"""The SSE fan-out: filters, replay after Last-Event-ID, slow clients, shutdown."""

from __future__ import annotations

import orjson
import pytest

from services.console.hub import EventFilter, EventHub, HubEvent, Reset, Subscription, sse_stream


def body(number: str = "n1", conversation: int = 1, **extra: object) -> bytes:
    return orjson.dumps({"phone_number_id": number, "conversation_id": conversation, **extra})


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


async def test_events_are_numbered_and_filtered_by_number_and_conversation() -> None:
    hub = EventHub(replay=10, client_buffer=10)
    everything = hub.subscribe(EventFilter())
    one_number = hub.subscribe(EventFilter(numbers=frozenset({"n2"})))
    one_conversation = hub.subscribe(EventFilter(conversation_id=7))
    first = hub.publish("event.conversation.mode_changed", body("n1", 7))
    second = hub.publish("event.message_sent", body("n2", 8))
    assert (first.type, second.type) == ("conversation.mode_changed", "message_sent")
    assert first.id == f"{hub.boot}-1" and second.id == f"{hub.boot}-2"
    assert ids(await drain(everything)) == [first.id, second.id]
    assert ids(await drain(one_number)) == [second.id]
    assert ids(await drain(one_conversation)) == [first.id]


async def test_last_event_id_replays_what_was_missed() -> None:
    hub = EventHub(replay=10, client_buffer=10)
    seen = hub.publish("event.a", body())
    missed = [hub.publish("event.b", body()), hub.publish("event.c", body())]
    again = hub.subscribe(EventFilter(), last_event_id=seen.id)
    assert ids(await drain(again)) == [e.id for e in missed]
    up_to_date = hub.subscribe(EventFilter(), last_event_id=missed[-1].id)
    assert await drain(up_to_date) == []


@pytest.mark.parametrize("last_id", ["other-boot-1", "garbage", "{boot}-1", "{boot}-99"])
async def test_an_id_that_cannot_be_replayed_gets_a_reset_first(last_id: str) -> None:
    hub = EventHub(replay=2, client_buffer=10)
    for name in "abcd":  # the buffer keeps c and d: after 1 comes 2, which is gone
        hub.publish(f"event.{name}", body())
    subscription = hub.subscribe(EventFilter(), last_event_id=last_id.format(boot=hub.boot))
    items = await drain(subscription)
    assert isinstance(items[0], Reset)
    live = hub.publish("event.e", body())
    assert ids(await drain(subscription)) == [live.id]


async def test_a_client_too_slow_is_ended_and_can_resume() -> None:
    hub = EventHub(replay=10, client_buffer=2)
    slow = hub.subscribe(EventFilter())
    events = [hub.publish(f"event.{n}", body()) for n in "abc"]
    assert await drain(slow) == [None]  # ended at once, nothing half-delivered
    slow.close()
    assert hub.clients == 0
    resumed = hub.subscribe(EventFilter(), last_event_id=events[0].id)
    assert ids(await drain(resumed)) == [e.id for e in events[1:]]


async def test_closing_the_hub_ends_every_stream() -> None:
    hub = EventHub(replay=10, client_buffer=10)
    stream = sse_stream(hub, EventFilter(), None, heartbeat_seconds=60)
    assert (await anext(stream)).startswith(b"retry:")
    event = hub.publish("event.conversation.mode_changed", body(note="a\nb"))
    frame = await anext(stream)
    assert frame == b"id: %s\nevent: conversation.mode_changed\ndata: %s\n\n" % (
        event.id.encode(),
        event.data,
    )
    assert b"\n" not in event.data
    hub.close()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert hub.clients == 0
    late = hub.subscribe(EventFilter())
    assert await drain(late) == [None]


async def test_quiet_streams_get_keep_alive_comments() -> None:
    hub = EventHub(replay=10, client_buffer=10)
    stream = sse_stream(hub, EventFilter(), None, heartbeat_seconds=0.01)
    await anext(stream)
    assert await anext(stream) == b": keep-alive\n\n"
    await stream.aclose()
    assert hub.clients == 0
