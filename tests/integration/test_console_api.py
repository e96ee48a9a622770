"""The agent API on the real PostgreSQL and RabbitMQ: authentication, handoff actions, paging."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
import pytest
from aio_pika.abc import AbstractQueue

from baton.broker import COMMANDS
from baton.handoff import BotRequestedHandoff
from baton.messages import SendText
from baton.store.records import Conversation, NewInbound
from baton.types import Author, Mode
from services.console.agents import DEFAULT_MAX_CONVERSATIONS
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
    in_process_console,
    private_vhost,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def console_amqp() -> Iterator[str]:
    with private_vhost() as url:
        yield url


@pytest.fixture
def agents_file(tmp_path: Path) -> str:
    path = tmp_path / "agents.toml"
    path.write_text(agents_file_text())
    return str(path)


@pytest.fixture
async def console(
    pg_url: str, console_amqp: str, agents_file: str
) -> AsyncIterator[InProcessConsole]:
    async with in_process_console(pg_url, console_amqp, agents_file=agents_file) as running:
        yield running


@pytest.fixture
async def alice(console: InProcessConsole) -> AsyncIterator[httpx.AsyncClient]:
    async with console.client(ALICE_TOKEN) as client:
        yield client


@pytest.fixture
async def bob(console: InProcessConsole) -> AsyncIterator[httpx.AsyncClient]:
    async with console.client(BOB_TOKEN) as client:
        yield client


@pytest.fixture
async def helper(console: InProcessConsole) -> AsyncIterator[httpx.AsyncClient]:
    async with console.client(HELPER_TOKEN) as client:
        yield client


def new_number() -> str:
    return "9" + "".join(random.choices("0123456789", k=14))


async def customer_writes(
    console: InProcessConsole,
    number: str,
    wa_id: str | None = None,
    *,
    at: datetime = T0,
    text: str = "oi",
    name: str | None = "Ana Perfil",
) -> Conversation:
    conversation, stored = await console.console.store.record_inbound(
        NewInbound(
            phone_number_id=number,
            wa_id=wa_id or unique("55"),
            wamid=new_wamid(),
            type="text",
            body=text,
            sent_at=at,
            payload={},
            customer_name=name,
        )
    )
    assert stored
    return conversation


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


async def next_send(queue: AbstractQueue, conversation_id: int) -> SendText:
    """The next SendText for this conversation (notices and others' sends are skipped)."""
    async with asyncio.timeout(10):
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                send = SendText.model_validate_json(message.body)
                if send.conversation_id == conversation_id and send.author is not Author.SYSTEM:
                    return send
    raise AssertionError("the queue closed")


# --- authentication ------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/conversations", None),
    ("GET", "/conversations/1", None),
    ("GET", "/conversations/1/messages", None),
    ("POST", "/conversations/1/takeover", None),
    ("POST", "/conversations/1/release", None),
    ("POST", "/conversations/1/messages", {"text": "olá"}),
    ("GET", "/events", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", "Basic YWxpY2U6eA==", "Bearer"]
)
async def test_no_valid_token_is_401(
    console: InProcessConsole,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with console.client() as client:
        response = await client.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_probes_and_metrics_need_no_token(console: InProcessConsole) -> None:
    async with console.client() as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200, path
        assert "baton_console_auth_failures_total" in (await client.get("/metrics")).text


async def test_bots_may_not_take_over_or_release_and_agents_may_not_write_as_bot(
    console: InProcessConsole, alice: httpx.AsyncClient, helper: httpx.AsyncClient
) -> None:
    conversation = await customer_writes(console, new_number())
    base = f"/conversations/{conversation.id}"
    assert (await helper.post(f"{base}/takeover")).status_code == 403
    assert (await helper.post(f"{base}/release")).status_code == 403
    assert (await helper.post(f"{base}/messages", json={"text": "x"})).status_code == 403
    as_bot = {"text": "x", "author": "bot", "expected_epoch": 0}
    assert (await alice.post(f"{base}/messages", json=as_bot)).status_code == 403
    # Reading is fine for both.
    assert (await helper.get(base)).status_code == 200
    assert (await alice.get(f"{base}/messages")).status_code == 200


async def test_an_agent_scoped_to_a_number_sees_and_acts_only_there(
    console: InProcessConsole, alice: httpx.AsyncClient
) -> None:
    elsewhere = await customer_writes(console, new_number())
    mine = await customer_writes(console, SCOPED_NUMBER, at=datetime.now(UTC))
    async with console.client(CAROL_TOKEN) as carol:
        for method, path in [
            ("GET", f"/conversations/{elsewhere.id}"),
            ("GET", f"/conversations/{elsewhere.id}/messages"),
            ("POST", f"/conversations/{elsewhere.id}/takeover"),
            ("POST", f"/conversations/{elsewhere.id}/release"),
            ("GET", f"/conversations?number={elsewhere.phone_number_id}"),
            ("GET", f"/events?number={elsewhere.phone_number_id}"),
        ]:
            assert (await carol.request(method, path)).status_code == 403, path
        listed = (await carol.get("/conversations", params={"limit": 200})).json()["items"]
        assert {item["phone_number_id"] for item in listed} == {SCOPED_NUMBER}
        assert mine.id in {item["id"] for item in listed}
        assert (await carol.post(f"/conversations/{mine.id}/takeover")).status_code == 200
    # Unscoped agents see every number.
    assert (await alice.get(f"/conversations/{elsewhere.id}")).status_code == 200


# --- take over, release, send ----------------------------------------------------------------


async def test_takeover_and_release_rules(
    console: InProcessConsole, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    conversation = await customer_writes(console, new_number())
    base = f"/conversations/{conversation.id}"

    taken = await alice.post(f"{base}/takeover")
    assert taken.status_code == 200
    state = taken.json()
    assert (state["mode"], state["assignee"], state["epoch"], state["changed"]) == (
        "human",
        "alice",
        1,
        True,
    )

    again = (await alice.post(f"{base}/takeover")).json()
    assert (again["changed"], again["unchanged_reason"], again["epoch"]) == (
        False,
        "already_assigned",
        1,
    )

    for action in ("takeover", "release"):
        refused = await bob.post(f"{base}/{action}")
        assert refused.status_code == 409, action
        assert refused.json()["reason"] == "held_by_another_agent"
        assert refused.json()["state"]["assignee"] == "alice"

    released = (await alice.post(f"{base}/release")).json()
    assert (released["mode"], released["assignee"], released["epoch"]) == ("bot", None, 2)
    unchanged = (await bob.post(f"{base}/release")).json()
    assert (unchanged["changed"], unchanged["unchanged_reason"]) == (False, "already_bot")

    summary = (await bob.get(base)).json()
    assert (summary["mode"], summary["epoch"], summary["assignee"]) == ("bot", 2, None)
    assert (await alice.post("/conversations/999999999/takeover")).status_code == 404


async def test_any_agent_claims_or_releases_a_conversation_the_bot_handed_off(
    console: InProcessConsole, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    conversation = await customer_writes(console, new_number())
    await console.console.conversations.apply(
        conversation.id, BotRequestedHandoff(epoch=0, reason="asked for a person", summary="S")
    )
    summary = (await alice.get(f"/conversations/{conversation.id}")).json()
    assert (summary["mode"], summary["assignee"]) == ("human", None)
    assert (summary["handoff_reason"], summary["handoff_summary"]) == ("asked for a person", "S")
    assert summary["waiting_since"] is not None
    released = await bob.post(f"/conversations/{conversation.id}/release")
    assert (released.status_code, released.json()["mode"]) == (200, "bot")


async def test_only_the_holder_sends_and_the_send_reaches_the_outbox_queue(
    console: InProcessConsole,
    alice: httpx.AsyncClient,
    bob: httpx.AsyncClient,
    sends: AbstractQueue,
) -> None:
    # Written just now: free text is only for an open customer-service window (issue 12).
    conversation = await customer_writes(console, new_number(), at=datetime.now(UTC))
    url = f"/conversations/{conversation.id}/messages"

    not_yet = await alice.post(url, json={"text": "Olá, aqui é a Alice"})
    assert (not_yet.status_code, not_yet.json()["reason"]) == (409, "not_holder")
    await alice.post(f"/conversations/{conversation.id}/takeover")
    refused = await bob.post(url, json={"text": "eu também"})
    assert (refused.status_code, refused.json()["reason"]) == (409, "not_holder")

    accepted = await alice.post(
        url, json={"text": "Olá, aqui é a Alice"}, headers={"Idempotency-Key": "k-1"}
    )
    assert accepted.status_code == 202
    assert accepted.json()["idempotency_key"] == "console:alice:k-1"
    send = await next_send(sends, conversation.id)
    assert (send.author, send.agent_id, send.body, send.to) == (
        Author.HUMAN,
        "alice",
        "Olá, aqui é a Alice",
        conversation.wa_id,
    )
    assert send.idempotency_key == "console:alice:k-1"

    # A retry with the same key publishes the same key: the outbox sends it once.
    retry = await alice.post(
        url, json={"text": "Olá, aqui é a Alice"}, headers={"Idempotency-Key": "k-1"}
    )
    assert retry.status_code == 202
    assert (await next_send(sends, conversation.id)).idempotency_key == "console:alice:k-1"
    generated = (await alice.post(url, json={"text": "mais"})).json()["idempotency_key"]
    assert generated.startswith("console:alice:") and generated != "console:alice:k-1"

    for bad in ({"text": ""}, {"text": "   "}, {"text": "x" * 4097}, {"text": "x", "extra": 1}):
        assert (await alice.post(url, json=bad)).status_code == 422, bad
    bad_key = await alice.post(url, json={"text": "x"}, headers={"Idempotency-Key": "a b"})
    assert bad_key.status_code == 422


async def test_an_external_bot_writes_only_in_bot_mode_under_the_current_epoch(
    console: InProcessConsole,
    alice: httpx.AsyncClient,
    helper: httpx.AsyncClient,
    sends: AbstractQueue,
) -> None:
    conversation = await customer_writes(console, new_number(), at=datetime.now(UTC))
    url = f"/conversations/{conversation.id}/messages"

    assert (await helper.post(url, json={"text": "x", "author": "bot"})).status_code == 422
    accepted = await helper.post(url, json={"text": "Oi!", "author": "bot", "expected_epoch": 0})
    assert accepted.status_code == 202
    send = await next_send(sends, conversation.id)
    assert (send.author, send.epoch, send.agent_id) == (Author.BOT, 0, "helper")

    await alice.post(f"/conversations/{conversation.id}/takeover")
    held = await helper.post(url, json={"text": "Oi?", "author": "bot", "expected_epoch": 1})
    assert (held.status_code, held.json()["reason"]) == (409, "not_bot_mode")
    await alice.post(f"/conversations/{conversation.id}/release")
    stale = await helper.post(url, json={"text": "Oi?", "author": "bot", "expected_epoch": 0})
    assert (stale.status_code, stale.json()["reason"]) == (409, "stale_epoch")
    assert stale.json()["state"]["epoch"] == 2
    current = await helper.post(url, json={"text": "Oi!", "author": "bot", "expected_epoch": 2})
    assert current.status_code == 202


async def test_two_agents_taking_over_at_once_exactly_one_wins(
    pg_url: str, console_amqp: str, agents_file: str, console: InProcessConsole
) -> None:
    number = new_number()
    # As many as alice and bob can hold together: each conversation has a winner (capacity).
    conversations = [
        await customer_writes(console, number) for _ in range(2 * DEFAULT_MAX_CONVERSATIONS)
    ]
    # A second console process of its own (its own pool and broker): two replicas racing.
    async with (
        in_process_console(pg_url, console_amqp, agents_file=agents_file) as other,
        console.client(ALICE_TOKEN) as alice,
        other.client(BOB_TOKEN) as bob,
    ):

        async def race(conversation_id: int) -> tuple[int, int]:
            url = f"/conversations/{conversation_id}/takeover"
            first, second = await asyncio.gather(alice.post(url), bob.post(url))
            return first.status_code, second.status_code

        outcomes = await asyncio.gather(*(race(c.id) for c in conversations))
        for conversation, (by_alice, by_bob) in zip(conversations, outcomes, strict=True):
            assert sorted((by_alice, by_bob)) == [200, 409], conversation.id
            summary = (await alice.get(f"/conversations/{conversation.id}")).json()
            assert summary["assignee"] == ("alice" if by_alice == 200 else "bob")
            assert (summary["mode"], summary["epoch"]) == ("human", 1)


# --- listing and history -------------------------------------------------------------------


async def walk(client: httpx.AsyncClient, path: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following its cursor."""
    pages: list[list[dict[str, Any]]] = []
    cursor_name, next_name = (
        ("before", "next_before") if path.endswith("/messages") else ("cursor", "next_cursor")
    )
    while True:
        response = await client.get(path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        if body[next_name] is None:
            return pages
        params = {**params, cursor_name: body[next_name]}


async def test_conversations_page_by_latest_activity_with_a_stable_cursor(
    console: InProcessConsole, alice: httpx.AsyncClient
) -> None:
    number = new_number()
    store = console.console.store
    times = [T0 + timedelta(minutes=m) for m in (5, 1, 3, 3, 3, 7, 2)]  # ties at 3 minutes
    made = [await customer_writes(console, number, at=at) for at in times]
    no_activity = await store.conversation(number, unique("55"))  # e.g. imported history only

    pages = await walk(alice, "/conversations", number=number, limit=3)
    assert [len(p) for p in pages] == [3, 3, 2]
    listed = [item["id"] for page in pages for item in page]
    by_activity = sorted(made, key=lambda c: (times[made.index(c)], c.id), reverse=True)
    assert listed == [c.id for c in by_activity] + [no_activity.id]

    # A page already walked does not move under a cursor when something else is written.
    first = (await alice.get("/conversations", params={"number": number, "limit": 3})).json()
    await customer_writes(console, number, at=T0 - timedelta(days=1))
    second = await alice.get(
        "/conversations", params={"number": number, "limit": 3, "cursor": first["next_cursor"]}
    )
    assert [i["id"] for i in second.json()["items"]] == listed[3:6]
    assert (await alice.get("/conversations", params={"cursor": "nope"})).status_code == 400
    assert (await alice.get("/conversations", params={"limit": 0})).status_code == 422


async def test_conversation_filters_and_what_an_item_shows(
    console: InProcessConsole, alice: httpx.AsyncClient, bob: httpx.AsyncClient, pg_url: str
) -> None:
    number = new_number()
    held_by_alice = await customer_writes(console, number, at=T0, text="quero falar com alguém")
    held_by_bob = await customer_writes(console, number, at=T0 + timedelta(seconds=1))
    handed_off = await customer_writes(console, number, at=T0 + timedelta(seconds=2))
    with_bot = await customer_writes(console, number, at=T0 + timedelta(seconds=3), name="Zé")
    await alice.post(f"/conversations/{held_by_alice.id}/takeover")
    await bob.post(f"/conversations/{held_by_bob.id}/takeover")
    await console.console.conversations.apply(
        handed_off.id, BotRequestedHandoff(epoch=0, reason="pedido", summary="pedido #123")
    )
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "INSERT INTO contacts (phone_number_id, wa_id, full_name, changed_at)"
            " VALUES ($1, $2, 'Ana da Agenda', now())",
            number,
            held_by_alice.wa_id,
        )
    finally:
        await conn.close()

    async def ids(**params: Any) -> list[int]:
        response = await alice.get("/conversations", params={"number": number, **params})
        return sorted(item["id"] for item in response.json()["items"])

    assert await ids(mode="human") == sorted([held_by_alice.id, held_by_bob.id, handed_off.id])
    assert await ids(mode="bot") == [with_bot.id]
    assert await ids(assignee="me") == [held_by_alice.id]
    assert await ids(assignee="bob") == [held_by_bob.id]
    assert await ids(assignee="none") == [handed_off.id]
    assert await ids(waiting="true") == [handed_off.id]
    assert (await alice.get("/conversations", params={"mode": "robot"})).status_code == 422

    items = {
        item["id"]: item
        for item in (await alice.get("/conversations", params={"number": number})).json()["items"]
    }
    mine = items[held_by_alice.id]
    assert mine["customer_name"] == "Ana da Agenda"  # the address book wins over the profile
    assert items[with_bot.id]["customer_name"] == "Zé"
    assert (mine["mode"], mine["epoch"], mine["assignee"]) == ("human", 1, "alice")
    assert mine["last_message"] == {
        "preview": "quero falar com alguém",
        "author": "customer",
        "direction": "in",
        "at": T0.isoformat().replace("+00:00", "Z"),
        "imported": False,
    }
    queued = items[handed_off.id]
    assert (queued["handoff_reason"], queued["handoff_summary"]) == ("pedido", "pedido #123")
    assert queued["waiting_since"] is not None


async def test_history_pages_back_in_time_through_live_imported_and_outbound(
    console: InProcessConsole, alice: httpx.AsyncClient, pg_url: str
) -> None:
    number = new_number()
    conversation = await customer_writes(console, number, at=T0, text="m0")
    for minute in (1, 2, 2, 4):  # a tie at 2
        await customer_writes(
            console,
            number,
            conversation.wa_id,
            at=T0 + timedelta(minutes=minute),
            text=f"m{minute}",
        )
    conn = await asyncpg.connect(pg_url)
    try:
        for minutes, author, direction in (
            (-10, "customer", "in"),
            (-9, "app", "out"),
            (3, "human", "out"),
        ):
            await conn.execute(
                "INSERT INTO messages (conversation_id, phone_number_id, wamid, direction, author,"
                " type, body, sent_at, imported, status, agent_id)"
                " VALUES ($1, $2, $3, $4, $5, 'text', $6, $7, $8, $9, $10)",
                conversation.id,
                number,
                new_wamid(),
                direction,
                author,
                f"{author}{minutes}",
                T0 + timedelta(minutes=minutes),
                minutes < 0,
                "delivered" if direction == "out" else None,
                "alice" if author == "human" else None,
            )
    finally:
        await conn.close()

    path = f"/conversations/{conversation.id}/messages"
    pages = await walk(alice, path, limit=3)
    assert [len(p) for p in pages] == [3, 3, 2]
    everything = [m for page in reversed(pages) for m in page]
    keys = [(m["sent_at"], m["id"]) for m in everything]
    assert keys == sorted(keys)
    assert len({m["id"] for m in everything}) == 8
    assert [m["body"] for m in everything][:2] == ["customer-10", "app-9"]
    assert [m["imported"] for m in everything[:3]] == [True, True, False]
    human = next(m for m in everything if m["author"] == "human")
    assert (human["direction"], human["status"], human["agent_id"]) == ("out", "delivered", "alice")
    assert {m["author"] for m in everything} == {"customer", "app", "human"}

    assert (await alice.get(path, params={"before": "bad"})).status_code == 400
    assert (await alice.get("/conversations/999999999/messages")).status_code == 404


async def test_the_openapi_schema_documents_the_api(console: InProcessConsole) -> None:
    async with console.client() as client:
        schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/conversations",
        "/conversations/{conversation_id}",
        "/conversations/{conversation_id}/messages",
        "/conversations/{conversation_id}/takeover",
        "/conversations/{conversation_id}/release",
        "/events",
    ):
        assert path in paths, path
    assert "409" in paths["/conversations/{conversation_id}/takeover"]["post"]["responses"]
    assert "HTTPBearer" in orjson.dumps(schema["components"]["securitySchemes"]).decode()
    assert schema["components"]["schemas"]["Conflict"]["properties"]["reason"]


def test_mode_values_are_the_api_vocabulary() -> None:
    assert [m.value for m in Mode] == ["bot", "human", "paused"]
