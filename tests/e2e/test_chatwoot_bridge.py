"""The Chatwoot bridge end to end: the whole stack as processes, a fake Chatwoot on loopback.

The fake (tests/fakes/chatwoot) keeps contacts, conversations and messages, enforces the access
token and calls the bridge's callback the way Chatwoot does (signed), including duplicate and
out-of-order deliveries; its agents act through `ChatwootControl`. The customer is the WhatsApp
simulator; the bot is the fake LLM (it echoes, or holds a reply).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from baton.conversations import policy_for
from baton.handoff import NoticeKind, notice_text
from baton.settings import NumberSettings
from devstack import ServiceSpec, plan
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
    numbers_file,
    stack_env,
)
from tests.e2e.console_support import AGENT_TOKENS, ALICE_TOKEN, FakeLLMControl, sse
from tests.fakes.chatwoot import ChatwootControl
from tests.fakes.llm import ECHO_PREFIX
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

PHONE_NUMBER_ID = "900000000000013"
NUMBER = NumberSettings(
    phone_number_id=PHONE_NUMBER_ID, debounce_quiet_seconds=0.3, debounce_cap_seconds=2.0
)
CW_TOKEN = "fake-chatwoot-access-token"
CW_SECRET = "fake-chatwoot-webhook-secret"
ANA = 7  # a Chatwoot agent of the fake (ana@example.com)
# The scenario is a 30 s outage; the default here is shorter to keep the suite fast.
OUTAGE_SECONDS = float(os.environ.get("BATON_TEST_CHATWOOT_OUTAGE_SECONDS", "6"))


@pytest.fixture(scope="module")
def bridge_stack(
    amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningStack, str, str]]:
    """The stack plus the fake LLM, the fake Chatwoot and the bridge."""
    llm_port, cw_port = free_port(), free_port()
    ports = fresh_ports()
    workdir: Path = tmp_path_factory.mktemp("chatwoot-stack")
    numbers = numbers_file(workdir, PHONE_NUMBER_ID)
    env = stack_env(
        amqp_url,
        pg_url,
        ports,
        BATON_LLM_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
        BATON_LLM_API_KEY="fake-key",
        BATON_LLM_TIMEOUT_SECONDS="30",
        BATON_AGENT_TOKENS=AGENT_TOKENS,
        BATON_NUMBERS_FILE=str(numbers),
        BATON_CHATWOOT_NUMBERS=PHONE_NUMBER_ID,
        BATON_CHATWOOT_URL=f"http://127.0.0.1:{cw_port}",
        BATON_CHATWOOT_ACCOUNT_ID="1",
        BATON_CHATWOOT_INBOX_ID="3",
        BATON_CHATWOOT_ACCESS_TOKEN=CW_TOKEN,
        BATON_CHATWOOT_WEBHOOK_SECRET=CW_SECRET,
    )
    callback = f"http://127.0.0.1:{ports.chatwoot}/chatwoot/{PHONE_NUMBER_ID}/callback"
    fakes = [
        fake_llm(llm_port),
        ServiceSpec(
            "fake_chatwoot",
            (
                sys.executable,
                "-m",
                "tests.fakes.chatwoot",
                "--port",
                str(cw_port),
                "--token",
                CW_TOKEN,
                "--webhook-url",
                callback,
                "--secret",
                CW_SECRET,
            ),
            f"http://127.0.0.1:{cw_port}/_fake/health",
        ),
    ]
    assert "chatwoot" in {s.name for s in plan(env, ports, with_simulator=True)}, (
        "the stack runs the bridge when configured"
    )
    with launched(env, ports, workdir / "logs", fakes=fakes) as running:
        yield running, f"http://127.0.0.1:{llm_port}", f"http://127.0.0.1:{cw_port}"


@pytest.fixture
async def sim(bridge_stack: tuple[RunningStack, str, str]) -> AsyncIterator[SimulatorClient]:
    client = SimulatorClient(bridge_stack[0].sim_url)
    yield client
    await client.aclose()


@pytest.fixture
async def llm(bridge_stack: tuple[RunningStack, str, str]) -> AsyncIterator[FakeLLMControl]:
    control = FakeLLMControl(bridge_stack[1])
    yield control
    await control.aclose()


@pytest.fixture
async def cw(bridge_stack: tuple[RunningStack, str, str]) -> AsyncIterator[ChatwootControl]:
    control = ChatwootControl(bridge_stack[2])
    yield control
    await control.set_mode(down=False, duplicate=False, hold=False)
    await control.aclose()


def new_customer() -> str:
    return "55" + unique("")[1:10].translate(str.maketrans("abcdef", "123456"))


async def customer_says(stack: RunningStack, customer: str, text: str) -> None:
    body = meta_json(envelope([customer_text(PHONE_NUMBER_ID, customer, text)]))
    assert (await post_webhook(stack.webhook_url, body, DEV_APP_SECRET)).status_code == 200


async def owner_says(stack: RunningStack, customer: str, text: str) -> None:
    body = meta_json(envelope([echo_change(PHONE_NUMBER_ID, customer, text)]))
    assert (await post_webhook(stack.webhook_url, body, DEV_APP_SECRET)).status_code == 200


async def until_received(sim: SimulatorClient, customer: str, text: str) -> list[str]:
    async def probe() -> list[str] | None:
        bodies = [m.body or "" for m in await sim.messages(to=customer) if m.wamid is not None]
        return bodies if text in bodies else None

    return await eventually(probe, timeout=30, what=f"{text!r} at the simulator")


async def chatwoot_conversation(
    cw: ChatwootControl, customer: str, *, until: Any = None, what: str = "it"
) -> dict[str, Any]:
    """The customer's Chatwoot conversation once `until(conversation)` holds."""

    async def probe() -> dict[str, Any] | None:
        found = await cw.conversation_of(customer)
        return found if found is not None and (until is None or until(found)) else None

    return await eventually(probe, timeout=30, what=f"Chatwoot: {what}")


def contents(conversation: dict[str, Any], *, private: bool = False) -> list[str]:
    return [str(m["content"]) for m in conversation["messages"] if bool(m["private"]) == private]


def has(text: str) -> Any:
    return lambda c: any(text in m for m in contents(c))


async def test_a_customer_message_appears_in_chatwoot_and_the_bot_reply_after_it(
    bridge_stack: tuple[RunningStack, str, str], sim: SimulatorClient, cw: ChatwootControl
) -> None:
    stack = bridge_stack[0]
    customer = new_customer()
    await customer_says(stack, customer, "Olá, bom dia")
    await until_received(sim, customer, ECHO_PREFIX + "Olá, bom dia")
    conv = await chatwoot_conversation(
        cw, customer, until=has(ECHO_PREFIX + "Olá, bom dia"), what="the bot's reply"
    )
    messages = [(m["message_type"], m["content"]) for m in conv["messages"] if not m["private"]]
    assert messages == [
        ("incoming", "Olá, bom dia"),
        ("outgoing", f"🤖 Bot: {ECHO_PREFIX}Olá, bom dia"),
    ]
    assert conv["status"] == "pending"  # the bot holds it


async def test_an_agent_opens_and_replies_from_chatwoot_and_the_late_bot_reply_is_fenced(
    bridge_stack: tuple[RunningStack, str, str],
    sim: SimulatorClient,
    llm: FakeLLMControl,
    cw: ChatwootControl,
) -> None:
    stack = bridge_stack[0]
    customer = new_customer()
    takeover_notice = notice_text(policy_for(NUMBER), NoticeKind.TAKEOVER)
    await customer_says(stack, customer, "Oi")
    await until_received(sim, customer, ECHO_PREFIX + "Oi")
    conv = await chatwoot_conversation(cw, customer, until=has(ECHO_PREFIX + "Oi"))
    console = f"http://127.0.0.1:{stack.ports.console}"
    async with sse(console, ALICE_TOKEN, params={"number": PHONE_NUMBER_ID}) as events:
        await llm.reply_next("RESPOSTA-ATRASADA")
        hold = await llm.hold_next()
        await customer_says(stack, customer, "Quero cancelar meu pedido")
        await eventually(lambda: llm.arrived(hold), what="the bot's LLM call")
        await cw.agent_open(conv["id"], ANA)
        await until_received(sim, customer, takeover_notice)
        await llm.release(hold)
        await events.find(
            lambda e: e.event == "reply_fenced",
            what="the late bot reply fenced",
        )
        # Chatwoot calls back twice per message here: the customer still gets it once.
        await cw.set_mode(duplicate=True)
        await cw.agent_reply(conv["id"], ANA, "Oi, sou a Ana. Vou ajudar.")
        bodies = await until_received(sim, customer, "Oi, sou a Ana. Vou ajudar.")
        await cw.agent_reply(conv["id"], ANA, "Nota interna", private=True)
        await cw.agent_reply(conv["id"], ANA, "Já verifiquei.")
        bodies = await until_received(sim, customer, "Já verifiquei.")
    assert "RESPOSTA-ATRASADA" not in bodies
    assert "Nota interna" not in bodies
    assert bodies.count("Oi, sou a Ana. Vou ajudar.") == 1
    conv = await chatwoot_conversation(cw, customer)
    assert (conv["status"], conv["meta"]["assignee"]["id"]) == ("open", ANA)
    assert not any("RESPOSTA-ATRASADA" in m for m in contents(conv))


async def test_resolving_in_chatwoot_gives_the_conversation_back_to_the_bot(
    bridge_stack: tuple[RunningStack, str, str], sim: SimulatorClient, cw: ChatwootControl
) -> None:
    stack = bridge_stack[0]
    customer = new_customer()
    policy = policy_for(NUMBER)
    await customer_says(stack, customer, "Bom dia")
    await until_received(sim, customer, ECHO_PREFIX + "Bom dia")
    conv = await chatwoot_conversation(cw, customer, until=has(ECHO_PREFIX + "Bom dia"))
    await cw.agent_open(conv["id"], ANA)
    await until_received(sim, customer, notice_text(policy, NoticeKind.TAKEOVER))
    await cw.agent_status(conv["id"], "resolved")
    await until_received(sim, customer, notice_text(policy, NoticeKind.BACK_TO_BOT))
    await customer_says(stack, customer, "E o prazo de entrega?")
    await until_received(sim, customer, ECHO_PREFIX + "E o prazo de entrega?")
    # Baton's bot mode shows as `pending`, unassigned.
    conv = await chatwoot_conversation(
        cw,
        customer,
        until=lambda c: c["status"] == "pending" and has(ECHO_PREFIX + "E o prazo")(c),
        what="pending with the bot's answer",
    )
    assert conv["meta"]["assignee"] is None


async def test_the_owners_echo_snoozes_the_chatwoot_conversation_until_the_pause_ends(
    bridge_stack: tuple[RunningStack, str, str], sim: SimulatorClient, cw: ChatwootControl
) -> None:
    stack = bridge_stack[0]
    customer = new_customer()
    await customer_says(stack, customer, "Vocês abrem hoje?")
    await until_received(sim, customer, ECHO_PREFIX + "Vocês abrem hoje?")
    await owner_says(stack, customer, "Abrimos às 9h!")
    owner = "📱 Business App (owner): Abrimos às 9h!"
    conv = await chatwoot_conversation(
        cw,
        customer,
        until=lambda c: c["status"] == "snoozed" and owner in contents(c),
        what="snoozed, with the owner's message",
    )
    assert conv["snoozed_until"] is not None
    # The customer answers: Chatwoot reopens a snoozed conversation by itself; the owner still
    # holds it in Baton, so the bridge snoozes it again and the bot stays silent.
    await customer_says(stack, customer, "Obrigado")
    await chatwoot_conversation(
        cw,
        customer,
        until=lambda c: c["status"] == "snoozed" and "Obrigado" in contents(c),
        what="snoozed again after the customer's reply",
    )
    bodies = [m.body for m in await sim.messages(to=customer) if m.wamid is not None]
    assert ECHO_PREFIX + "Obrigado" not in bodies


async def test_chatwoot_down_the_bridge_catches_up_once_and_in_order(
    bridge_stack: tuple[RunningStack, str, str], sim: SimulatorClient, cw: ChatwootControl
) -> None:
    stack = bridge_stack[0]
    customer = new_customer()
    await cw.set_mode(down=True)
    texts = ["primeira", "segunda", "terceira"]
    for text in texts:
        # WhatsApp does not wait for Chatwoot: every answer arrives during the outage.
        await customer_says(stack, customer, text)
        await until_received(sim, customer, ECHO_PREFIX + text)

    async def lagging() -> bool:
        async with httpx.AsyncClient() as http:
            page = (await http.get(stack.metrics_url("chatwoot"))).text
        return any(
            line.startswith("baton_chatwoot_lag_seconds ") and float(line.split()[1]) > 0
            for line in page.splitlines()
        )

    await eventually(lagging, what="the bridge's lag metric")
    assert await cw.conversation_of(customer) is None
    await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself: Chatwoot stays down this long
    await cw.set_mode(down=False)
    expected = [t for text in texts for t in (text, f"🤖 Bot: {ECHO_PREFIX}{text}")]
    conv = await chatwoot_conversation(
        cw,
        customer,
        until=lambda c: len(contents(c)) >= len(expected),
        what="everything after the outage",
    )
    assert contents(conv) == expected


async def test_a_forged_callback_is_refused_and_changes_nothing(
    bridge_stack: tuple[RunningStack, str, str], sim: SimulatorClient, cw: ChatwootControl
) -> None:
    stack = bridge_stack[0]
    customer = new_customer()
    await customer_says(stack, customer, "Olá")
    await until_received(sim, customer, ECHO_PREFIX + "Olá")
    conv = await chatwoot_conversation(cw, customer, until=has(ECHO_PREFIX + "Olá"))
    url = f"http://127.0.0.1:{stack.ports.chatwoot}/chatwoot/{PHONE_NUMBER_ID}/callback"
    takeover = orjson.dumps(
        {
            "event": "conversation_status_changed",
            "id": conv["id"],
            "inbox_id": 3,
            "status": "open",
            "updated_at": 9e9,
            "meta": {"assignee": {"id": ANA, "name": "Ana", "type": "user"}},
        }
    )
    async with httpx.AsyncClient() as http:
        forged = await http.post(
            url,
            content=takeover,
            headers={"X-Chatwoot-Signature": "sha256=" + "0" * 64, "X-Chatwoot-Timestamp": "1"},
        )
        wrong_token = await http.post(url, content=takeover, params={"token": "guess"})
        no_auth = await http.post(url, content=takeover)
    assert [r.status_code for r in (forged, wrong_token, no_auth)] == [401, 401, 401]
    # Nothing changed: the bot still answers.
    await customer_says(stack, customer, "Tudo bem?")
    await until_received(sim, customer, ECHO_PREFIX + "Tudo bem?")
    conv = await chatwoot_conversation(cw, customer)
    assert (conv["status"], conv["meta"]["assignee"]) == ("pending", None)


async def test_callbacks_delivered_out_of_order_end_where_the_agent_left_it(
    bridge_stack: tuple[RunningStack, str, str], sim: SimulatorClient, cw: ChatwootControl
) -> None:
    stack = bridge_stack[0]
    customer = new_customer()
    await customer_says(stack, customer, "Alô")
    await until_received(sim, customer, ECHO_PREFIX + "Alô")
    conv = await chatwoot_conversation(cw, customer, until=has(ECHO_PREFIX + "Alô"))
    before = len(await cw.deliveries())
    await cw.set_mode(hold=True)
    await cw.agent_open(conv["id"], ANA)  # assignee, then open …
    await cw.agent_status(conv["id"], "resolved")  # … then resolved: the agent is done
    await cw.set_mode(hold=False)
    await cw.flush(reverse=True)  # Chatwoot delivers them newest first

    async def delivered() -> bool:
        return len(await cw.deliveries()) >= before + 3

    await eventually(delivered, what="the reordered callbacks delivered")
    # The stale "open" changed nothing, and the bridge showed the bot's `pending` again (a
    # resolved conversation would reopen as `open` when the customer writes).
    await chatwoot_conversation(
        cw,
        customer,
        until=lambda c: c["status"] == "pending" and c["meta"]["assignee"] is None,
        what="pending again",
    )
    await customer_says(stack, customer, "Ainda aí?")
    bodies = await until_received(sim, customer, ECHO_PREFIX + "Ainda aí?")
    assert notice_text(policy_for(NUMBER), NoticeKind.TAKEOVER) not in bodies
