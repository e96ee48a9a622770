"""Router processes on the real RabbitMQ and PostgreSQL: debounce across replicas and crashes,
and the fence that keeps bot replies away from customers a human holds.

The test plays the other services' parts: it publishes webhook changes as ingest would, takes
the router's bot requests from `bot.requests` as the bot would, and takes over or releases
conversations through `Conversations` as the agent API does.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from baton.broker import EVENTS, WEBHOOKS, Broker, Delivery, QueueSpec
from baton.broker.topology import BOT_REQUESTS
from baton.conversations import Conversations
from baton.handoff import AgentReleased, AgentTookOver, ConversationState
from baton.messages import AskBot, BotTurnFinished, ReplyFenced, SendText, WebhookChange
from baton.settings import NumbersConfig
from baton.store import PostgresStore
from baton.types import Author, Mode
from devstack import ServiceSpec, Stack
from simulator import Simulator, running_simulator
from simulator.webhooks import customer_text, echo_change
from tests.conftest import unique
from tests.e2e.conftest import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.integration

T = TypeVar("T")

QUIET_SECONDS = 1.0


def _digits(prefix: str, length: int = 13) -> str:
    """A unique phone-number-like id (Meta's ids are digits)."""
    return (prefix + str(uuid.uuid4().int))[:length]


@dataclass
class Bot:
    """Takes bot requests off `bot.requests` for one business number (others are acked away)."""

    number: str
    requests: list[AskBot] = field(default_factory=list)
    markers: set[str] = field(default_factory=set)

    async def on_request(self, delivery: Delivery) -> None:
        ask = AskBot.model_validate_json(delivery.body)
        if ask.phone_number_id != self.number:
            return
        if ask.request_id.startswith("barrier-"):
            self.markers.add(ask.request_id)
        else:
            self.requests.append(ask)

    def of(self, conversation_id: int) -> list[AskBot]:
        return [r for r in self.requests if r.conversation_id == conversation_id]

    async def barrier(self, broker: Broker) -> None:
        """Wait until every bot request published before now has been taken (FIFO queue)."""
        marker = unique("barrier")
        await broker.publish_command(
            AskBot(
                request_id=marker,
                conversation_id=-1,
                phone_number_id=self.number,
                wa_id="0",
                epoch=0,
                messages=(),
            )
        )
        await eventually(lambda: _now(marker in self.markers), what="the barrier request")


@dataclass
class Events:
    deliveries: list[Delivery] = field(default_factory=list)

    async def on_event(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)

    def fenced(self, idempotency_key: str) -> list[ReplyFenced]:
        found = [
            ReplyFenced.model_validate_json(d.body)
            for d in self.deliveries
            if d.type == ReplyFenced.TYPE
        ]
        return [f for f in found if f.idempotency_key == idempotency_key]


@dataclass
class Setup:
    number: str
    numbers_file: Path
    log_dir: Path
    env: dict[str, str]


@pytest.fixture
def setup(amqp_url: str, pg_url: str, tmp_path: Path) -> Setup:
    number = _digits("9", 15)
    numbers_file = tmp_path / "numbers.toml"
    numbers_file.write_text(
        f'[numbers."{number}"]\n'
        f"debounce_quiet_seconds = {QUIET_SECONDS}\n"
        "debounce_cap_seconds = 10.0\n"
        'notice_takeover = "Um atendente vai falar com você."\n'
        'notice_back_to_bot = "O assistente voltou."\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.update(
        BATON_AMQP_URL=amqp_url,
        BATON_STORE_URL=pg_url,
        BATON_NUMBERS_FILE=str(numbers_file),
        BATON_LOG_JSON="true",
        BATON_ROUTER_SWEEP_SECONDS="0.2",
        BATON_ROUTER_TIMER_LEASE_SECONDS="2",
        BATON_ROUTER_RELAY_LEASE_SECONDS="2",
    )
    return Setup(number, numbers_file, tmp_path / "logs", env)


@pytest.fixture
async def bot(broker: Broker, setup: Setup) -> Bot:
    taker = Bot(setup.number)
    await broker.consume(BOT_REQUESTS, taker.on_request, prefetch=50, max_attempts=1)
    return taker


@pytest.fixture
async def events(broker: Broker) -> Events:
    seen = Events()
    spec = QueueSpec(unique("test.router.events"), EVENTS, ("event.#",))
    await broker.consume(spec, seen.on_event, prefetch=50, max_attempts=1)
    return seen


def _processes(setup: Setup, names: list[str], env: dict[str, str] | None = None) -> Stack:
    specs = []
    for name in names:
        port = free_port()
        module = name.split("-")[0]
        specs.append(
            ServiceSpec(
                name,
                (sys.executable, "-m", f"services.{module}"),
                f"http://127.0.0.1:{port}/readyz",
                {"BATON_METRICS_PORT": str(port)},
            )
        )
    return Stack(specs, {**setup.env, **(env or {})}, setup.log_dir)


@pytest.fixture
async def two_routers(setup: Setup) -> AsyncIterator[Stack]:
    stack = _processes(setup, ["router-a", "router-b"])
    stack.start()
    try:
        await stack.wait_ready(timeout=30)
        yield stack
    finally:
        codes = stack.stop()
    killed = {n for n, c in codes.items() if c == -signal.SIGKILL}
    unclean = {n: c for n, c in codes.items() if c and n not in killed}
    assert not unclean, f"routers did not stop cleanly: {unclean}; logs in {setup.log_dir}"


async def _customer_writes(
    broker: Broker, number: str, customer: str, text: str, *, at: datetime | None = None
) -> str:
    wamid = unique("wamid.T")
    change = customer_text(number, customer, text, wamid=wamid, timestamp=at)
    await _publish_change(broker, change)
    return wamid


async def _publish_change(broker: Broker, change: dict[str, object]) -> None:
    value = change["value"]
    assert isinstance(value, dict)
    await broker.publish(
        WEBHOOKS,
        str(change["field"]),
        WebhookChange(
            entry_id="800000000000001",
            field=str(change["field"]),
            value=value,
            received_at=datetime.now(UTC),
        ),
    )


async def _burst(broker: Broker, number: str, customer: str, count: int) -> list[str]:
    """`count` messages the customer typed over the last seconds, arriving together."""
    start = datetime.now(UTC) - timedelta(seconds=count)
    return [
        await _customer_writes(
            broker, number, customer, f"parte {i}", at=start + timedelta(seconds=i)
        )
        for i in range(count)
    ]


async def _state(store: PostgresStore, number: str, customer: str) -> ConversationState | None:
    row = await store.pool.fetchval(
        "SELECT id FROM conversations WHERE phone_number_id = $1 AND wa_id = $2", number, customer
    )
    return None if row is None else await store.load_conversation_state(row)


async def _settled(store: PostgresStore, conversation_id: int) -> bool:
    """Nothing can produce another bot request without a new event: no buffer, timer or effect."""
    state = await store.load_conversation_state(conversation_id)
    left = await store.pool.fetchval(
        "SELECT (SELECT count(*) FROM conversation_timers WHERE conversation_id = $1)"
        " + (SELECT count(*) FROM pending_effects WHERE conversation_id = $1)",
        conversation_id,
    )
    return state is not None and not state.buffer and left == 0


def _decisions(stack: Stack, conversation_id: int) -> Iterator[tuple[str, int]]:
    """(router process, version) of every save of the conversation, from the JSON logs."""
    for spec in stack.specs:
        for line in stack.log_path(spec.name).read_text().splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if (
                entry.get("event") == "conversation.decided"
                and entry.get("conversation_id") == conversation_id
            ):
                yield spec.name, entry.get("version")


def _last_saver(stack: Stack, conversation_id: int, version: int) -> str:
    """Which router process saved this version of the conversation."""
    for name, saved in _decisions(stack, conversation_id):
        if saved == version:
            return name
    raise AssertionError(f"no router logged version {version} of conversation {conversation_id}")


def _savers(stack: Stack, conversation_id: int) -> set[str]:
    """Every router process that saved a version of the conversation."""
    return {name for name, _ in _decisions(stack, conversation_id)}


async def _one_request(
    bot: Bot, broker: Broker, store: PostgresStore, number: str, customer: str
) -> AskBot:
    """Wait for the conversation's bot request, then prove no second one is coming."""
    await eventually(lambda: _state_has_request(store, number, customer), what="the flush")
    state = await _state(store, number, customer)
    assert state is not None
    await eventually(lambda: _settled(store, state.conversation_id), what="a settled state")
    await bot.barrier(broker)
    requests = bot.of(state.conversation_id)
    assert len(requests) == 1, [r.request_id for r in requests]
    return requests[0]


async def _state_has_request(store: PostgresStore, number: str, customer: str) -> bool:
    state = await _state(store, number, customer)
    return state is not None and state.pending_bot_request is not None


# --- one burst, one bot request, across two routers -----------------------------------------


async def test_a_burst_across_two_routers_is_one_request_in_order(
    two_routers: Stack, broker: Broker, store: PostgresStore, bot: Bot, setup: Setup
) -> None:
    # The broker spreads deliveries over both routers' consumers; a burst that happened to land
    # on one router only would prove nothing about two, so such a burst is played again.
    for _ in range(3):
        customer = _digits("55")
        started = datetime.now(UTC)
        wamids = await _burst(broker, setup.number, customer, 5)
        assert datetime.now(UTC) - started < timedelta(milliseconds=300)

        request = await _one_request(bot, broker, store, setup.number, customer)
        assert [m.wamid for m in request.messages] == wamids
        if len(_savers(two_routers, request.conversation_id)) == 2:
            return
    raise AssertionError("every burst was decided by one router alone")


async def test_a_router_killed_mid_window_still_gives_one_request(
    two_routers: Stack, broker: Broker, store: PostgresStore, bot: Bot, setup: Setup
) -> None:
    customer = _digits("55")
    wamids = await _burst(broker, setup.number, customer, 5)

    async def buffered() -> ConversationState | None:
        state = await _state(store, setup.number, customer)
        return state if state is not None and len(state.buffer) == 5 else None

    state = await eventually(buffered, what="the whole burst buffered")
    # Kill the router that armed the latest flush deadline: only the survivor's sweep is left.
    victim = _last_saver(two_routers, state.conversation_id, state.version)
    two_routers.stop(victim, sig=signal.SIGKILL)
    still = await _state(store, setup.number, customer)
    assert still is not None and still.buffer, "flushed before the kill: the test proves nothing"

    request = await _one_request(bot, broker, store, setup.number, customer)
    assert [m.wamid for m in request.messages] == wamids


async def test_a_router_killed_mid_burst_loses_no_message(
    two_routers: Stack, broker: Broker, store: PostgresStore, bot: Bot, setup: Setup
) -> None:
    customer = _digits("55")
    start = datetime.now(UTC) - timedelta(seconds=5)
    wamids = []
    for i in range(5):
        if i == 2:  # deliveries it took but did not settle go to the survivor
            two_routers.stop("router-a", sig=signal.SIGKILL)
        at = start + timedelta(seconds=i)
        wamids.append(await _customer_writes(broker, setup.number, customer, f"m{i}", at=at))

    request = await _one_request(bot, broker, store, setup.number, customer)
    assert [m.wamid for m in request.messages] == wamids


async def test_a_router_stopped_with_sigterm_mid_burst_drains_and_loses_nothing(
    two_routers: Stack, broker: Broker, store: PostgresStore, bot: Bot, setup: Setup
) -> None:
    customer = _digits("55")
    start = datetime.now(UTC) - timedelta(seconds=5)
    wamids = []
    for i in range(5):
        if i == 2:  # a graceful stop: what it took it finishes and settles, then it exits
            assert two_routers.stop("router-a", sig=signal.SIGTERM) == {"router-a": 0}
        at = start + timedelta(seconds=i)
        wamids.append(await _customer_writes(broker, setup.number, customer, f"m{i}", at=at))

    request = await _one_request(bot, broker, store, setup.number, customer)
    assert [m.wamid for m in request.messages] == wamids


async def test_after_a_hand_back_the_bot_gets_only_newer_messages(
    two_routers: Stack, broker: Broker, store: PostgresStore, bot: Bot, setup: Setup
) -> None:
    number, customer = setup.number, _digits("55")
    await _customer_writes(broker, number, customer, "oi")
    state = await eventually(lambda: _state(store, number, customer), what="the conversation")
    first = await _next_request(bot, state.conversation_id, 0)
    await broker.publish_command(
        BotTurnFinished(
            request_id=first.request_id,
            conversation_id=first.conversation_id,
            phone_number_id=number,
            wa_id=customer,
            epoch=first.epoch,
            reply_count=1,
        )
    )
    await _publish_change(broker, echo_change(number, customer, "Oi, é a Ana. Pode falar!"))
    await eventually(lambda: _mode_is(store, number, customer, Mode.PAUSED), what="the pause")
    await _customer_writes(broker, number, customer, "quero trocar o tamanho")

    async def waiting() -> bool:
        current = await _state(store, number, customer)
        return current is not None and current.waiting_since is not None

    await eventually(waiting, what="the customer waiting on the owner")
    await _publish_change(broker, echo_change(number, customer, "#bot"))
    await eventually(lambda: _mode_is(store, number, customer, Mode.BOT), what="the resume")
    newer = await _customer_writes(broker, number, customer, "obrigado!")

    second = await _next_request(bot, state.conversation_id, 1)
    assert [m.wamid for m in second.messages] == [newer]
    assert second.epoch == first.epoch + 2


# --- the fence: no bot message reaches WhatsApp while a human holds the conversation --------


@dataclass
class Fenced:
    stack: Stack
    sim: Simulator
    shell: Conversations


@pytest.fixture
async def router_and_outbox(
    setup: Setup, store: PostgresStore, broker: Broker
) -> AsyncIterator[Fenced]:
    async with running_simulator() as sim:
        stack = _processes(setup, ["router-a", "outbox-a"], {"BATON_GRAPH_API_URL": sim.base_url})
        stack.start()
        try:
            await stack.wait_ready(timeout=30)
            shell = Conversations(store, broker, NumbersConfig.load(setup.numbers_file))
            yield Fenced(stack, sim, shell)
        finally:
            codes = stack.stop()
    assert not any(codes.values()), f"unclean stop {codes}; logs in {setup.log_dir}"


async def _reply(broker: Broker, ask: AskBot, text: str) -> SendText:
    """What the bot does for a request: its reply, then the end of its turn."""
    reply = SendText(
        idempotency_key=f"reply:{ask.request_id}",
        conversation_id=ask.conversation_id,
        phone_number_id=ask.phone_number_id,
        to=ask.wa_id,
        body=text,
        author=Author.BOT,
        epoch=ask.epoch,
        request_id=ask.request_id,
    )
    await broker.publish_command(reply)
    await broker.publish_command(
        BotTurnFinished(
            request_id=ask.request_id,
            conversation_id=ask.conversation_id,
            phone_number_id=ask.phone_number_id,
            wa_id=ask.wa_id,
            epoch=ask.epoch,
            reply_count=1,
        )
    )
    return reply


async def _next_request(bot: Bot, conversation_id: int, seen: int) -> AskBot:
    async def arrived() -> AskBot | None:
        requests = bot.of(conversation_id)
        return requests[seen] if len(requests) > seen else None

    return await eventually(arrived, what=f"bot request #{seen + 1}")


def _bodies(sim: Simulator, customer: str) -> list[str | None]:
    return [m.body for m in sim.accepted(to=customer)]


async def test_no_bot_reply_reaches_a_customer_a_human_holds(
    router_and_outbox: Fenced, broker: Broker, store: PostgresStore, bot: Bot, events: Events
) -> None:
    sim, shell = router_and_outbox.sim, router_and_outbox.shell
    number, customer = bot.number, _digits("55")

    # Takeover while the bot is answering: its reply is fenced, the notice is sent.
    await _customer_writes(broker, number, customer, "qual o prazo de entrega?")
    state = await eventually(lambda: _state(store, number, customer), what="the conversation")
    cid = state.conversation_id
    first = await _next_request(bot, cid, 0)
    await shell.apply(cid, AgentTookOver(agent_id="ana"))
    late = await _reply(broker, first, "Entregamos em 3 dias.")
    await eventually(lambda: _now(events.fenced(late.idempotency_key)), what="the fence")
    await sim.wait_until(lambda: "Um atendente vai falar com você." in _bodies(sim, customer))
    assert late.body not in _bodies(sim, customer)

    # Back to the bot: its next reply goes out (the fence is not simply closed).
    await shell.apply(cid, AgentReleased(agent_id="ana"))
    await _customer_writes(broker, number, customer, "e o frete?")
    second = await _next_request(bot, cid, 1)
    sent = await _reply(broker, second, "O frete é grátis.")
    await sim.wait_until(lambda: sent.body in _bodies(sim, customer))

    # Superseded: the customer wrote again while the bot was answering.
    await _customer_writes(broker, number, customer, "pergunta A")
    third = await _next_request(bot, cid, 2)
    await _customer_writes(broker, number, customer, "pergunta B")
    fourth = await _next_request(bot, cid, 3)
    assert [m.text for m in fourth.messages] == ["pergunta A", "pergunta B"]
    stale = await _reply(broker, third, "Resposta só para A.")
    await eventually(lambda: _now(events.fenced(stale.idempotency_key)), what="the fence")
    both = await _reply(broker, fourth, "Resposta para A e B.")
    await sim.wait_until(lambda: both.body in _bodies(sim, customer))
    assert stale.body not in _bodies(sim, customer)

    # The owner answers from the Business App while the bot is answering.
    await _customer_writes(broker, number, customer, "vocês abrem domingo?")
    fifth = await _next_request(bot, cid, 4)
    await _publish_change(broker, echo_change(number, customer, "Abrimos sim, das 9h às 13h!"))
    await eventually(
        lambda: _mode_is(store, number, customer, Mode.PAUSED), what="the owner's pause"
    )
    owner_raced = await _reply(broker, fifth, "Não abrimos aos domingos.")
    await eventually(lambda: _now(events.fenced(owner_raced.idempotency_key)), what="the fence")
    assert owner_raced.body not in _bodies(sim, customer)


async def _mode_is(store: PostgresStore, number: str, customer: str, mode: Mode) -> bool:
    state = await _state(store, number, customer)
    return state is not None and state.mode is mode


async def _now(value: T) -> T:
    return value
