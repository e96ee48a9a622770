"""MCP clients work conversations end to end: the SDK's own client against the real stack.

Over Streamable HTTP against the console process (`/mcp`), and over stdio against
`python -m services.console mcp --stdio`; the customer's side is the WhatsApp simulator.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from baton.store import PostgresStore
from baton.store.audit_records import Via
from devstack import Ports, Stack, plan
from simulator import DEV_APP_SECRET, SimulatorClient
from simulator.webhooks import customer_text, envelope, meta_json, post_webhook
from tests.conftest import unique
from tests.e2e.conftest import RunningStack, free_port, stack_env
from tests.e2e.console_support import (
    AGENT_TOKENS,
    ALICE_TOKEN,
    BOB_TOKEN,
    BOT_TOKENS,
    CAROL_TOKEN,
    HELPER_TOKEN,
    agents_file_text,
    bearer,
)
from tests.e2e.mcp_support import TOOLS, call, http_client, refusal, stdio_client
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

NUMBER = "900000000000141"


@pytest.fixture(scope="module")
def mcp_stack(
    amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """The stack (offline bot) with agents alice and bob, carol scoped to another number, and
    the external bot `helper`."""
    ports = Ports(
        ingest=free_port(),
        simulator=free_port(),
        router=free_port(),
        bot=free_port(),
        outbox=free_port(),
        history=free_port(),
        console=free_port(),
    )
    workdir: Path = tmp_path_factory.mktemp("mcp-stack")
    agents = workdir / "agents.toml"
    agents.write_text(agents_file_text())
    env = stack_env(
        amqp_url,
        pg_url,
        ports,
        BATON_AGENT_TOKENS=AGENT_TOKENS,
        BATON_BOT_TOKENS=BOT_TOKENS,
        BATON_AGENTS_FILE=str(agents),
    )
    stack = Stack(plan(env, ports, with_simulator=True), env, workdir / "logs")
    stack.start()
    try:
        asyncio.run(stack.wait_ready(timeout=60))
        yield RunningStack(stack, ports, env)
    finally:
        codes = stack.stop()
        unclean = {name: code for name, code in codes.items() if name != "simulator" and code}
        assert not unclean, f"services did not stop cleanly: {unclean}; logs in {workdir}"


@pytest.fixture
async def sim(mcp_stack: RunningStack) -> AsyncIterator[SimulatorClient]:
    client = SimulatorClient(mcp_stack.sim_url)
    yield client
    await client.aclose()


@pytest.fixture
async def store(mcp_stack: RunningStack, pg_url: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(pg_url)
    yield opened
    await opened.close()


def console_url(stack: RunningStack) -> str:
    return f"http://127.0.0.1:{stack.ports.console}"


def new_customer() -> str:
    return "55" + unique("")[1:10].translate(str.maketrans("abcdef", "123456"))


async def customer_says(stack: RunningStack, customer: str, text: str) -> None:
    body = meta_json(envelope([customer_text(NUMBER, customer, text)]))
    response = await post_webhook(stack.webhook_url, body, DEV_APP_SECRET)
    assert response.status_code == 200


async def conversation_of(client: Client, customer: str) -> dict[str, Any]:
    """The customer's conversation as list_conversations shows it, once the router stored it."""

    async def probe() -> dict[str, Any] | None:
        page = await call(client, "list_conversations", {"number": NUMBER, "limit": 200})
        found = [c for c in page["items"] if c["wa_id"] == customer]
        return found[0] if found else None

    return await eventually(probe, what=f"{customer}'s conversation in list_conversations")


async def until_received(sim: SimulatorClient, customer: str, text: str) -> None:
    async def probe() -> bool:
        return text in [m.body for m in await sim.messages(to=customer) if m.wamid is not None]

    await eventually(probe, what=f"{text!r} at the simulator")


async def work_the_conversation(
    client: Client, sim: SimulatorClient, stack: RunningStack, agent: str
) -> int:
    """list → take over → send (the customer gets it) → return to bot; the conversation's id."""
    customer = new_customer()
    await customer_says(stack, customer, "preciso de ajuda com meu pedido")
    listed = await conversation_of(client, customer)

    async def window_open() -> dict[str, Any] | None:
        detail = await call(client, "get_conversation", {"conversation_id": listed["id"]})
        return detail if detail["window"]["open"] else None

    detail = await eventually(window_open, what="the 24-hour window open")
    assert detail["window"]["last_customer_at"] is not None

    taken = await call(client, "take_over", {"conversation_id": listed["id"]})
    assert (taken["mode"], taken["assignee"], taken["wa_id"]) == ("human", agent, customer)

    text = f"Oi, aqui é {agent} ({unique('m')})"
    await call(client, "send_message", {"conversation_id": listed["id"], "text": text})
    await until_received(sim, customer, text)

    async def sent_in_history() -> bool:
        history = await call(client, "get_messages", {"conversation_id": listed["id"]})
        return any(m["body"] == text and m["agent_id"] == agent for m in history["items"])

    await eventually(sent_in_history, what="the agent's message in get_messages")

    back = await call(client, "return_to_bot", {"conversation_id": listed["id"]})
    assert (back["mode"], back["assignee"]) == ("bot", None)
    return int(listed["id"])


async def test_over_http_an_agent_lists_takes_over_sends_and_returns_to_bot(
    mcp_stack: RunningStack, sim: SimulatorClient, store: PostgresStore
) -> None:
    async with http_client(console_url(mcp_stack), ALICE_TOKEN) as alice:
        assert {t.name for t in (await alice.list_tools()).tools} >= TOOLS
        conversation_id = await work_the_conversation(alice, sim, mcp_stack, "alice")
        transcript = await alice.read_resource(f"conversation://{conversation_id}")
    assert "preciso de ajuda com meu pedido" in getattr(transcript.contents[0], "text", "")
    trail = await store.audit_trail(conversation_id)
    assert [(e.action, e.principal, e.via) for e in trail] == [
        ("takeover", "alice", Via.MCP),
        ("send", "alice", Via.MCP),
        ("release", "alice", Via.MCP),
    ]


async def test_over_stdio_an_agent_lists_takes_over_sends_and_returns_to_bot(
    mcp_stack: RunningStack, sim: SimulatorClient, store: PostgresStore
) -> None:
    env = {**mcp_stack.env, "BATON_MCP_TOKEN": BOB_TOKEN}
    async with stdio_client(sys.executable, env) as bob:
        conversation_id = await work_the_conversation(bob, sim, mcp_stack, "bob")
    trail = await store.audit_trail(conversation_id)
    assert [(e.action, e.principal, e.via) for e in trail] == [
        ("takeover", "bob", Via.MCP),
        ("send", "bob", Via.MCP),
        ("release", "bob", Via.MCP),
    ]


async def test_stdio_refuses_to_start_without_a_known_token(mcp_stack: RunningStack) -> None:
    env = {**mcp_stack.env, "BATON_MCP_TOKEN": "not-a-token"}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.console", "mcp", "--stdio"],
        env=env,
        input=b"",
        capture_output=True,
        timeout=60,
        cwd=os.getcwd(),
    )
    assert done.returncode != 0
    assert b"BATON_MCP_TOKEN is not a token the console knows" in done.stderr
    assert done.stdout == b""  # nothing on the protocol channel


async def test_a_bot_token_is_refused_a_takeover(mcp_stack: RunningStack) -> None:
    customer = new_customer()
    await customer_says(mcp_stack, customer, "oi")
    async with http_client(console_url(mcp_stack), HELPER_TOKEN) as helper:
        listed = await conversation_of(helper, customer)
        refused = await refusal(helper, "take_over", {"conversation_id": listed["id"]})
        assert (refused["error"], refused["status"]) == ("forbidden", 403)
        after = await call(helper, "get_conversation", {"conversation_id": listed["id"]})
    assert after["assignee"] is None
    assert after["epoch"] == listed["epoch"]


async def test_a_number_outside_the_scope_is_invisible(mcp_stack: RunningStack) -> None:
    customer = new_customer()
    await customer_says(mcp_stack, customer, "oi")
    base = console_url(mcp_stack)
    async with http_client(base, ALICE_TOKEN) as alice:
        listed = await conversation_of(alice, customer)
    async with http_client(base, CAROL_TOKEN) as carol:
        page = await call(carol, "list_conversations", {"limit": 200})
        assert listed["id"] not in [c["id"] for c in page["items"]]
        assert NUMBER not in {c["phone_number_id"] for c in page["items"]}
        refused = await refusal(carol, "take_over", {"conversation_id": listed["id"]})
        assert refused["error"] == "not_found"
        hidden = await refusal(carol, "get_conversation", {"conversation_id": listed["id"]})
        assert hidden["error"] == "not_found"


async def test_two_mcp_clients_race_a_takeover_and_exactly_one_wins(
    mcp_stack: RunningStack,
) -> None:
    customer = new_customer()
    await customer_says(mcp_stack, customer, "oi")
    base = console_url(mcp_stack)
    async with http_client(base, ALICE_TOKEN) as alice, http_client(base, BOB_TOKEN) as bob:
        listed = await conversation_of(alice, customer)
        arguments = {"conversation_id": listed["id"]}
        results = await asyncio.gather(
            alice.call_tool("take_over", arguments), bob.call_tool("take_over", arguments)
        )
        assert sorted(r.is_error for r in results) == [False, True]
        [winner] = [r for r in results if not r.is_error]
        assert winner.structured_content is not None
        holder = winner.structured_content["assignee"]
        after = await call(alice, "get_conversation", arguments)
    assert holder in ("alice", "bob")
    assert (after["mode"], after["assignee"]) == ("human", holder)


async def test_without_a_valid_token_the_console_answers_401(mcp_stack: RunningStack) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=console_url(mcp_stack)) as http:
        for auth in ({}, bearer("wrong-token-0123456789")):
            response = await http.post("/mcp", json=initialize, headers={**headers, **auth})
            assert response.status_code == 401
        ok = await http.post("/mcp", json=initialize, headers={**headers, **bearer(ALICE_TOKEN)})
        assert ok.status_code == 200
