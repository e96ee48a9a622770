"""The conversation shell on the real PostgreSQL and RabbitMQ: CAS saves, timers, the relay."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from baton.broker import COMMANDS, EVENTS, Broker, Delivery, QueueSpec
from baton.conversations import Conversations, PreconditionFailed, not_held_by_other
from baton.handoff import (
    AgentTookOver,
    CustomerWrote,
    EchoReceived,
    TimerKind,
    next_timers,
)
from baton.messages import AskBot, ModeChanged, SendText
from baton.settings import NumbersConfig
from baton.store import PostgresStore
from baton.store.handoff_records import EchoOutcome, NewEcho
from baton.store.records import NewOutbound
from baton.types import Author, Mode
from tests.clock import FakeClock
from tests.conftest import unique
from tests.waiting import eventually

pytestmark = pytest.mark.integration

T = TypeVar("T")


@dataclass
class Published:
    """Everything the shell published, as the broker routed it to a test queue."""

    deliveries: list[Delivery] = field(default_factory=list)

    def of(self, type_: str, conversation_id: int) -> list[Delivery]:
        return [
            d
            for d in self.deliveries
            if d.type == type_ and f'"conversation_id":{conversation_id},' in d.body.decode()
        ]


@pytest.fixture
async def published(broker: Broker) -> Published:
    seen = Published()

    async def collect(delivery: Delivery) -> None:
        seen.deliveries.append(delivery)

    name = unique("test.shell")
    await broker.consume(
        QueueSpec(name, COMMANDS, ("bot.ask", "outbox.send_text")),
        collect,
        prefetch=50,
        max_attempts=1,
    )
    await broker.consume(
        QueueSpec(name + ".events", EVENTS, ("event.conversation.#",)),
        collect,
        prefetch=50,
        max_attempts=1,
    )
    return seen


def _number() -> str:
    return unique("9")[:16]


def _customer_wrote(text: str, at: datetime) -> CustomerWrote:
    return CustomerWrote(wamid=unique("wamid"), timestamp=at, text=text)


async def test_state_round_trips_and_mirrors_the_listing_columns(
    store: PostgresStore, broker: Broker, published: Published
) -> None:
    clock = FakeClock()
    shell = Conversations(store, broker, NumbersConfig(), clock)
    conversation = await store.conversation(_number(), unique("55"))
    await shell.apply(conversation.id, _customer_wrote("quero falar com alguém", clock.now))
    decision = await shell.apply(conversation.id, AgentTookOver(agent_id="ana"))

    assert decision.changed
    assert await shell.state(conversation.id) == decision.state
    row = await store.pool.fetchrow(
        "SELECT mode, epoch, version, assignee FROM conversations WHERE id = $1", conversation.id
    )
    assert row is not None
    assert dict(row) == {"mode": "human", "epoch": 1, "version": 2, "assignee": "ana"}
    changed = await eventually(
        lambda: _async(published.of(ModeChanged.TYPE, conversation.id)), what="mode_changed"
    )
    event = ModeChanged.model_validate_json(changed[0].body)
    assert (event.from_mode, event.to_mode, event.actor, event.epoch) == (
        Mode.BOT,
        Mode.HUMAN,
        "ana",
        1,
    )
    # The takeover notice went to the outbox as a system message.
    [notice] = await eventually(
        lambda: _async(published.of(SendText.TYPE, conversation.id)), what="takeover notice"
    )
    assert SendText.model_validate_json(notice.body).author is Author.SYSTEM


async def test_a_stale_version_is_refused_and_writes_nothing(
    store: PostgresStore, broker: Broker
) -> None:
    clock = FakeClock()
    shell = Conversations(store, broker, NumbersConfig(), clock)
    conversation = await store.conversation(_number(), unique("55"))
    state = await shell.state(conversation.id)
    assert state is not None
    moved = await shell.apply(conversation.id, AgentTookOver(agent_id="ana"))

    stale = await store.save_conversation_state(
        state.model_copy(update={"version": 1}),
        expected_version=0,
        timers=(),
        effects=(),
        relay_after=clock(),
    )
    assert stale is None
    assert await shell.state(conversation.id) == moved.state


async def test_concurrent_events_are_all_applied(store: PostgresStore, broker: Broker) -> None:
    clock = FakeClock()
    shells = [Conversations(store, broker, NumbersConfig(), clock) for _ in range(3)]
    conversation = await store.conversation(_number(), unique("55"))
    events = [_customer_wrote(f"m{i}", clock.now + timedelta(seconds=i)) for i in range(12)]
    await asyncio.gather(
        *(shells[i % 3].apply(conversation.id, event) for i, event in enumerate(events))
    )
    state = await shells[0].state(conversation.id)
    assert state is not None
    assert [m.wamid for m in state.buffer] == [e.wamid for e in events]
    assert state.version == len(events)


async def test_of_two_agents_taking_over_at_once_exactly_one_wins(
    store: PostgresStore, broker: Broker
) -> None:
    shell = Conversations(store, broker, NumbersConfig(), FakeClock())
    conversation = await store.conversation(_number(), unique("55"))

    async def take(agent: str) -> str | None:
        try:
            await shell.apply(
                conversation.id,
                AgentTookOver(agent_id=agent),
                precondition=not_held_by_other(agent),
            )
        except PreconditionFailed:
            return None
        return agent

    winners = [w for w in await asyncio.gather(take("ana"), take("bia")) if w]
    assert len(winners) == 1
    state = await shell.state(conversation.id)
    assert state is not None
    assert state.assignee == winners[0]
    assert state.epoch == 1


async def test_a_burst_flushed_by_two_sweepers_is_one_bot_request_in_order(
    store: PostgresStore, broker: Broker, published: Published
) -> None:
    clock = FakeClock()
    first, second = (Conversations(store, broker, NumbersConfig(), clock) for _ in range(2))
    conversation = await store.conversation(_number(), unique("55"))
    burst = [_customer_wrote(f"parte {i}", clock.now - timedelta(seconds=5 - i)) for i in range(5)]
    for event in reversed(burst):  # arrival order does not matter: WhatsApp's timestamps do
        await first.apply(conversation.id, event)
        clock.advance(0.05)

    assert await first.fire_timer(conversation.id, TimerKind.DEBOUNCE) is None  # still typing
    clock.advance(1.0)
    await asyncio.gather(
        first.fire_due_timers(limit=1000),
        second.fire_due_timers(limit=1000),
        first.fire_timer(conversation.id, TimerKind.DEBOUNCE),
        second.fire_timer(conversation.id, TimerKind.DEBOUNCE),
    )

    [ask] = await eventually(
        lambda: _async(published.of(AskBot.TYPE, conversation.id)), what="the bot request"
    )
    request = AskBot.model_validate_json(ask.body)
    assert [m.wamid for m in request.messages] == [e.wamid for e in burst]
    assert ask.message_id == request.request_id
    timers = await store.pool.fetchval(
        "SELECT count(*) FROM conversation_timers WHERE conversation_id = $1", conversation.id
    )
    assert timers == 0
    clock.advance(10)
    assert await first.fire_timer(conversation.id, TimerKind.DEBOUNCE) is None
    assert len(published.of(AskBot.TYPE, conversation.id)) == 1


async def test_a_due_timer_is_claimed_by_one_sweeper_only(
    store: PostgresStore, broker: Broker
) -> None:
    clock = FakeClock()
    shell = Conversations(store, broker, NumbersConfig(), clock)
    conversation = await store.conversation(_number(), unique("55"))
    await shell.apply(conversation.id, _customer_wrote("oi", clock.now))
    clock.advance(2)
    lease = clock.now + timedelta(seconds=10)
    claims = await asyncio.gather(
        *(store.claim_due_timers(clock.now, lease_until=lease, limit=10_000) for _ in range(4))
    )
    mine = [t for batch in claims for t in batch if t.conversation_id == conversation.id]
    assert [t.kind for t in mine] == [TimerKind.DEBOUNCE]
    # Leased: nobody claims it again until the lease runs out (its holder crashed).
    again = await store.claim_timer(
        conversation.id, TimerKind.DEBOUNCE, clock.now, lease_until=lease
    )
    assert again is None
    later = lease + timedelta(seconds=1)
    reclaimed = await store.claim_timer(
        conversation.id, TimerKind.DEBOUNCE, later, lease_until=later + timedelta(seconds=10)
    )
    assert reclaimed is not None


async def test_effects_queued_during_a_broker_outage_are_relayed(
    store: PostgresStore, broker: Broker, published: Published, amqp_url: str
) -> None:
    clock = FakeClock()
    down = Broker(amqp_url, name="tests-never-connected")
    offline = Conversations(store, down, NumbersConfig(), clock)
    conversation = await store.conversation(_number(), unique("55"))
    await offline.apply(conversation.id, _customer_wrote("oi", clock.now))

    decision = await offline.apply(conversation.id, AgentTookOver(agent_id="ana"))
    assert decision.changed  # saved even though nothing could be published
    queued = await store.pool.fetchval(
        "SELECT count(*) FROM pending_effects WHERE conversation_id = $1", conversation.id
    )
    assert queued == 2  # the mode_changed event and the takeover notice

    relay = Conversations(store, broker, NumbersConfig(), clock)
    await relay.relay_pending(limit=1000)
    assert not published.of(SendText.TYPE, conversation.id)  # still held by its writer
    clock.advance(16)  # past the writer's lease: it is presumed dead
    await relay.relay_pending(limit=1000)
    await eventually(
        lambda: _async(
            published.of(SendText.TYPE, conversation.id)
            and published.of(ModeChanged.TYPE, conversation.id)
        ),
        what="the relayed effects",
    )
    left = await store.pool.fetchval(
        "SELECT count(*) FROM pending_effects WHERE conversation_id = $1", conversation.id
    )
    assert left == 0


async def test_echo_outcomes_by_message_id(store: PostgresStore) -> None:
    number, customer = _number(), unique("55")

    def echo(wamid: str) -> NewEcho:
        return NewEcho(
            phone_number_id=number,
            wa_id=customer,
            wamid=wamid,
            type="text",
            body="Oi, aqui é a Ana da loja",
            sent_at=datetime.now(UTC),
            payload={"id": wamid},
        )

    wamid = unique("wamid")
    conversation, outcome = await store.record_echo(echo(wamid))
    assert outcome is EchoOutcome.NEW
    assert (await store.record_echo(echo(wamid)))[1] is EchoOutcome.UNROUTED
    await store.mark_routed(number, [wamid])
    assert (await store.record_echo(echo(wamid)))[1] is EchoOutcome.DUPLICATE
    [stored] = await store.recent_messages(conversation.id, limit=5)
    assert stored.author is Author.APP

    sent = unique("wamid")
    key = unique("notice")
    await store.begin_outbound(
        NewOutbound(
            idempotency_key=key,
            conversation_id=conversation.id,
            phone_number_id=number,
            author=Author.SYSTEM,
            body="Um atendente humano vai continuar esta conversa com você.",
        )
    )
    await store.complete_outbound(key, sent, datetime.now(UTC))
    assert (await store.record_echo(echo(sent)))[1] is EchoOutcome.OWN_SEND


async def test_a_timer_that_disagrees_with_the_state_is_rederived(
    store: PostgresStore, broker: Broker
) -> None:
    clock = FakeClock()
    shell = Conversations(store, broker, NumbersConfig(), clock)
    conversation = await store.conversation(_number(), unique("55"))
    paused = await shell.apply(
        conversation.id, EchoReceived(wamid=unique("wamid"), timestamp=clock.now, text="Oi!")
    )
    assert paused.state.mode is Mode.PAUSED
    # A stored due time the state does not back (as after a policy change).
    await store.pool.execute(
        "UPDATE conversation_timers SET due_at = $2 WHERE conversation_id = $1",
        conversation.id,
        clock.now - timedelta(seconds=1),
    )
    assert await shell.fire_due_timers(limit=1000) >= 1
    state = await shell.state(conversation.id)
    assert state is not None
    assert state.mode is Mode.PAUSED  # not expired: the state says when
    rows = await store.pool.fetch(
        "SELECT kind, due_at, leased_until FROM conversation_timers WHERE conversation_id = $1",
        conversation.id,
    )
    expected = next_timers(state, shell.policy(state.phone_number_id))
    assert [(r["kind"], r["due_at"], r["leased_until"]) for r in rows] == [
        (t.kind.value, t.due_at, None) for t in expected
    ]


async def _async(value: T) -> T:
    return value
