"""The agent workflow API (issue 12) on the real PostgreSQL and RabbitMQ: the fair queue,
presence, capacity-exact auto-assignment, transfer, notes, resolve, the window, summaries."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from baton.handoff import BotRequestedHandoff
from baton.store.records import NewInbound
from baton.types import Mode
from simulator.webhooks import new_wamid
from tests.conftest import unique
from tests.e2e.console_support import (
    ALICE_TOKEN,
    BOB_TOKEN,
    InProcessConsole,
    in_process_console,
    private_vhost,
)

pytestmark = pytest.mark.integration

CAROL = "carol-token-0123456789"
DAVE = "dave-token-0123456789"


def new_number() -> str:
    return "9" + "".join(random.choices("0123456789", k=14))


@pytest.fixture(scope="module")
def amqp() -> Iterator[str]:
    with private_vhost() as url:
        yield url


@pytest.fixture
def auto_number() -> str:
    return new_number()


@pytest.fixture
async def console(
    pg_url: str, amqp: str, tmp_path: Path, auto_number: str
) -> AsyncIterator[InProcessConsole]:
    agents = tmp_path / "agents.toml"
    agents.write_text(
        f'[agents.carol]\ntoken = "{CAROL}"\nmax_conversations = 2\nadmin = true\n'
        f'[agents.dave]\ntoken = "{DAVE}"\nnumbers = ["{auto_number}"]\n'
    )
    numbers = tmp_path / "numbers.toml"
    numbers.write_text(
        f'[numbers."{auto_number}"]\nassignment = "auto"\ntemplates = ["hello"]\n'
        f'quick_replies = {{ oi = "Olá! Como posso ajudar?" }}\n'
    )
    async with in_process_console(
        pg_url, amqp, agents_file=str(agents), numbers_file=str(numbers)
    ) as running:
        yield running


async def handed_off(
    console: InProcessConsole, number: str, *, at: datetime | None = None, text: str = "oi"
) -> int:
    """A conversation the bot handed to the queue (human mode, nobody holds it)."""
    conversation, _ = await console.console.store.record_inbound(
        NewInbound(
            phone_number_id=number,
            wa_id=unique("55"),
            wamid=new_wamid(),
            type="text",
            body=text,
            sent_at=at or datetime.now(UTC),
            payload={},
        )
    )
    decision = await console.console.conversations.apply(
        conversation.id, BotRequestedHandoff(epoch=0, reason="asked_for_human")
    )
    assert decision.state.mode is Mode.HUMAN
    return conversation.id


async def test_notes_transfer_resolve_and_the_summary(console: InProcessConsole) -> None:
    number = new_number()
    cid = await handed_off(console, number, text="meu pedido #12345 e ana@example.com")
    async with console.client(ALICE_TOKEN) as alice, console.client(BOB_TOKEN) as bob:
        note = await alice.post(f"/conversations/{cid}/notes", json={"text": "VIP customer"})
        assert note.status_code == 201
        history = (await alice.get(f"/conversations/{cid}/messages")).json()["items"]
        assert [(m["author"], m["agent_id"]) for m in history if m["type"] == "note"] == [
            ("note", "alice")
        ]

        summary = (await alice.get(f"/conversations/{cid}/summary")).json()
        assert summary["order_ids"] == ["12345"] and summary["emails"] == ["ana@example.com"]
        assert summary["reason"] == "asked_for_human" and "12345" in summary["text"]

        assert (await alice.post(f"/conversations/{cid}/takeover")).status_code == 200
        refused = await bob.post(f"/conversations/{cid}/transfer", json={"to": "alice"})
        assert (refused.status_code, refused.json()["reason"]) == (409, "held_by_another_agent")
        moved = await alice.post(f"/conversations/{cid}/transfer", json={"to": "bob"})
        assert moved.status_code == 200
        assert (moved.json()["assignee"], moved.json()["mode"], moved.json()["epoch"]) == (
            "bob",
            "human",
            1,
        )
        outside = await bob.post(f"/conversations/{cid}/transfer", json={"to": "dave"})
        assert outside.status_code == 403  # dave may not see this number
        queued = await bob.post(f"/conversations/{cid}/transfer", json={"to": None})
        assert queued.json()["assignee"] is None and queued.json()["waiting_since"] is not None

        await bob.post(f"/conversations/{cid}/takeover")
        sent = await bob.post(f"/conversations/{cid}/messages", json={"text": "Olá"})
        assert sent.status_code == 202
        done = await bob.post(f"/conversations/{cid}/resolve", json={"outcome": "solved"})
        assert (done.status_code, done.json()["mode"]) == (200, "bot")
    (resolution,) = await console.console.store.resolutions(cid)
    assert (resolution.agent_id, resolution.outcome) == ("bob", "solved")
    assert resolution.first_response_seconds is not None
    assert 0 <= resolution.first_response_seconds <= resolution.handling_seconds


async def test_the_queue_is_longest_wait_first_and_free_text_needs_the_window(
    console: InProcessConsole, auto_number: str
) -> None:
    number = new_number()
    now = datetime.now(UTC)
    newer = await handed_off(console, number, at=now - timedelta(minutes=1))
    older = await handed_off(console, number, at=now - timedelta(minutes=5))
    stale = await handed_off(console, number, at=now - timedelta(days=2))
    async with console.client(ALICE_TOKEN) as alice:
        page = await alice.get("/conversations", params={"waiting": "true", "number": number})
        # waiting_since is when each customer began waiting for a human: the handoff order.
        assert [c["id"] for c in page.json()["items"]] == [newer, older, stale]
        await alice.post(f"/conversations/{stale}/takeover")
        closed = await alice.post(f"/conversations/{stale}/messages", json={"text": "oi"})
        assert (closed.status_code, closed.json()["reason"]) == (409, "window_closed")
        unknown = await alice.post(
            f"/conversations/{stale}/messages", json={"template": {"name": "nope"}}
        )
        assert unknown.status_code == 422
        replies = (await alice.get(f"/numbers/{auto_number}/quick-replies")).json()["items"]
        assert replies == [{"shortcut": "oi", "text": "Olá! Como posso ajudar?"}]


async def test_capacity_holds_with_50_waiting_and_3_agents_coming_online_at_once(
    console: InProcessConsole, auto_number: str
) -> None:
    """carol holds at most 2; dave and bob 5 each: 12 assigned, never over, never twice."""
    cids = [await handed_off(console, auto_number) for _ in range(50)]
    clients = [console.client(t) for t in (CAROL, DAVE, BOB_TOKEN)]
    try:
        answers = await asyncio.gather(
            *(c.put("/me/presence", json={"status": "online"}) for c in clients)
        )
        assert [a.status_code for a in answers] == [200, 200, 200]
        agents = {a["id"]: a for a in (await clients[0].get("/agents")).json()["items"]}
    finally:
        for c in clients:
            await c.aclose()
    assert agents["carol"]["held"] == 2 and agents["dave"]["held"] == 5
    assert agents["bob"]["held"] == 5
    held = [c for a in agents.values() for c in a["conversations"] if c in cids]
    assert len(held) == len(set(held)) == 12
    async with console.client(DAVE) as dave:
        await dave.put("/me/presence", json={"status": "offline"})
    loads = await console.console.store.agent_loads()
    assert loads.get("dave", 0) == 0


async def test_thirty_takeovers_at_once_all_answer_and_capacity_holds(
    console: InProcessConsole,
) -> None:
    """More takeovers at once than the store has connections: each waits its turn for the
    assignment lock without holding a connection the holder needs (no pool deadlock)."""
    number = new_number()
    cids = [await handed_off(console, number) for _ in range(30)]
    async with console.client(ALICE_TOKEN) as alice, console.client(BOB_TOKEN) as bob:
        answers = await asyncio.wait_for(
            asyncio.gather(
                *(
                    (alice if i % 2 else bob).post(f"/conversations/{cid}/takeover")
                    for i, cid in enumerate(cids)
                )
            ),
            timeout=60,
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 10 + [409] * 20  # alice and bob hold 5 each, their capacity
    assert {a.json()["reason"] for a in answers if a.status_code == 409} == {"at_capacity"}
    loads = await console.console.store.agent_loads()
    assert (loads["alice"], loads["bob"]) == (5, 5)
