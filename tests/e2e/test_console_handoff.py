"""An agent and the bot share one conversation, end to end, through the console process.

The whole stack runs as processes with a fake LLM (able to hold a reply) and the WhatsApp
simulator; the agent uses only the console's HTTP API and its event stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from baton.conversations import policy_for
from baton.handoff import NoticeKind, notice_text
from baton.settings import NumberSettings
from simulator import DEV_APP_SECRET, SentMessage, SimulatorClient
from simulator.webhooks import customer_text, envelope, meta_json, post_webhook
from tests.conftest import unique
from tests.e2e.conftest import (
    RunningStack,
    fake_llm,
    free_port,
    fresh_ports,
    launched,
    numbers_file,
    stack_env,
)
from tests.e2e.console_support import (
    AGENT_TOKENS,
    ALICE_TOKEN,
    FakeLLMControl,
    bearer,
    sse,
)
from tests.fakes.llm import ECHO_PREFIX
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

PHONE_NUMBER_ID = "900000000000001"
NUMBER = NumberSettings(
    phone_number_id=PHONE_NUMBER_ID, debounce_quiet_seconds=0.3, debounce_cap_seconds=2.0
)
HELD_REPLY = "RESPOSTA-QUE-CHEGOU-TARDE"


@pytest.fixture(scope="module")
def console_stack(
    amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningStack, str]]:
    """The stack with a fake LLM process, two agents, and a short debounce window."""
    llm_port = free_port()
    ports = fresh_ports()
    workdir: Path = tmp_path_factory.mktemp("console-stack")
    env = stack_env(
        amqp_url,
        pg_url,
        ports,
        BATON_LLM_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
        BATON_LLM_API_KEY="fake-key",
        BATON_LLM_TIMEOUT_SECONDS="30",
        BATON_AGENT_TOKENS=AGENT_TOKENS,
        BATON_NUMBERS_FILE=str(numbers_file(workdir, PHONE_NUMBER_ID)),
    )
    with launched(env, ports, workdir / "logs", fakes=[fake_llm(llm_port)]) as running:
        yield running, f"http://127.0.0.1:{llm_port}"


@pytest.fixture
async def sim(console_stack: tuple[RunningStack, str]) -> AsyncIterator[SimulatorClient]:
    client = SimulatorClient(console_stack[0].sim_url)
    yield client
    await client.aclose()


@pytest.fixture
async def llm(console_stack: tuple[RunningStack, str]) -> AsyncIterator[FakeLLMControl]:
    control = FakeLLMControl(console_stack[1])
    yield control
    await control.aclose()


def console_url(stack: RunningStack) -> str:
    return f"http://127.0.0.1:{stack.ports.console}"


def new_customer() -> str:
    return "55" + unique("")[1:10].translate(str.maketrans("abcdef", "123456"))


async def customer_says(stack: RunningStack, customer: str, text: str) -> None:
    body = meta_json(envelope([customer_text(PHONE_NUMBER_ID, customer, text)]))
    response = await post_webhook(stack.webhook_url, body, DEV_APP_SECRET)
    assert response.status_code == 200


async def received(sim: SimulatorClient, customer: str) -> list[str]:
    """What the customer got on WhatsApp (accepted sends), in order."""
    sent: list[SentMessage] = await sim.messages(to=customer)
    return [m.body or "" for m in sent if m.wamid is not None]


async def until_received(sim: SimulatorClient, customer: str, text: str) -> list[str]:
    async def probe() -> list[str] | None:
        bodies = await received(sim, customer)
        return bodies if text in bodies else None

    return await eventually(probe, what=f"{text!r} at the simulator")


async def test_an_agent_takes_over_mid_reply_answers_and_gives_the_conversation_back(
    console_stack: tuple[RunningStack, str], sim: SimulatorClient, llm: FakeLLMControl
) -> None:
    stack, _ = console_stack
    url = console_url(stack)
    customer = new_customer()
    policy = policy_for(NUMBER)
    takeover_notice = notice_text(policy, NoticeKind.TAKEOVER)
    back_notice = notice_text(policy, NoticeKind.BACK_TO_BOT)

    # 1. The customer writes; the bot answers.
    await customer_says(stack, customer, "Olá, bom dia")
    await until_received(sim, customer, ECHO_PREFIX + "Olá, bom dia")

    async with httpx.AsyncClient(base_url=url, headers=bearer(ALICE_TOKEN)) as alice:
        listed = await alice.get("/conversations", params={"number": PHONE_NUMBER_ID, "limit": 200})
        [conversation] = [c for c in listed.json()["items"] if c["wa_id"] == customer]
        cid = conversation["id"]
        assert (conversation["mode"], conversation["last_message"]["author"]) == ("bot", "bot")

        async with sse(url, ALICE_TOKEN, params={"conversation_id": str(cid)}) as events:
            # 2. The next answer is slow: the agent takes over while the LLM still works on it.
            await llm.reply_next(HELD_REPLY)
            hold = await llm.hold_next()
            await customer_says(stack, customer, "Quero cancelar meu pedido")
            await eventually(lambda: llm.arrived(hold), what="the bot's LLM call")
            taken = await alice.post(f"/conversations/{cid}/takeover")
            assert taken.status_code == 200
            assert (taken.json()["mode"], taken.json()["assignee"]) == ("human", "alice")
            await llm.release(hold)
            fenced = await events.find(
                lambda e: e.event == "reply_fenced", what="the held reply fenced"
            )
            assert fenced.data["conversation_id"] == cid
            bodies = await until_received(sim, customer, takeover_notice)
            assert HELD_REPLY not in bodies

            # 3. The customer writes again: no bot answer; the agent sees it live.
            calls_before = await llm.request_count()
            await customer_says(stack, customer, "Alguém aí?")
            message = await events.find(
                lambda e: (
                    e.event == "conversation.message_received" and e.data["body"] == "Alguém aí?"
                ),
                what="the customer's message on /events",
            )
            assert (message.data["author"], message.data["mode"]) == ("customer", "human")

            # 4. The agent answers; the customer gets it.
            sent = await alice.post(
                f"/conversations/{cid}/messages", json={"text": "Oi, sou a Alice. Vou ajudar."}
            )
            assert sent.status_code == 202
            await until_received(sim, customer, "Oi, sou a Alice. Vou ajudar.")
            await events.find(
                lambda e: e.event == "message_sent" and e.data["author"] == "human",
                what="the agent's message sent",
            )
            assert await llm.request_count() == calls_before

            # 5. Back to the bot: it answers the next message (and only that one).
            released = await alice.post(f"/conversations/{cid}/release")
            assert (released.status_code, released.json()["mode"]) == (200, "bot")
            await until_received(sim, customer, back_notice)
            await customer_says(stack, customer, "E o prazo de entrega?")
            bodies = await until_received(sim, customer, ECHO_PREFIX + "E o prazo de entrega?")

    assert HELD_REPLY not in bodies
    assert ECHO_PREFIX + "Alguém aí?" not in bodies
    assert bodies.index(takeover_notice) < bodies.index("Oi, sou a Alice. Vou ajudar.")
    async with httpx.AsyncClient(base_url=url, headers=bearer(ALICE_TOKEN)) as alice:
        history = (await alice.get(f"/conversations/{cid}/messages", params={"limit": 200})).json()
    authors = [(m["author"], m["body"]) for m in history["items"]]
    assert ("human", "Oi, sou a Alice. Vou ajudar.") in authors
    assert ("system", takeover_notice) in authors
    assert ("bot", HELD_REPLY) not in authors
