"""The console's shared event log on PostgreSQL, and its writer on the real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from baton.broker import Broker, Delivery, Duplicate
from baton.messages import ModeChanged
from baton.store import PostgresStore
from baton.store.event_log_records import NewLoggedEvent
from baton.types import Mode
from services.console.eventlog import EventLogWriter
from tests.conftest import unique

pytestmark = pytest.mark.integration


def _event(number: str, conversation: int = 1) -> NewLoggedEvent:
    return NewLoggedEvent(
        message_id=unique("ev"),
        type="conversation.mode_changed",
        data=f'{{"phone_number_id":"{number}","conversation_id":{conversation}}}',
        phone_number_id=number,
        conversation_id=conversation,
    )


async def test_ids_are_gapless_in_order_and_an_event_is_logged_once(store: PostgresStore) -> None:
    number = unique("n")
    events = [_event(number, c) for c in (1, 2, 1)]
    ids = [await store.append_console_event(e) for e in events]
    assert all(i is not None for i in ids)
    assert await store.append_console_event(events[0]) is None  # the same message id again
    first = ids[0]
    assert first is not None
    assert ids == [first, first + 1, first + 2]
    mine = await store.console_events_after(first - 1, limit=10, numbers=frozenset({number}))
    assert [e.id for e in mine] == ids
    one = await store.console_events_after(
        first - 1, limit=10, numbers=frozenset({number}), conversation_id=2
    )
    assert [e.id for e in one] == [ids[1]]


async def test_concurrent_appends_get_gapless_ids(store: PostgresStore) -> None:
    number = unique("n")
    # Many appenders at once (as during a writer handover): ids still come out gapless.
    appended = await asyncio.gather(
        *(store.append_console_event(_event(number)) for _ in range(40))
    )
    ids = sorted(i for i in appended if i is not None)
    assert ids == list(range(ids[0], ids[0] + 40))


async def test_pruning_removes_the_oldest_and_never_the_newest(store: PostgresStore) -> None:
    number = unique("n")
    for _ in range(3):
        await store.append_console_event(_event(number))
    newest = (await store.console_event_bounds()).newest
    assert newest is not None
    await store.prune_console_events(older_than=datetime.now(UTC) + timedelta(days=1), keep=1)
    bounds = await store.console_event_bounds()
    assert (bounds.oldest, bounds.newest) == (newest, newest)
    following = await store.append_console_event(_event(number))
    assert following == newest + 1  # ids go on from the newest, never reused


async def test_the_writer_logs_each_broker_event_once(store: PostgresStore, broker: Broker) -> None:
    writer = EventLogWriter(store)
    number = unique("n")
    event = ModeChanged(
        conversation_id=5,
        phone_number_id=number,
        wa_id="5511999990000",
        at=datetime.now(UTC),
        from_mode=Mode.BOT,
        to_mode=Mode.HUMAN,
        epoch=1,
        cause="agent_takeover",
    )
    delivery = Delivery(
        body=event.model_dump_json().encode(),
        type=event.TYPE,
        message_id=unique("m"),
        correlation_id=None,
        routing_key=event.TYPE,
        attempt=1,
    )
    await writer.on_event(delivery)
    with pytest.raises(Duplicate):
        await writer.on_event(delivery)
    [logged] = await store.console_events_after(0, limit=10_000, numbers=frozenset({number}))
    assert (logged.type, logged.conversation_id) == ("conversation.mode_changed", 5)
