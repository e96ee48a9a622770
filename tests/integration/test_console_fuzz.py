"""The console's OpenAPI, fuzzed with schemathesis: never a 5xx, never an action without a token.

The console runs on loopback with its real store and broker (a vhost of its own). First every
operation is called with missing and invalid tokens, with valid and invalid data: no protected
operation may succeed (401, or a 400/422 where the input is refused before the token is
looked at), and neither the database nor the broker may see any change. Then the same with valid tokens (agents, a scoped agent, an external bot) against a few
stored conversations: whatever the data, never a 5xx.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from baton.broker import COMMANDS, EVENTS
from baton.store.records import NewInbound
from simulator.webhooks import new_wamid
from tests.e2e.console_support import (
    ALICE_TOKEN,
    BOB_TOKEN,
    CAROL_TOKEN,
    HELPER_TOKEN,
    SCOPED_NUMBER,
    agents_file_text,
    in_process_console,
    listening,
    private_vhost,
)

pytestmark = pytest.mark.integration

VALID = {"alice": ALICE_TOKEN, "bob": BOB_TOKEN, "carol": CAROL_TOKEN, "helper": HELPER_TOKEN}
INVALID: dict[str, str | None] = {
    "missing": None,
    "unknown": "not-a-token-0123456789",
    "empty": "",
    "near_miss": ALICE_TOKEN[:-1],
}
EXAMPLES_PER_OPERATION = 15  # per phase; the whole test stays well under a minute
# Streams until the client leaves: fuzzed only without a valid token (it must answer 401 then).
STREAMING = {("GET", "/events")}
NUMBER = "900000000000088"


@dataclass
class ServedConsole:
    url: str
    openapi: dict[str, Any]
    amqp_url: str
    conversation_ids: list[int] = field(default_factory=list)


class _ConsoleThread(threading.Thread):
    """The console app on loopback, on an event loop of its own (schemathesis calls are sync)."""

    def __init__(self, pg_url: str, amqp_url: str, agents_file: str) -> None:
        super().__init__(daemon=True)
        self._args = (pg_url, amqp_url, agents_file)
        self.served: ServedConsole | None = None
        self.error: BaseException | None = None
        self.started_event = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._halt: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self.error = exc
        finally:
            self.started_event.set()

    async def _serve(self) -> None:
        pg_url, amqp_url, agents_file = self._args
        self._loop = asyncio.get_running_loop()
        self._halt = asyncio.Event()
        async with in_process_console(pg_url, amqp_url, agents_file=agents_file) as running:
            ids = []
            for number in (NUMBER, SCOPED_NUMBER):
                for i in range(3):
                    conversation, _ = await running.console.store.record_inbound(
                        NewInbound(
                            phone_number_id=number,
                            wa_id=f"5511{number[-4:]}{i:05d}",
                            wamid=new_wamid(),
                            type="text",
                            body="oi",
                            sent_at=_now(),
                            payload={},
                            customer_name="Fuzz",
                        )
                    )
                    ids.append(conversation.id)
            async with listening(running.app) as url:
                self.served = ServedConsole(url, running.app.openapi(), amqp_url, ids)
                self.started_event.set()
                await self._halt.wait()

    def stop(self) -> None:
        if self._loop is not None and self._halt is not None:
            self._loop.call_soon_threadsafe(self._halt.set)
        self.join(timeout=30)


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def console_server(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedConsole]:
    agents: Path = tmp_path_factory.mktemp("fuzz") / "agents.toml"
    agents.write_text(agents_file_text())
    with private_vhost() as amqp_url:
        thread = _ConsoleThread(pg_url, amqp_url, str(agents))
        thread.start()
        thread.started_event.wait(timeout=60)
        if thread.served is None:
            raise RuntimeError(f"the console did not start: {thread.error!r}")
        try:
            yield thread.served
        finally:
            thread.stop()


def _operations(served: ServedConsole) -> list[Any]:
    schema = schemathesis.openapi.from_dict(served.openapi)
    operations = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise AssertionError(f"the console's OpenAPI is not usable: {result.err()!r}")
        operations.append(result.ok())
    return operations


def _protected(operation: Any) -> bool:
    return bool(operation.definition.raw.get("security"))


def _strategy(operation: Any) -> Any:
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )


def _headers(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def _call(served: ServedConsole, session: requests.Session, case: Any, token: str | None) -> Any:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.headers = headers
    return case.call(base_url=served.url, session=session, headers=_headers(token), timeout=10)


async def _database_digest(pg_url: str) -> dict[str, int]:
    """Rows per table, and the conversations' versions: any action shows up in one of them."""
    conn = await asyncpg.connect(pg_url)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        digest = {
            t["tablename"]: int(await conn.fetchval(f'SELECT count(*) FROM "{t["tablename"]}"'))
            for t in tables
        }
        digest["conversations.version"] = int(
            await conn.fetchval("SELECT coalesce(sum(version), 0) FROM conversations")
        )
    finally:
        await conn.close()
    return digest


async def _published(amqp_url: str) -> tuple[aio_pika.abc.AbstractConnection, Any]:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue(f"fuzz-watch-{uuid.uuid4().hex[:10]}", exclusive=True)
    for name in (COMMANDS, EVENTS):
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        await queue.bind(exchange, routing_key="#")
    return connection, queue


async def _count(queue: Any) -> int:
    declared = await queue.declare()
    return int(declared.message_count)


def _fuzz(strategy: Any, tokens: dict[str, str | None], check: Callable[[Any, str], None]) -> None:
    """Run `check(case, who)` on examples of `strategy`, each with one of `tokens`."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, who=st.sampled_from(sorted(tokens)))
    def run(case: Any, who: str) -> None:
        check(case, who)

    run()


def test_without_a_valid_token_nothing_happens_and_nothing_fails(
    console_server: ServedConsole, pg_url: str
) -> None:
    operations = _operations(console_server)
    assert operations, "the console's OpenAPI has no operations"
    loop = asyncio.new_event_loop()
    problems: list[str] = []
    refused_before_auth: set[str] = set()
    calls = 0
    try:
        connection, queue = loop.run_until_complete(_published(console_server.amqp_url))
        before = loop.run_until_complete(_database_digest(pg_url))
        with requests.Session() as session:
            for operation in operations:

                def check(case: Any, who: str, protected: bool = _protected(operation)) -> None:
                    nonlocal calls
                    calls += 1
                    response = _call(console_server, session, case, INVALID[who])
                    where = f"{case.method} {case.formatted_path} ({who} token)"
                    if response.status_code >= 500:
                        problems.append(f"{where}: {response.status_code}")
                    elif protected and 200 <= response.status_code < 300:
                        problems.append(f"{where}: {response.status_code} without a valid token")
                    elif protected and response.status_code != 401:
                        # Input checked before the token (a 400/422 for a malformed body or
                        # path): refused all the same, and the digest below proves no action.
                        refused_before_auth.add(f"{case.method} {case.operation.path}")

                _fuzz(_strategy(operation), INVALID, check)
        after = loop.run_until_complete(_database_digest(pg_url))
        published = loop.run_until_complete(_count(queue))
        loop.run_until_complete(connection.close())
    finally:
        loop.close()
    assert not problems, "\n".join(sorted(set(problems))[:30])
    changed = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
    assert not changed, f"the database changed without a valid token: {changed}"
    assert published == 0, f"{published} broker messages published without a valid token"
    assert calls >= EXAMPLES_PER_OPERATION * len(operations) // 2
    # Most of the surface must still be refused by authentication itself.
    assert len(refused_before_auth) < len(operations) // 2, sorted(refused_before_auth)


def _on_conversation(operation: Any) -> Callable[[int], Any]:
    def cases(conversation_id: int) -> Any:
        return operation.as_strategy(
            GenerationMode.POSITIVE, path_parameters={"conversation_id": conversation_id}
        )

    return cases


def test_with_valid_tokens_no_input_makes_a_5xx(console_server: ServedConsole) -> None:
    operations = [
        op for op in _operations(console_server) if (op.method.upper(), op.path) not in STREAMING
    ]
    problems: list[str] = []
    ids = st.sampled_from(console_server.conversation_ids)
    tokens: dict[str, str | None] = dict(VALID)
    with requests.Session() as session:

        def check(case: Any, who: str) -> None:
            response = _call(console_server, session, case, tokens[who])
            if response.status_code >= 500:
                problems.append(
                    f"{case.method} {case.formatted_path} ({who}): {response.status_code}"
                    f" {response.text[:200]}"
                )

        for operation in operations:
            strategy = _strategy(operation)
            if "{conversation_id}" in operation.path:
                # Half the cases on a stored conversation, so actions really run.
                strategy = st.one_of(strategy, ids.flatmap(_on_conversation(operation)))
            _fuzz(strategy, tokens, check)
    assert not problems, "\n".join(sorted(set(problems))[:30])
