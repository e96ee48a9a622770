"""Handoff end to end across real processes: the owner's echoes, pause expiry, supersede.

The stack answers through the fake LLM (a process, driven over HTTP: it can hold a call) and
reads short per-number durations from its numbers file, so nothing waits for minutes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from baton.broker import EVENTS, Broker, Delivery, QueueSpec
from baton.messages import ReplyFenced
from baton.store import PostgresStore
from baton.types import Mode
from simulator import DEV_APP_SECRET, SimulatorClient
from simulator.webhooks import (
    customer_text,
    echo_change,
    envelope,
    meta_json,
    post_webhook,
)
from tests.conftest import unique
from tests.e2e.conftest import (
    RunningStack,
    fake_llm,
    free_port,
    fresh_ports,
    launched,
    stack_env,
)
from tests.fakes.llm import ECHO_PREFIX
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

NUMBER = "900000000000301"  # the owner pauses for the default 2 hours
SHORT_PAUSE_NUMBER = "900000000000302"  # a pause ends after 2 seconds
SHORT_PAUSE_SECONDS = 2


@pytest.fixture(scope="module")
def handoff_stack(
    amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningStack, str]]:
    base = tmp_path_factory.mktemp("handoff-stack")
    numbers = base / "numbers.toml"
    numbers.write_text(
        f'[numbers."{NUMBER}"]\n'
        "debounce_quiet_seconds = 0.5\n"
        f'[numbers."{SHORT_PAUSE_NUMBER}"]\n'
        "debounce_quiet_seconds = 0.5\n"
        f"pause_seconds = {SHORT_PAUSE_SECONDS}\n"
    )
    ports = fresh_ports()
    llm_port = free_port()
    llm_url = f"http://127.0.0.1:{llm_port}"
    env = stack_env(
        amqp_url,
        pg_url,
        ports,
        BATON_NUMBERS_FILE=str(numbers),
        BATON_LLM_BASE_URL=f"{llm_url}/v1",
        BATON_LLM_API_KEY="fake",
        BATON_ROUTER_SWEEP_SECONDS="0.2",
    )
    with launched(env, ports, base / "logs", fakes=[fake_llm(llm_port)]) as running:
        yield running, llm_url


@pytest.fixture
def running(handoff_stack: tuple[RunningStack, str]) -> RunningStack:
    return handoff_stack[0]


@pytest.fixture
async def sim(running: RunningStack) -> AsyncIterator[SimulatorClient]:
    client = SimulatorClient(running.sim_url)
    yield client
    await client.aclose()


@pytest.fixture
async def llm(handoff_stack: tuple[RunningStack, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=handoff_stack[1], timeout=5) as client:
        yield client


@pytest.fixture
async def fenced(broker: Broker) -> list[ReplyFenced]:
    seen: list[ReplyFenced] = []

    async def collect(delivery: Delivery) -> None:
        seen.append(ReplyFenced.model_validate_json(delivery.body))

    spec = QueueSpec(unique("test.e2e.fenced"), EVENTS, (ReplyFenced.TYPE,))
    await broker.consume(spec, collect, prefetch=10, max_attempts=1)
    return seen


def _customer() -> str:
    return "55" + str(uuid.uuid4().int)[:11]


async def _say(running: RunningStack, number: str, customer: str, text: str) -> None:
    body = meta_json(envelope([customer_text(number, customer, text)]))
    assert (await post_webhook(running.webhook_url, body, DEV_APP_SECRET)).status_code == 200


async def _owner_types(running: RunningStack, number: str, customer: str, text: str) -> bytes:
    """The owner writes from the WhatsApp Business App; returns the webhook, to redeliver it."""
    body = meta_json(envelope([echo_change(number, customer, text)]))
    assert (await post_webhook(running.webhook_url, body, DEV_APP_SECRET)).status_code == 200
    return body


async def _bot_replies(sim: SimulatorClient, customer: str) -> list[str]:
    sent = await sim.messages(to=customer)
    return [m.body for m in sent if m.wamid and m.body and m.body.startswith(ECHO_PREFIX)]


async def _replies(sim: SimulatorClient, customer: str, count: int) -> list[str]:
    async def enough() -> list[str] | None:
        replies = await _bot_replies(sim, customer)
        return replies if len(replies) >= count else None

    return await eventually(enough, what=f"{count} bot replies")


async def _mode(store: PostgresStore, number: str, customer: str) -> Mode | None:
    mode = await store.pool.fetchval(
        "SELECT mode FROM conversations WHERE phone_number_id = $1 AND wa_id = $2", number, customer
    )
    return None if mode is None else Mode(mode)


async def _becomes(store: PostgresStore, number: str, customer: str, mode: Mode) -> None:
    async def reached() -> bool:
        return await _mode(store, number, customer) is mode

    await eventually(reached, what=f"mode {mode}")


async def _customer_waiting(store: PostgresStore, number: str, customer: str) -> None:
    async def waiting() -> bool:
        since = await store.pool.fetchval(
            "SELECT state->>'waiting_since' FROM conversations"
            " WHERE phone_number_id = $1 AND wa_id = $2",
            number,
            customer,
        )
        return since is not None

    await eventually(waiting, what="the customer waiting on a human")


async def _router_duplicates(running: RunningStack, kind: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(running.metrics_url("router"))).text
    for family in text_string_to_metric_families(text):
        if family.name == "baton_router_duplicates":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("kind") == kind:
                    return sample.value
    return 0.0


async def test_the_owners_echo_pauses_the_bot_and_hash_bot_resumes_it(
    running: RunningStack, sim: SimulatorClient, store: PostgresStore, llm: httpx.AsyncClient
) -> None:
    customer = _customer()
    await _say(running, NUMBER, customer, "oi")
    assert await _replies(sim, customer, 1) == [f"{ECHO_PREFIX}oi"]

    await _owner_types(running, NUMBER, customer, "Oi! Aqui é a Ana, já te ajudo.")
    await _becomes(store, NUMBER, customer, Mode.PAUSED)
    await _say(running, NUMBER, customer, "quero trocar o tamanho")
    # Webhooks are not ordered: let the router see the held message before the owner's `#bot`.
    await _customer_waiting(store, NUMBER, customer)
    await _owner_types(running, NUMBER, customer, "#bot")
    await _becomes(store, NUMBER, customer, Mode.BOT)
    await _say(running, NUMBER, customer, "obrigado")

    replies = await _replies(sim, customer, 2)
    assert len(replies) == 2  # nothing answered the message the owner held
    assert replies[1].endswith("obrigado")
    calls = (await llm.get("/_control/requests")).json()
    [last] = [c for c in calls if "obrigado" in str(c["body"]["messages"])]
    contents = [(m["role"], m["content"]) for m in last["body"]["messages"]]
    # The owner's words are the business's turn (consecutive business turns are merged into
    # one, and WhatsApp's whole-second timestamps may order them either way around the bot's
    # reply); the command is control, never context.
    business = [content for role, content in contents if role == "assistant"]
    assert any("Oi! Aqui é a Ana, já te ajudo." in content for content in business), contents
    assert not any("Aqui é a Ana" in content for role, content in contents if role == "user")
    assert not any("#bot" in str(content) for _, content in contents)


async def test_a_pause_expires_and_the_bot_answers_again(
    running: RunningStack, sim: SimulatorClient, store: PostgresStore
) -> None:
    customer = _customer()
    await _owner_types(running, SHORT_PAUSE_NUMBER, customer, "Bom dia! Posso ajudar?")
    # A conversation the business started is the owner's: it starts paused, not bot-driven.
    await _becomes(store, SHORT_PAUSE_NUMBER, customer, Mode.PAUSED)
    await _becomes(store, SHORT_PAUSE_NUMBER, customer, Mode.BOT)

    await _say(running, SHORT_PAUSE_NUMBER, customer, "ainda tem o modelo azul?")
    assert await _replies(sim, customer, 1) == [f"{ECHO_PREFIX}ainda tem o modelo azul?"]


async def test_a_superseded_reply_never_reaches_the_customer(
    running: RunningStack,
    sim: SimulatorClient,
    store: PostgresStore,
    llm: httpx.AsyncClient,
    fenced: list[ReplyFenced],
) -> None:
    customer = _customer()
    hold = (await llm.post("/_control/holds")).json()["hold_id"]
    await _say(running, NUMBER, customer, "quanto custa o frete?")

    async def held() -> bool:
        return bool((await llm.get(f"/_control/holds/{hold}")).json()["arrived"])

    await eventually(held, what="the bot's first LLM call")
    await _say(running, NUMBER, customer, "para o CEP 01310-100")
    [answer] = await _replies(sim, customer, 1)
    assert answer == f"{ECHO_PREFIX}quanto custa o frete?\npara o CEP 01310-100"

    conversation_id = await store.pool.fetchval(
        "SELECT id FROM conversations WHERE phone_number_id = $1 AND wa_id = $2", NUMBER, customer
    )
    (await llm.post(f"/_control/holds/{hold}/release")).raise_for_status()

    async def dropped() -> list[ReplyFenced]:
        return [f for f in fenced if f.conversation_id == conversation_id]

    [fence] = await eventually(dropped, what="the stale reply fenced")
    assert fence.reason == "superseded"
    assert await _bot_replies(sim, customer) == [answer]


async def test_an_old_echo_redelivered_after_hand_back_does_not_pause_again(
    running: RunningStack, sim: SimulatorClient, store: PostgresStore
) -> None:
    customer = _customer()
    await _say(running, NUMBER, customer, "oi")
    await _replies(sim, customer, 1)
    echo = await _owner_types(running, NUMBER, customer, "Já volto a falar com você")
    await _becomes(store, NUMBER, customer, Mode.PAUSED)
    await _owner_types(running, NUMBER, customer, "#resume")
    await _becomes(store, NUMBER, customer, Mode.BOT)

    before = await _router_duplicates(running, "echo")
    assert (await post_webhook(running.webhook_url, echo, DEV_APP_SECRET)).status_code == 200

    async def dropped() -> bool:
        return await _router_duplicates(running, "echo") > before

    await eventually(dropped, what="the redelivered echo dropped")
    assert await _mode(store, NUMBER, customer) is Mode.BOT
    await _say(running, NUMBER, customer, "e agora?")
    replies = await _replies(sim, customer, 2)
    assert replies[1].endswith("e agora?")
