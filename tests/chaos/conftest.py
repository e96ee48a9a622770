"""The whole stack as real processes on a PRIVATE RabbitMQ node and PostgreSQL cluster.

The chaos cases stop, restart and kill things: never the shared local servers, which other
test sessions use at the same moment (see tests/faultinfra.py). One stack serves every case of
the module (starting seven processes costs more than most cases); each case uses its own
business number and customers, and a case that failed leaves the next one a restarted stack.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from baton.store import open_store
from devstack import Ports, Stack, plan
from services.console.agents import DEV_AGENT_ID, DEV_AGENT_TOKEN
from tests.chaos.report import CaseResult, table, write_doc
from tests.e2e.conftest import free_port, stack_env
from tests.faultinfra import PrivateBroker, PrivatePostgres, private_broker, private_postgres

SERVICES = ("ingest", "router", "bot", "outbox", "history", "console")
AGENT_CAPACITY = 100  # the agent takes over 30 conversations at once in one case
BOT_PREFIX = "[bot]"
GRAPH_TIMEOUT_SECONDS = 2.0

# Every case, in the order it runs; each has a business number of its own.
CASES = (
    "kill_router",
    "kill_bot",
    "kill_outbox",
    "kill_history",
    "kill_console",
    "kill_ingest",
    "postgres_restart",
    "broker_restart",
    "takeover_during_broker_restart",
    "graph_5xx_and_timeouts",
)


def number_of(case: str) -> str:
    return f"91000000000{CASES.index(case):04d}"


@dataclass
class Results:
    rows: dict[str, CaseResult] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


RESULTS = Results()


@dataclass
class Chaos:
    """The running stack and the servers under it, with the faults a case may inject."""

    stack: Stack
    ports: Ports
    rabbit: PrivateBroker
    pg: PrivatePostgres
    store_url: str
    dirty: bool = False  # a case failed: restart every service before the next one
    case: str | None = None  # the case running now

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.ingest}/webhook"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.simulator}"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.console}"

    async def kill_and_restart(self, name: str) -> None:
        """SIGKILL one service, start it again at once (as Kubernetes would), wait until ready."""
        await asyncio.to_thread(self.stack.stop, name, sig=signal.SIGKILL)
        self.stack.start(name)
        await self.stack.wait_ready(timeout=90)

    async def heal(self) -> None:
        """Servers up, every process alive and ready; after a failed case, every service anew."""
        if self.dirty:
            await asyncio.to_thread(self.stack.stop, None, sig=signal.SIGKILL)
            self.stack.start()
            self.dirty = False
        else:
            for name in self.stack.exited():
                self.stack.start(name)
        await self.stack.wait_ready(timeout=90)

    async def servers_up(self) -> None:
        """Start RabbitMQ's app and PostgreSQL again if a failed case left them stopped."""
        await self.rabbit.ctl("start_app")  # a no-op when it runs
        try:
            conn = await asyncpg.connect(self.store_url, timeout=5)
        except (OSError, asyncpg.PostgresError):
            await self.pg.start()
        else:
            await conn.close()

    async def outbox_in_doubt(self) -> float:
        """`baton_outbox_in_doubt_total` of the running outbox: sends it made again although
        Meta may have had the earlier attempt (an open attempt of a replica that died)."""
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"http://127.0.0.1:{self.ports.outbox}/metrics")
        response.raise_for_status()
        return sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "baton_outbox_in_doubt_total"
        )

    async def queued(self) -> int:
        """Messages ready or unacknowledged in the work queues (not dead-letter or unrouted)."""
        out = await self.rabbit.ctl("-q", "--no-table-headers", "list_queues", "name", "messages")
        total = 0
        for line in out.splitlines():
            name, _, count = line.partition("\t")
            if name.endswith(".dlq") or name == "webhooks.unrouted" or not count.strip():
                continue
            total += int(count)
        return total

    async def conversations(self, phone_number_id: str) -> dict[str, int]:
        """The number's stored conversations: customer → conversation id."""
        conn = await asyncpg.connect(self.store_url)
        try:
            rows = await conn.fetch(
                "SELECT wa_id, id FROM conversations WHERE phone_number_id = $1", phone_number_id
            )
        finally:
            await conn.close()
        return {row["wa_id"]: row["id"] for row in rows}

    async def turn_finished(self, phone_number_id: str) -> set[str]:
        """Customers whose bot turn the router recorded as answered, none in flight."""
        conn = await asyncpg.connect(self.store_url)
        try:
            rows = await conn.fetch(
                "SELECT wa_id FROM conversations WHERE phone_number_id = $1"
                " AND state->>'last_bot_at' IS NOT NULL"
                " AND state->>'pending_bot_request' IS NULL",
                phone_number_id,
            )
        finally:
            await conn.close()
        return {row["wa_id"] for row in rows}


def _numbers_toml() -> str:
    tables = [
        f'[numbers."{number_of(case)}"]\n'
        f'bot_prefix = "{BOT_PREFIX}"\n'
        "debounce_quiet_seconds = 0.3\n"
        "debounce_cap_seconds = 1.0\n"
        for case in CASES
    ]
    return "\n".join(tables)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chaos]:
    base: Path = tmp_path_factory.mktemp("chaos")
    numbers = base / "numbers.toml"
    numbers.write_text(_numbers_toml())
    agents = base / "agents.toml"
    agents.write_text(
        f'[agents.{DEV_AGENT_ID}]\ntoken = "{DEV_AGENT_TOKEN}"\nmax_conversations = {AGENT_CAPACITY}\n'
    )
    async with private_broker() as rabbit, private_postgres() as pg:
        store_url = await pg.create_database("baton")
        store = await open_store(store_url, migrate=True)
        await store.close()
        ports = Ports(
            ingest=free_port(),
            simulator=free_port(),
            router=free_port(),
            bot=free_port(),
            outbox=free_port(),
            history=free_port(),
            console=free_port(),
        )
        env = stack_env(rabbit.url, store_url, ports)
        env.update(
            BATON_LOG_LEVEL="INFO",  # DEBUG lines for hundreds of messages cost the 2 cores
            BATON_NUMBERS_FILE=str(numbers),
            BATON_AGENTS_FILE=str(agents),
            BATON_GRAPH_TIMEOUT_SECONDS=str(GRAPH_TIMEOUT_SECONDS),
            # A dead router's timers and effects are taken over after these leases (10 s and
            # 15 s by default): shorter, so the suite fits its time budget.
            BATON_ROUTER_TIMER_LEASE_SECONDS="3",
            BATON_ROUTER_RELAY_LEASE_SECONDS="3",
        )
        logs = base / "logs"
        stack = Stack(plan(env, ports, with_simulator=True), env, logs)
        stack.start()
        try:
            await stack.wait_ready(timeout=120)
            yield Chaos(stack, ports, rabbit, pg, store_url)
        finally:
            await asyncio.to_thread(stack.stop)
    if set(RESULTS.rows) == set(CASES):
        rows = [RESULTS.rows[case] for case in CASES]
        write_doc(rows, time.monotonic() - RESULTS.started)


@pytest_asyncio.fixture(loop_scope="module")
async def chaos(chaos_stack: Chaos, request: pytest.FixtureRequest) -> AsyncIterator[Chaos]:
    """The shared stack, healed before the case; marked for a full restart if the case fails."""
    await chaos_stack.heal()
    async with httpx.AsyncClient() as client:  # the simulator forgets earlier cases' faults
        (await client.delete(f"{chaos_stack.sim_url}/_sim/faults")).raise_for_status()
    yield chaos_stack
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        case = chaos_stack.case
        if case is not None and case not in RESULTS.rows:
            # It stopped before it could count: still a row of the table, as a failure.
            error = str(getattr(report, "longrepr", "") or "").strip().splitlines()
            RESULTS.rows[case] = CaseResult(
                case,
                0,
                0,
                0,
                0,
                0,
                None,
                f"did not finish: {error[-1][:200] if error else '?'}",
                False,
            )
        chaos_stack.dirty = True
        await chaos_stack.servers_up()
    chaos_stack.case = None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESULTS.rows:
        terminalreporter.section("chaos")
        terminalreporter.write_line(table([RESULTS.rows[c] for c in CASES if c in RESULTS.rows]))
