"""The MCP server at /mcp with the SDK's own client, on the real PostgreSQL and RabbitMQ.

The console app runs in this process, served on a loopback port by uvicorn (as in production:
lifespan off, the MCP session manager started by `mcp_http.running`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import httpx
import orjson
import pytest
from aio_pika.abc import AbstractQueue
from fastapi import FastAPI

from baton.broker import COMMANDS
from baton.messages import SendText
from baton.store.audit_records import Via
from baton.store.records import Conversation, NewInbound
from baton.types import Mode
from services.console.mcp_server import http as mcp_http
from simulator.webhooks import new_wamid
from tests.conftest import unique
from tests.e2e.console_support import (
    ALICE_TOKEN,
    BOB_TOKEN,
    CAROL_TOKEN,
    HELPER_TOKEN,
    SCOPED_NUMBER,
    InProcessConsole,
    agents_file_text,
    bearer,
    in_process_console,
    listening,
    private_vhost,
    sse,
)
from tests.e2e.mcp_support import TOOLS, call, http_client, refusal

pytestmark = pytest.mark.integration

ENGLISH_NUMBER = "900000000000651"


@pytest.fixture(scope="module")
def console_amqp() -> Iterator[str]:
    with private_vhost() as url:
        yield url


@pytest.fixture
def config_files(tmp_path: Path) -> dict[str, str]:
    agents = tmp_path / "agents.toml"
    agents.write_text(agents_file_text())
    numbers = tmp_path / "numbers.toml"
    numbers.write_text(f'[numbers."{ENGLISH_NUMBER}"]\nlanguage = "en"\n')
    return {"agents_file": str(agents), "numbers_file": str(numbers)}


@pytest.fixture
async def console(
    pg_url: str, console_amqp: str, config_files: dict[str, str]
) -> AsyncIterator[InProcessConsole]:
    async with in_process_console(pg_url, console_amqp, **config_files) as running:
        yield running


@contextlib.asynccontextmanager
async def mcp_sessions(app: FastAPI) -> AsyncIterator[None]:
    """`mcp_http.running(app)` in a task of its own: a fixture's setup and teardown may run
    in different tasks, and the session manager's task group must end where it began."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with mcp_http.running(app):
            started.set()
            await stop.wait()

    task = asyncio.create_task(hold())
    await asyncio.wait({task, asyncio.create_task(started.wait())}, return_when="FIRST_COMPLETED")
    if task.done():
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.fixture
async def base_url(console: InProcessConsole) -> AsyncIterator[str]:
    async with mcp_sessions(console.app), listening(console.app) as url:
        yield url


@pytest.fixture
async def sends(console_amqp: str) -> AsyncIterator[AbstractQueue]:
    """The `outbox.send_text` commands the console publishes, on a queue of the test's own."""
    connection = await aio_pika.connect_robust(console_amqp)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(COMMANDS, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=SendText.TYPE)
    yield queue
    await connection.close()


def new_number() -> str:
    return "9" + "".join(random.choices("0123456789", k=14))


async def customer_writes(
    console: InProcessConsole, number: str, text: str = "oi", wa_id: str | None = None
) -> Conversation:
    conversation, stored = await console.console.store.record_inbound(
        NewInbound(
            phone_number_id=number,
            wa_id=wa_id or unique("55"),
            wamid=new_wamid(),
            type="text",
            body=text,
            sent_at=datetime.now(UTC),
            payload={},
            customer_name="Ana",
        )
    )
    assert stored
    return conversation


async def next_send(queue: AbstractQueue, conversation_id: int) -> SendText:
    async with asyncio.timeout(10):
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                command = SendText.model_validate_json(message.body)
                if command.conversation_id == conversation_id:
                    return command
    raise AssertionError("no send")


async def test_without_a_valid_token_mcp_is_401_and_nothing_changes(
    console: InProcessConsole, base_url: str
) -> None:
    conversation = await customer_writes(console, new_number())
    take_over = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "take_over", "arguments": {"conversation_id": conversation.id}},
    }
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=base_url) as http:
        for auth in ({}, bearer("not-a-token"), {"Authorization": ALICE_TOKEN}):
            response = await http.post("/mcp", json=take_over, headers={**headers, **auth})
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
    state = await console.console.conversations.state(conversation.id)
    assert state is not None
    assert (state.mode, state.epoch) == (Mode.BOT, 0)
    assert await console.console.store.audit_trail(conversation.id) == ()


async def test_the_tools_have_the_api_names_and_structured_results(base_url: str) -> None:
    async with http_client(base_url, ALICE_TOKEN) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        templates = (await client.list_resource_templates()).resource_templates
    assert set(tools) >= TOOLS
    listing = tools["list_conversations"].input_schema["properties"]
    assert {"mode", "waiting", "number", "assignee", "cursor"} <= set(listing)
    send = tools["send_message"].input_schema
    assert {"conversation_id", "text", "idempotency_key"} <= set(send["properties"])
    assert set(send["required"]) == {"conversation_id", "text"}
    for name in TOOLS:
        assert tools[name].output_schema is not None, name
        assert len(tools[name].description or "") > 100, name
    assert [t.uri_template for t in templates] == ["conversation://{conversation_id}"]


async def test_an_agent_lists_takes_over_sends_and_returns_to_bot_audited_via_mcp(
    console: InProcessConsole, base_url: str, sends: AbstractQueue
) -> None:
    number = new_number()
    conversation = await customer_writes(console, number, "quero falar com alguém")
    async with http_client(base_url, ALICE_TOKEN) as alice:
        page = await call(alice, "list_conversations", {"number": number})
        assert [(c["id"], c["wa_id"]) for c in page["items"]] == [
            (conversation.id, conversation.wa_id)
        ]
        assert page["items"][0]["mode"] == "bot"

        taken = await call(alice, "take_over", {"conversation_id": conversation.id})
        assert (taken["mode"], taken["assignee"], taken["changed"]) == ("human", "alice", True)

        detail = await call(alice, "get_conversation", {"conversation_id": conversation.id})
        assert (detail["id"], detail["assignee"], detail["mode"]) == (
            conversation.id,
            "alice",
            "human",
        )
        # No router here: the message is stored but never decided, so the window never opened
        # (the end-to-end test sees it open).
        assert detail["window"] == {"open": False, "expires_at": None, "last_customer_at": None}

        sent = await call(
            alice,
            "send_message",
            {
                "conversation_id": conversation.id,
                "text": "Olá, aqui é a Alice",
                "idempotency_key": "k-1",
            },
        )
        assert sent["author"] == "human"
        command = await next_send(sends, conversation.id)
        assert (command.body, command.agent_id, command.author) == (
            "Olá, aqui é a Alice",
            "alice",
            "human",
        )
        assert command.idempotency_key == sent["idempotency_key"] == "console:alice:k-1"

        history = await call(alice, "get_messages", {"conversation_id": conversation.id})
        assert [m["body"] for m in history["items"]] == ["quero falar com alguém"]
        assert history["items"][0]["imported"] is False

        back = await call(alice, "return_to_bot", {"conversation_id": conversation.id})
        assert (back["mode"], back["assignee"]) == ("bot", None)

    trail = await console.console.store.audit_trail(conversation.id)
    assert [(e.action, e.principal, e.via, e.changed) for e in trail] == [
        ("takeover", "alice", Via.MCP, True),
        ("send", "alice", Via.MCP, True),
        ("release", "alice", Via.MCP, True),
    ]
    assert trail[1].detail["idempotency_key"] == "console:alice:k-1"


async def test_changes_through_mcp_appear_in_the_events_with_via_mcp(
    console: InProcessConsole, base_url: str
) -> None:
    number = new_number()
    conversation = await customer_writes(console, number)
    async with sse(base_url, ALICE_TOKEN, params={"number": number}) as events:
        async with http_client(base_url, ALICE_TOKEN) as alice:
            await call(alice, "take_over", {"conversation_id": conversation.id})
        acted = await events.find(
            lambda e: e.event == "conversation.agent_acted", what="the agent_acted event"
        )
    assert acted.data["via"] == "mcp"
    assert (acted.data["principal"], acted.data["action"]) == ("alice", "takeover")
    assert (acted.data["conversation_id"], acted.data["mode"]) == (conversation.id, "human")


async def test_the_api_records_its_own_actions_via_api(console: InProcessConsole) -> None:
    conversation = await customer_writes(console, new_number())
    async with console.client(BOB_TOKEN) as bob:
        response = await bob.post(f"/conversations/{conversation.id}/takeover")
        assert response.status_code == 200
    trail = await console.console.store.audit_trail(conversation.id)
    assert [(e.action, e.principal, e.via) for e in trail] == [("takeover", "bob", Via.API)]


async def test_a_bot_token_may_not_take_over_and_sends_only_in_bot_mode_at_its_epoch(
    console: InProcessConsole, base_url: str, sends: AbstractQueue
) -> None:
    conversation = await customer_writes(console, new_number())
    async with http_client(base_url, HELPER_TOKEN) as helper:
        refused = await refusal(helper, "take_over", {"conversation_id": conversation.id})
        assert (refused["error"], refused["status"]) == ("forbidden", 403)
        state = await console.console.conversations.state(conversation.id)
        assert state is not None
        assert (state.mode, state.epoch) == (Mode.BOT, 0)

        without_epoch = await refusal(
            helper, "send_message", {"conversation_id": conversation.id, "text": "hi"}
        )
        assert without_epoch["error"] == "bad_request"
        stale = await refusal(
            helper,
            "send_message",
            {"conversation_id": conversation.id, "text": "hi", "expected_epoch": 7},
        )
        assert (stale["error"], stale["reason"], stale["state"]["epoch"]) == (
            "conflict",
            "stale_epoch",
            0,
        )
        sent = await call(
            helper,
            "send_message",
            {"conversation_id": conversation.id, "text": "hello", "expected_epoch": 0},
        )
        assert sent["author"] == "bot"
        command = await next_send(sends, conversation.id)
        assert (command.author, command.epoch, command.agent_id) == ("bot", 0, "helper")

    async with http_client(base_url, ALICE_TOKEN) as alice:
        await call(alice, "take_over", {"conversation_id": conversation.id})
    async with http_client(base_url, HELPER_TOKEN) as helper:
        held = await refusal(
            helper,
            "send_message",
            {"conversation_id": conversation.id, "text": "hi", "expected_epoch": 1},
        )
        assert held["reason"] == "not_bot_mode"


async def test_an_agent_must_hold_the_conversation_to_send(
    console: InProcessConsole, base_url: str
) -> None:
    conversation = await customer_writes(console, new_number())
    async with http_client(base_url, BOB_TOKEN) as bob:
        refused = await refusal(
            bob, "send_message", {"conversation_id": conversation.id, "text": "olá"}
        )
    assert (refused["error"], refused["status"], refused["reason"]) == (
        "conflict",
        409,
        "not_holder",
    )
    assert refused["state"]["mode"] == "bot"
    assert await console.console.store.audit_trail(conversation.id) == ()


async def test_a_number_outside_the_scope_is_invisible(
    console: InProcessConsole, base_url: str
) -> None:
    mine = await customer_writes(console, SCOPED_NUMBER)
    other = await customer_writes(console, new_number())
    async with http_client(base_url, CAROL_TOKEN) as carol:
        listed: list[int] = []
        cursor = None
        while True:
            page = await call(carol, "list_conversations", {"cursor": cursor, "limit": 200})
            listed += [c["id"] for c in page["items"]]
            assert {c["phone_number_id"] for c in page["items"]} <= {SCOPED_NUMBER}
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert mine.id in listed
        assert other.id not in listed
        for tool in ("get_conversation", "get_messages", "take_over", "send_message"):
            arguments: dict[str, object] = {"conversation_id": other.id, "text": "x"}
            if tool != "send_message":
                arguments.pop("text")
            refused = await refusal(carol, tool, arguments)
            assert refused["error"] == "not_found", tool
        missing = await refusal(carol, "get_conversation", {"conversation_id": 2**62})
        assert (
            missing["detail"] == refused["detail"]
        )  # same answer as a conversation that does not exist
        forbidden = await refusal(carol, "list_conversations", {"number": other.phone_number_id})
        assert forbidden["error"] == "forbidden"
        searched = await refusal(
            carol, "search_messages", {"query": "oi", "number": other.phone_number_id}
        )
        assert searched["error"] == "forbidden"
        with pytest.raises(Exception, match="visible"):
            await carol.read_resource(f"conversation://{other.id}")
    state = await console.console.conversations.state(other.id)
    assert state is not None
    assert state.mode is Mode.BOT


async def test_two_clients_race_a_takeover_and_exactly_one_wins(
    console: InProcessConsole, base_url: str
) -> None:
    for _ in range(3):
        conversation = await customer_writes(console, new_number())
        async with (
            http_client(base_url, ALICE_TOKEN) as alice,
            http_client(base_url, BOB_TOKEN) as bob,
        ):
            arguments = {"conversation_id": conversation.id}
            results = await asyncio.gather(
                alice.call_tool("take_over", arguments), bob.call_tool("take_over", arguments)
            )
        winners = [r for r in results if not r.is_error]
        losers = [r for r in results if r.is_error]
        assert len(winners) == 1
        assert len(losers) == 1
        assert winners[0].structured_content is not None
        holder = winners[0].structured_content["assignee"]
        text = losers[0].content[0]
        assert text.type == "text"
        loss = orjson.loads(text.text)
        assert (loss["reason"], loss["state"]["assignee"]) == ("held_by_another_agent", holder)
        state = await console.console.conversations.state(conversation.id)
        assert state is not None
        assert (state.mode, state.assignee, state.epoch) == (Mode.HUMAN, holder, 1)


async def test_search_uses_the_numbers_language(console: InProcessConsole, base_url: str) -> None:
    portuguese = new_number()
    pt = await customer_writes(console, portuguese, "Quero cancelar meus pedidos de ontem")
    await customer_writes(console, portuguese, "I was running late")
    await customer_writes(console, ENGLISH_NUMBER, "I was running late")
    async with http_client(base_url, ALICE_TOKEN) as alice:
        found = await call(alice, "search_messages", {"query": "pedido", "number": portuguese})
        assert [(h["id"] > 0, h["conversation_id"], h["wa_id"]) for h in found["items"]] == [
            (True, pt.id, pt.wa_id)
        ]
        assert "«pedidos»" in found["items"][0]["snippet"]
        # English stemming finds "running" for "run"; Portuguese stemming does not.
        english = await call(alice, "search_messages", {"query": "run", "number": ENGLISH_NUMBER})
        assert any("running" in h["body"] for h in english["items"])
        none = await call(alice, "search_messages", {"query": "run", "number": portuguese})
        assert none["items"] == []
        within = await call(
            alice, "search_messages", {"query": "pedidos", "conversation_id": pt.id}
        )
        assert [h["conversation_id"] for h in within["items"]] == [pt.id]


async def test_search_pages_newest_first(console: InProcessConsole, base_url: str) -> None:
    number = new_number()
    conversation = await customer_writes(console, number, "entrega 1")
    for n in range(2, 6):
        await customer_writes(console, number, f"entrega {n}", wa_id=conversation.wa_id)
    seen: list[str] = []
    cursor = None
    async with http_client(base_url, ALICE_TOKEN) as alice:
        while True:
            page = await call(
                alice,
                "search_messages",
                {"query": "entrega", "number": number, "limit": 2, "cursor": cursor},
            )
            seen += [h["body"] for h in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == [f"entrega {n}" for n in range(5, 0, -1)]


async def test_the_transcript_is_a_resource(console: InProcessConsole, base_url: str) -> None:
    conversation = await customer_writes(console, new_number(), "meu pedido 123 não chegou")
    async with http_client(base_url, ALICE_TOKEN) as alice:
        result = await alice.read_resource(f"conversation://{conversation.id}")
    [content] = result.contents
    assert content.mime_type == "text/markdown"
    text = getattr(content, "text", "")
    assert f"Conversation {conversation.id} with Ana" in text
    assert "**customer**: meu pedido 123 não chegou" in text


async def test_a_note_is_stored_for_agents_and_audited_via_mcp(
    console: InProcessConsole, base_url: str
) -> None:
    conversation = await customer_writes(console, new_number(), "oi")
    async with http_client(base_url, ALICE_TOKEN) as alice:
        arguments = {
            "conversation_id": conversation.id,
            "text": "cliente VIP, tratar com prioridade",
            "idempotency_key": "n-1",
        }
        note = await call(alice, "add_note", arguments)
        again = await call(alice, "add_note", arguments)
        assert again["id"] == note["id"]
        assert (note["author"], note["agent"], note["conversation_id"]) == (
            "note",
            "alice",
            conversation.id,
        )
        history = await call(alice, "get_messages", {"conversation_id": conversation.id})
    notes = [m for m in history["items"] if m["author"] == "note"]
    assert [m["body"] for m in notes] == ["cliente VIP, tratar com prioridade"]
    trail = await console.console.store.audit_trail(conversation.id)
    assert [(e.action, e.principal, e.via, e.changed) for e in trail] == [
        ("note", "alice", Via.MCP, True),
        ("note", "alice", Via.MCP, False),
    ]
