"""`GET /events` on the real broker: events published on `baton.events` reach SSE clients."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from baton.broker import Broker
from baton.messages import ModeChanged, SendFailed
from baton.settings import Settings
from baton.store.records import NewInbound
from baton.types import Author, Mode
from services.console.app import main
from simulator.webhooks import new_wamid
from tests.conftest import unique
from tests.e2e.conftest import free_port
from tests.e2e.console_support import (
    AGENT_TOKENS,
    ALICE_TOKEN,
    BOB_TOKEN,
    CAROL_TOKEN,
    SCOPED_NUMBER,
    InProcessConsole,
    SseEvent,
    agents_file_text,
    bearer,
    in_process_console,
    listening,
    private_vhost,
    sse,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def console_amqp() -> Iterator[str]:
    with private_vhost() as url:
        yield url


@pytest.fixture
async def console(
    pg_url: str, console_amqp: str, tmp_path: Path
) -> AsyncIterator[tuple[InProcessConsole, str]]:
    path = tmp_path / "agents.toml"
    path.write_text(agents_file_text())
    async with (
        in_process_console(
            pg_url, console_amqp, agents_file=str(path), console_heartbeat_seconds=0.2
        ) as running,
        listening(running.app) as url,
    ):
        yield running, url


@pytest.fixture
async def publisher(console_amqp: str) -> AsyncIterator[Broker]:
    broker = Broker(console_amqp, name="events-test")
    await broker.connect()
    yield broker
    await broker.close()


def new_number() -> str:
    return "9" + "".join(random.choices("0123456789", k=14))


def mode_changed(number: str, conversation_id: int, epoch: int = 1) -> ModeChanged:
    return ModeChanged(
        conversation_id=conversation_id,
        phone_number_id=number,
        wa_id="5511",
        at=datetime.now(UTC),
        from_mode=Mode.BOT,
        to_mode=Mode.HUMAN,
        epoch=epoch,
        cause="agent_takeover",
    )


def about(number: str, epoch: int | None = None) -> Callable[[SseEvent], bool]:
    def match(event: SseEvent) -> bool:
        return event.data.get("phone_number_id") == number and (
            epoch is None or event.data.get("epoch") == epoch
        )

    return match


async def test_broker_events_reach_the_stream_filtered_by_number(
    console: tuple[InProcessConsole, str], publisher: Broker
) -> None:
    _, url = console
    mine, other = new_number(), new_number()
    async with (
        sse(url, ALICE_TOKEN, params={"number": mine}) as filtered,
        sse(url, BOB_TOKEN) as everything,
    ):
        await publisher.publish_event(mode_changed(other, 1))
        await publisher.publish_event(mode_changed(mine, 2))
        await publisher.publish_event(
            SendFailed(
                idempotency_key="k",
                conversation_id=2,
                phone_number_id=mine,
                author=Author.HUMAN,
                error_code=131047,
                reason="re-engagement",
            )
        )
        first = await filtered.next_event()
        assert (first.event, first.data["phone_number_id"], first.data["to_mode"]) == (
            "conversation.mode_changed",
            mine,
            "human",
        )
        assert first.id is not None
        failed = await filtered.next_event()
        assert (failed.event, failed.data["error_code"]) == ("send_failed", 131047)
        assert filtered.retry == 2000
        seen = await everything.find(about(other), what="the other number's event")
        assert seen.event == "conversation.mode_changed"


async def test_a_takeover_through_the_api_shows_on_the_stream(
    console: tuple[InProcessConsole, str],
) -> None:
    running, url = console
    number = new_number()
    conversation, _ = await running.console.store.record_inbound(
        NewInbound(
            phone_number_id=number,
            wa_id=unique("55"),
            wamid=new_wamid(),
            type="text",
            body="oi",
            sent_at=datetime.now(UTC),
            payload={},
        )
    )
    async with sse(url, BOB_TOKEN, params={"conversation_id": str(conversation.id)}) as stream:
        async with httpx.AsyncClient(base_url=url, headers=bearer(ALICE_TOKEN)) as alice:
            taken = await alice.post(f"/conversations/{conversation.id}/takeover")
            assert taken.status_code == 200
        event = await stream.find(lambda e: e.event == "conversation.mode_changed")
        assert (event.data["to_mode"], event.data["actor"], event.data["epoch"]) == (
            "human",
            "alice",
            1,
        )


async def test_last_event_id_replays_missed_events_after_a_reconnect(
    console: tuple[InProcessConsole, str], publisher: Broker
) -> None:
    _, url = console
    number = new_number()
    async with sse(url, ALICE_TOKEN, params={"number": number}) as stream:
        await publisher.publish_event(mode_changed(number, 1, epoch=1))
        last = await stream.next_event()
    assert last.id is not None
    # Published while disconnected; a third one marks when both reached this console.
    async with sse(url, BOB_TOKEN, params={"number": number}) as witness:
        for epoch in (2, 3):
            await publisher.publish_event(mode_changed(number, 1, epoch=epoch))
        await witness.find(about(number, epoch=3), what="the last event")
    async with sse(url, ALICE_TOKEN, params={"number": number}, last_event_id=last.id) as again:
        replayed = [await again.next_event(), await again.next_event()]
    assert [e.data["epoch"] for e in replayed] == [2, 3]
    async with sse(url, ALICE_TOKEN, last_event_id="someone-else-1") as unknown:
        assert (await unknown.next_event()).event == "reset"


async def test_quiet_streams_get_keep_alive_comments_and_scoped_agents_only_their_number(
    console: tuple[InProcessConsole, str], publisher: Broker
) -> None:
    _, url = console
    async with sse(url, CAROL_TOKEN) as carol:
        await publisher.publish_event(mode_changed(new_number(), 1))
        await publisher.publish_event(mode_changed(SCOPED_NUMBER, 1))
        event = await carol.next_event()
        assert event.data["phone_number_id"] == SCOPED_NUMBER
        with pytest.raises(TimeoutError):
            await carol.next_event(timeout=0.5)  # nothing else for carol, but…
        assert carol.comments >= 1  # …keep-alives came meanwhile (every 0.2 s here)


async def test_the_process_stops_promptly_with_clients_connected(
    pg_url: str, console_amqp: str
) -> None:
    port = free_port()
    settings = Settings.model_validate(
        {
            "store_url": pg_url,
            "amqp_url": console_amqp,
            "console_port": port,
            "agent_tokens": SecretStr(AGENT_TOKENS),
        }
    )
    stop = asyncio.Event()
    running = asyncio.create_task(main(settings, stop))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client, asyncio.timeout(20):
            while True:
                assert not running.done(), running.result()
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        async with sse(url, ALICE_TOKEN) as stream:
            stop.set()
            with pytest.raises(EOFError):
                await stream.next_event(timeout=10)
        async with asyncio.timeout(10):
            await running
    finally:
        stop.set()
        if not running.done():
            running.cancel()


async def test_a_burst_reaches_every_client_whole_and_in_order(
    console: tuple[InProcessConsole, str], publisher: Broker
) -> None:
    # A burst queues up behind each client and is written in chunks of several events: the
    # clients must still see each event once, in the log's order.
    _, url = console
    number = new_number()
    async with (
        sse(url, ALICE_TOKEN, params={"number": number}) as first,
        sse(url, BOB_TOKEN, params={"number": number}) as second,
    ):
        for epoch in range(1, 41):
            await publisher.publish_event(mode_changed(number, 7, epoch))
        for client in (first, second):
            seen = [await client.next_event() for _ in range(40)]
            assert [e.data["epoch"] for e in seen] == list(range(1, 41))
            ids = [int(e.id or 0) for e in seen]
            assert ids == sorted(set(ids))
