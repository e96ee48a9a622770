"""Test support for the console: principals, a private broker vhost, the app in-process, SSE.

Used by the console's integration tests (the app in-process, on the real broker and database)
and its end-to-end tests (the console as a process in the whole stack).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from fastapi import FastAPI
from pydantic import SecretStr

from baton.broker import Broker
from baton.conversations import Conversations
from baton.runtime import serve_http
from baton.settings import Settings
from baton.store import PostgresStore
from services.console.agents import load_directory
from services.console.app import create_app, hub_from_settings, start_event_log
from services.console.context import Console
from services.console.feed import EventFeed

AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672/"
ALICE_TOKEN = "alice-token-0123456789"
BOB_TOKEN = "bob-token-0123456789"
CAROL_TOKEN = "carol-token-0123456789"  # an agent who sees only SCOPED_NUMBER
HELPER_TOKEN = "helper-bot-token-0123456789"  # an external bot
SCOPED_NUMBER = "900000000000077"
AGENT_TOKENS = f"alice:{ALICE_TOKEN},bob:{BOB_TOKEN}"
BOT_TOKENS = f"helper:{HELPER_TOKEN}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def agents_file_text() -> str:
    return f'[agents.carol]\ntoken = "{CAROL_TOKEN}"\nnumbers = ["{SCOPED_NUMBER}"]\n'


@contextlib.contextmanager
def private_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of its own: commands the console publishes reach no other test's
    services (the session's vhost is shared with the end-to-end stacks)."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise RuntimeError("rabbitmqctl not found: the tests need the local RabbitMQ")
    vhost = f"baton-console-{uuid.uuid4().hex[:10]}"
    subprocess.run([ctl, "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        [ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    try:
        yield AMQP_BASE + quote(vhost, safe="")
    finally:
        subprocess.run([ctl, "delete_vhost", vhost], check=False, capture_output=True)


@dataclass
class InProcessConsole:
    app: FastAPI
    console: Console
    feed: EventFeed

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = bearer(token) if token is not None else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://console", headers=headers
        )


@contextlib.asynccontextmanager
async def in_process_console(
    pg_url: str, amqp_url: str, *, agents_file: str | None = None, **settings: Any
) -> AsyncIterator[InProcessConsole]:
    """The console app with its real store, broker, Conversations and event feed."""
    config = Settings.model_validate(
        {
            "store_url": pg_url,
            "amqp_url": amqp_url,
            "agent_tokens": SecretStr(AGENT_TOKENS),
            "bot_tokens": SecretStr(BOT_TOKENS),
            "agents_file": agents_file,
            **settings,
        }
    )
    store = await PostgresStore.open(pg_url)
    directory = load_directory(config)
    await _free_agents(store, directory.ids())
    broker = Broker(amqp_url, name="console-test")
    hub = hub_from_settings(config, store)
    feed = EventFeed(amqp_url, hub)
    hub_stop = asyncio.Event()
    following: asyncio.Task[None] | None = None
    try:
        await broker.connect()
        await broker.declare_topology()
        await start_event_log(config, broker, store, hub)  # the log all replicas share
        following = asyncio.create_task(hub.run(hub_stop))
        await feed.start()
        conversations = Conversations(store, broker, config.numbers())
        console = Console(config, store, broker, conversations, hub)

        async def ready() -> bool:
            return broker.connected and feed.connected and await store.ping()

        app = create_app(console, directory, ready)
        yield InProcessConsole(app, console, feed)
    finally:
        hub.close()
        hub_stop.set()
        if following is not None:
            await following
        await feed.close()
        await broker.close()
        await store.close()


async def _free_agents(store: PostgresStore, agents: list[str]) -> None:
    """Capacity counts what an agent holds anywhere in the database, and the session shares one
    database: each console starts with its agents holding nothing, whatever earlier tests left."""
    await store.pool.execute(
        "UPDATE conversations SET assignee = NULL WHERE assignee = ANY($1::text[])", agents
    )


@contextlib.asynccontextmanager
async def listening(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` on a free loopback port (streaming needs a real server); yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    stop = asyncio.Event()
    server = asyncio.create_task(serve_http(app, host="127.0.0.1", port=port, stop=stop))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            async with asyncio.timeout(10):
                while True:
                    if server.done():
                        server.result()
                    try:
                        await client.get("/healthz")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.02)
        yield url
    finally:
        stop.set()
        await server


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: dict[str, Any]


class SseReader:
    """Reads one `text/event-stream` response event by event (comments are skipped)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.comments = 0
        self.retry: int | None = None

    async def next_event(self, timeout: float = 20.0) -> SseEvent:
        """The next event; raises TimeoutError if none arrives in time."""
        async with asyncio.timeout(timeout):
            fields: dict[str, str] = {}
            async for line in self._lines:
                if line == "":
                    if "event" in fields or "data" in fields:
                        return SseEvent(
                            fields.get("id"),
                            fields.get("event", "message"),
                            orjson.loads(fields.get("data", "{}")),
                        )
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "retry":
                    self.retry = int(value)
                else:
                    fields[name] = value
            raise EOFError("the event stream ended")

    async def wait_subscribed(self, timeout: float = 10.0) -> None:
        """Return once the server subscribed this client (it sends `retry:` right after)."""
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line.startswith("retry:"):
                    self.retry = int(line.partition(":")[2])
                    return
            raise EOFError("the event stream ended before it started")

    async def find(
        self,
        predicate: Callable[[SseEvent], bool],
        *,
        timeout: float = 20.0,
        what: str = "an event",
    ) -> SseEvent:
        """Skip events until `predicate(event)` holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            try:
                event = await self.next_event(remaining)
            except TimeoutError as exc:
                raise AssertionError(f"timed out waiting for {what}") from exc
            if predicate(event):
                return event


@contextlib.asynccontextmanager
async def sse(
    base_url: str,
    token: str,
    *,
    params: Mapping[str, str] | None = None,
    last_event_id: str | None = None,
) -> AsyncIterator[SseReader]:
    """Follow `GET /events` on a console listening at `base_url`, subscribed on entry."""
    headers = bearer(token)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    timeout = httpx.Timeout(5.0, read=60.0)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as client,
        client.stream("GET", "/events", params=params, headers=headers) as response,
    ):
        response.raise_for_status()
        reader = SseReader(response)
        await reader.wait_subscribed()
        yield reader


class FakeLLMControl:
    """Drives a `python -m tests.fakes.llm` process through its `/_control` endpoints."""

    def __init__(self, root_url: str) -> None:
        self._http = httpx.AsyncClient(base_url=f"{root_url.rstrip('/')}/_control", timeout=5.0)

    async def reply_next(self, text: str) -> None:
        response = await self._http.post("/steps", json={"steps": [{"text": text}]})
        response.raise_for_status()

    async def hold_next(self) -> str:
        """Hold the next call until `release`; returns the hold's id."""
        response = await self._http.post("/holds")
        response.raise_for_status()
        return str(response.json()["hold_id"])

    async def arrived(self, hold_id: str) -> bool:
        response = await self._http.get(f"/holds/{hold_id}")
        response.raise_for_status()
        return bool(response.json()["arrived"])

    async def release(self, hold_id: str) -> None:
        (await self._http.post(f"/holds/{hold_id}/release")).raise_for_status()

    async def request_count(self) -> int:
        response = await self._http.get("/requests")
        response.raise_for_status()
        return len(response.json())

    async def aclose(self) -> None:
        await self._http.aclose()
