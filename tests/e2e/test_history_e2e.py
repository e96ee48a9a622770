"""A Coexistence number onboarded and its backlog imported, through the real processes.

The whole stack runs (ingest, router, bot, outbox, history, console, the WhatsApp simulator).
The backlog goes in as Meta sends it: signed `history` webhooks to ingest, chunks out of order,
some twice, recent media afterwards, while live customers keep writing to the same number.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
import pytest

from baton.broker import COMMANDS
from baton.messages import AskBot
from baton.store import PostgresStore
from baton.store.history_records import ImportState
from devstack import REPO_ROOT, Ports, Stack, plan
from services.console.agents import DEV_AGENT_TOKEN
from simulator import (
    DEV_APP_SECRET,
    Endpoint,
    Fault,
    FaultKind,
    Outcome,
    SimulatorClient,
)
from simulator.backlog import Backlog, BacklogSpec, signed
from simulator.webhooks import (
    customer_text,
    envelope,
    history_chunk,
    history_message,
    meta_json,
    partner_removed,
    post_webhook,
    state_sync_contact,
)
from tests.e2e.conftest import RunningStack, free_port, stack_env
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

WINDOW = 8.0  # the "24-hour" sync window, shortened
AT_RISK = 5.0
CONVERSATIONS = 2_000
MESSAGES = 200_000
LIVE_CUSTOMERS = 20  # backlog customers who also write live before the import
TAKEN_OVER = 5  # of those, held by an agent


def _digits(n: int) -> str:
    return "".join(random.choice("0123456789") for _ in range(n))


@dataclass(frozen=True)
class HistoryStack:
    running: RunningStack
    phone_number_id: str
    display_phone_number: str
    amqp_url: str
    pg_url: str

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.running.ports.console}"


@pytest.fixture(scope="module")
def history_stack(
    amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HistoryStack]:
    pnid, display = "9" + _digits(14), "1555" + _digits(7)
    ports = Ports(**{f.name: free_port() for f in dataclasses.fields(Ports)})
    workdir: Path = tmp_path_factory.mktemp("history-stack")
    numbers = workdir / "numbers.toml"
    # A short debounce, so live latency is the pipeline's and not the debounce window.
    numbers.write_text(
        f'[numbers."{pnid}"]\ncoexistence = true\n'
        "debounce_quiet_seconds = 0.05\ndebounce_cap_seconds = 0.3\n"
    )
    env = stack_env(
        amqp_url,
        pg_url,
        ports,
        BATON_NUMBERS_FILE=str(numbers),
        BATON_HISTORY_SYNC_WINDOW_SECONDS=str(WINDOW),
        BATON_HISTORY_SYNC_AT_RISK_SECONDS=str(AT_RISK),
        BATON_HISTORY_SYNC_POLL_SECONDS="0.2",
        BATON_HISTORY_SYNC_RETRY_BASE_SECONDS="0.2",
        BATON_HISTORY_SYNC_RETRY_CAP_SECONDS="0.5",
    )
    env["BATON_LOG_LEVEL"] = "INFO"  # 200,000 messages: keep the logs about them
    logs = workdir / "logs"
    stack = Stack(plan(env, ports, with_simulator=True), env, logs)
    stack.start()
    try:
        asyncio.run(stack.wait_ready(timeout=60))
        yield HistoryStack(RunningStack(stack, ports, env), pnid, display, amqp_url, pg_url)
    finally:
        codes = stack.stop()
        unclean = {name: code for name, code in codes.items() if name != "simulator" and code}
        assert not unclean, f"services did not stop cleanly: {unclean}; logs in {logs}"


@pytest.fixture
async def sim(history_stack: HistoryStack) -> AsyncIterator[SimulatorClient]:
    async with SimulatorClient(history_stack.running.sim_url) as client:
        yield client


@pytest.fixture
async def console(history_stack: HistoryStack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {DEV_AGENT_TOKEN}"}
    async with httpx.AsyncClient(
        base_url=history_stack.console_url, headers=headers, timeout=10
    ) as client:
        yield client


@pytest.fixture
async def db(history_stack: HistoryStack) -> AsyncIterator[PostgresStore]:
    store = await PostgresStore.open(history_stack.pg_url)
    yield store
    await store.close()


@dataclass
class BotAsks:
    """Every `bot.ask` command published, seen on a queue of our own."""

    seen: list[tuple[str, float]] = field(default_factory=list)  # (wa_id, monotonic time)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def wa_ids(self) -> set[str]:
        return {wa_id for wa_id, _ in self.seen}

    def first_for(self, wa_id: str) -> float | None:
        return next((at for seen, at in self.seen if seen == wa_id), None)


@contextlib.asynccontextmanager
async def watching_bot_asks(amqp_url: str) -> AsyncIterator[BotAsks]:
    asks = BotAsks()
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(COMMANDS, ensure=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="bot.#")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                ask = AskBot.model_validate_json(message.body)
                asks.seen.append((ask.wa_id, time.monotonic()))
                asks.arrived.set()

        await queue.consume(on_message)
        yield asks
    finally:
        await connection.close()


async def _post(running: RunningStack, body: bytes, client: httpx.AsyncClient) -> None:
    for _ in range(50):
        response = await post_webhook(running.webhook_url, body, DEV_APP_SECRET, client=client)
        if response.status_code == 200:
            return
        await asyncio.sleep(0.2)  # Meta retries whatever is not a 200
    raise AssertionError(f"ingest kept answering {response.status_code}")


async def _conversations(pg_url: str, pnid: str) -> dict[str, tuple[Any, ...]]:
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch(
            "SELECT wa_id, id, mode, epoch, last_activity_at, version FROM conversations"
            " WHERE phone_number_id = $1",
            pnid,
        )
    finally:
        await conn.close()
    return {r["wa_id"]: (r["id"], r["mode"], r["epoch"], r["last_activity_at"]) for r in rows}


async def _cli(env: dict[str, str], *args: str, expect: int = 0) -> dict[str, Any]:
    """Run `python -m services.history <args>` as an operator would; its JSON output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.history",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == expect, err.decode()
    result: dict[str, Any] = orjson.loads(out) if out else {}
    return result


async def _probe(stack: HistoryStack, asks: BotAsks, stop: asyncio.Event, tag: str) -> list[float]:
    """Live customers write to the number until `stop`; seconds from webhook to bot request."""
    sent: list[tuple[str, float]] = []
    async with httpx.AsyncClient(timeout=10) as client:
        n = 0
        while not stop.is_set():
            customer = f"5599{tag}{n:05d}"
            n += 1
            body = meta_json(envelope([customer_text(stack.phone_number_id, customer, "oi")]))
            sent.append((customer, time.monotonic()))
            await _post(stack.running, body, client)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.15)

    async def all_asked() -> bool:
        return all(asks.first_for(customer) is not None for customer, _ in sent)

    await eventually(all_asked, timeout=30, what="a bot request for every live message")
    return [(asks.first_for(c) or 0.0) - at for c, at in sent]


async def test_a_backlog_is_imported_once_while_live_traffic_flows(
    history_stack: HistoryStack,
    sim: SimulatorClient,
    console: httpx.AsyncClient,
    db: PostgresStore,
) -> None:
    stack, pnid = history_stack, history_stack.phone_number_id
    running = stack.running

    # Onboarding from the CLI: contacts sync then history sync, each requested once.
    report = await _cli(
        running.env, "onboard", pnid, "--display-phone-number", stack.display_phone_number
    )
    assert [(s["sync_type"], s["status"]) for s in report["syncs"]] == [
        ("smb_app_state_sync", "accepted"),
        ("history", "accepted"),
    ]
    onboarded_at = datetime.fromisoformat(report["onboarded_at"])
    syncs = await sim.sync_requests(pnid)
    assert [(s.sync_type, s.outcome) for s in syncs] == [
        ("smb_app_state_sync", Outcome.ACCEPTED),
        ("history", Outcome.ACCEPTED),
    ]

    backlog = Backlog(
        BacklogSpec(
            phone_number_id=pnid,
            business_number=stack.display_phone_number,
            conversations=CONVERSATIONS,
            messages=MESSAGES,
            onboarded_at=int(onboarded_at.timestamp()) - 1,
            chunk_messages=1000,
            tag=pnid[-6:],
        )
    )
    live = [backlog.customer(c) for c in range(LIVE_CUSTOMERS)]

    async with watching_bot_asks(stack.amqp_url) as asks:
        # Some backlog customers already talk live to the number; agents hold a few of them.
        async with httpx.AsyncClient(timeout=10) as client:
            for customer in live:
                body = meta_json(envelope([customer_text(pnid, customer, "Oi, ainda aberto?")]))
                await _post(running, body, client)

        async def everyone_answered() -> bool:
            replied = {m.wa_id for m in await sim.messages(phone_number_id=pnid) if m.wamid}
            return set(live) <= replied

        await eventually(everyone_answered, timeout=60, what="the bot's live replies")
        conversations = await _conversations(stack.pg_url, pnid)
        for customer in live[:TAKEN_OVER]:
            conversation_id = conversations[customer][0]
            taken = await console.post(f"/conversations/{conversation_id}/takeover")
            assert taken.status_code == 200, taken.text

        async def quiet() -> dict[str, tuple[Any, ...]] | None:
            # Takeover notices and statuses settle; then nothing of these conversations moves.
            first = await _conversations(stack.pg_url, pnid)
            await asyncio.sleep(0.5)
            second = await _conversations(stack.pg_url, pnid)
            human = [c for c in live[:TAKEN_OVER] if second[c][1] == "human"]
            return second if first == second and len(human) == TAKEN_OVER else None

        before = await eventually(quiet, timeout=60, what="the live conversations to settle")
        assert before is not None

        # Baseline latency of live traffic, then the same while the backlog goes in.
        baseline_stop = asyncio.Event()
        baseline_task = asyncio.create_task(_probe(stack, asks, baseline_stop, "0"))
        await asyncio.sleep(3)
        baseline_stop.set()
        baseline = await baseline_task

        rng = random.Random(pnid)
        chunk_bodies = [
            signed(backlog.envelope(backlog.chunk_change(c)), DEV_APP_SECRET)[0]
            for c in backlog.chunks
        ]
        deliveries = chunk_bodies + rng.sample(chunk_bodies, len(chunk_bodies) // 10)
        recent = list(backlog.recent_media())
        media_groups = [recent[i : i + 100] for i in range(0, len(recent), 100)]
        deliveries += [
            signed(backlog.envelope(backlog.media_change(group)), DEV_APP_SECRET)[0]
            for group in media_groups
        ]
        named = live + [backlog.customer(c) for c in range(LIVE_CUSTOMERS, 100)]
        deliveries += [
            meta_json(
                envelope(
                    [
                        state_sync_contact(
                            pnid,
                            wa,
                            full_name=f"Cliente {wa[-4:]}",
                            display_phone_number=stack.display_phone_number,
                        )
                    ]
                )
            )
            for wa in named
        ]
        rng.shuffle(deliveries)
        del chunk_bodies

        probe_stop = asyncio.Event()
        probe = asyncio.create_task(_probe(stack, asks, probe_stop, "1"))
        started = time.monotonic()
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in deliveries:
            queue.put_nowait(body)

        async def deliver() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                while not queue.empty():
                    await _post(running, queue.get_nowait(), client)

        await asyncio.gather(*(deliver() for _ in range(4)))

        async def imported() -> bool:
            history = await db.number_history(pnid)
            return history is not None and history.progress.state is ImportState.COMPLETED

        await eventually(imported, timeout=180, what="the import to complete")
        took = time.monotonic() - started
        probe_stop.set()
        during = await probe

    # Every message stored exactly once, as imported history, and the progress says so.
    history = await db.number_history(pnid)
    assert history is not None
    progress = history.progress
    assert (progress.percent, progress.completed, progress.chunks_missing) == (100, True, 0)
    assert progress.chunks_imported == len(backlog.chunks)
    assert progress.messages_imported == MESSAGES
    counts = await db.pool.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT wamid) AS distinct_ids FROM messages"
        " WHERE phone_number_id = $1 AND imported",
        pnid,
    )
    assert counts is not None
    assert (counts["n"], counts["distinct_ids"]) == (MESSAGES, MESSAGES)

    # Nothing imported asked the bot; the live customers all did.
    backlog_customers = {backlog.customer(c) for c in range(CONVERSATIONS)}
    asked_after_snapshot = {wa for wa, at in asks.seen if at >= started}
    assert not asked_after_snapshot & backlog_customers

    # No conversation changed mode, epoch or last activity; new ones never had live activity.
    after = await _conversations(stack.pg_url, pnid)
    assert {wa: after[wa] for wa in before} == before
    created = {wa: v for wa, v in after.items() if wa in backlog_customers and wa not in before}
    assert len(created) == CONVERSATIONS - LIVE_CUSTOMERS
    assert {(v[1], v[2], v[3]) for v in created.values()} == {("bot", 0, None)}

    # Stored as sent: time, direction, author, type (recent media filled in).
    sample = random.Random(1).sample(range(MESSAGES), 300)
    with_media = set(recent)
    rows = await db.pool.fetch(
        "SELECT wamid, direction, author, type, sent_at FROM messages"
        " WHERE phone_number_id = $1 AND wamid = ANY($2::text[])",
        pnid,
        [backlog.wamid(k) for k in sample],
    )
    got = {
        r["wamid"]: (r["direction"], r["author"], r["type"], int(r["sent_at"].timestamp()))
        for r in rows
    }
    assert got == {
        backlog.wamid(k): backlog.expected_row(k, with_media=k in with_media) for k in sample
    }

    # The agent sees imported and live messages in one timeline, with the address-book name.
    conversation_id = before[live[0]][0]
    page = (
        await console.get(f"/conversations/{conversation_id}/messages", params={"limit": 200})
    ).json()
    times = [datetime.fromisoformat(m["sent_at"]) for m in page["items"]]
    assert times == sorted(times)
    assert {m["imported"] for m in page["items"]} == {True, False}
    assert not page["items"][-1]["imported"]  # the live exchange is the newest
    summary = (await console.get(f"/conversations/{conversation_id}")).json()
    assert summary["customer_name"] == f"Cliente {live[0][-4:]}"

    # The operator's view agrees.
    status = await _cli(running.env, "status", pnid)
    assert status["progress"]["completed"]
    assert status["progress"]["messages_imported"] == MESSAGES
    assert status["deadline"] == "met"

    # Live traffic kept its pace while the backlog went in.
    typical = statistics.median(baseline)
    slow = sorted(during)[int(len(during) * 0.95)]
    print(
        f"\nimport of {MESSAGES:,} messages: {took:.1f} s ({MESSAGES / took:,.0f}/s);"
        f" live webhook→bot request: baseline median {typical * 1000:.0f} ms,"
        f" during import median {statistics.median(during) * 1000:.0f} ms,"
        f" p95 {slow * 1000:.0f} ms, max {max(during) * 1000:.0f} ms ({len(during)} messages)"
    )
    # Starved, the router would answer after the import (seconds to minutes); sharing two cores
    # with it, a live message still reaches the bot in a fraction of a second.
    assert len(during) >= 10
    assert statistics.median(during) < max(1.0, 5 * typical)
    assert slow < 2.5


async def test_deadline_is_tracked_and_a_failing_request_retried(
    history_stack: HistoryStack, sim: SimulatorClient, console: httpx.AsyncClient
) -> None:
    pnid = "9" + _digits(14)
    # Meta answers every sync request of this number with a rate-limit error.
    await sim.inject(
        Fault(
            kind=FaultKind.THROUGHPUT,
            phone_number_id=pnid,
            endpoint=Endpoint.SMB_APP_DATA,
            count=10_000,
        )
    )
    created = await console.post("/onboarding/numbers", json={"phone_number_id": pnid})
    assert created.status_code == 201, created.text
    metrics_url = history_stack.running.metrics_url("history")

    async def state(expected: str) -> dict[str, Any] | None:
        body: dict[str, Any] = (await console.get(f"/onboarding/numbers/{pnid}")).json()
        return body if body["deadline"] == expected else None

    async def gauge(name: str, **labels: str) -> float:
        return await _metric(metrics_url, name, **labels)

    at_risk = await eventually(lambda: state("at_risk"), timeout=WINDOW, what="at_risk")
    assert at_risk is not None
    assert 0 < at_risk["seconds_left"] <= AT_RISK

    async def shown_at_risk() -> bool:
        seconds = await gauge("baton_history_deadline_seconds")
        count = await gauge("baton_history_numbers", deadline="at_risk")
        return 0 < seconds <= AT_RISK and bool(count)

    await eventually(shown_at_risk, timeout=WINDOW, what="the at-risk metrics")
    await eventually(lambda: state("missed"), timeout=2 * WINDOW, what="missed")

    async def requests_missed() -> bool:
        body = await state("missed")
        return body is not None and [s["status"] for s in body["syncs"]] == ["missed", "missed"]

    await eventually(requests_missed, timeout=WINDOW, what="both requests marked missed")

    async def shown_missed() -> bool:
        return bool(await gauge("baton_history_numbers", deadline="missed"))

    await eventually(shown_missed, timeout=WINDOW, what="the missed metric")
    attempts = await sim.sync_requests(pnid)
    assert attempts[0].sync_type == "smb_app_state_sync"  # contacts first
    assert len(attempts) >= 6  # both retried with backoff all along ...
    assert {(a.sync_type, a.outcome) for a in attempts} == {
        ("smb_app_state_sync", Outcome.REJECTED),
        ("history", Outcome.REJECTED),
    }
    retries = await gauge("baton_history_sync_requests_total", sync_type="history", outcome="retry")
    assert retries >= 1
    # ... and nothing leaves once the window closed.
    await asyncio.sleep(1.0)
    assert len(await sim.sync_requests(pnid)) == len(attempts)
    # A person may still record what Meta says, but not send again.
    env = history_stack.running.env
    await _cli(env, "resolve", pnid, "history", "retry", expect=1)
    await _cli(env, "resolve", pnid, "history", "accepted", "--note", "Meta support: received")
    status = await _cli(env, "status", pnid)
    assert [(s["sync_type"], s["status"]) for s in status["syncs"]] == [
        ("smb_app_state_sync", "missed"),
        ("history", "accepted"),
    ]
    assert status["syncs"][1]["resolved_by"] == "person: Meta support: received"
    assert status["deadline"] == "met"


async def _metric(url: str, name: str, **labels: str) -> float:
    """One sample of the process's `/metrics` (0 when absent), labels in any order."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(url)).text
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        metric, _, label_text = sample.partition("{")
        found = dict(
            pair.split("=", 1) for pair in label_text.rstrip("}").split(",") if "=" in pair
        )
        if metric == name and {k: v.strip('"') for k, v in found.items()} == labels:
            return float(value)
    return 0.0


async def test_an_offboarded_number_is_disabled_and_its_webhooks_ignored(
    history_stack: HistoryStack, db: PostgresStore, sim: SimulatorClient
) -> None:
    pnid, display = "9" + _digits(14), "1666" + _digits(7)
    customer = "5511933332222"
    running = history_stack.running
    metrics_url = running.metrics_url("history")
    router_metrics_url = running.metrics_url("router")

    def chunk(order: int) -> bytes:
        messages = [
            history_message(
                customer,
                f"m{order}-{i}",
                wamid=f"{pnid}-{order}-{i}",
                timestamp=1_760_000_000 + order * 100 + i,
            )
            for i in range(5)
        ]
        change = history_chunk(
            pnid, {customer: messages}, chunk_order=order, progress=50, display_phone_number=display
        )
        return meta_json(envelope([change]))

    async def ignored(field: str) -> float:
        return await _metric(metrics_url, "baton_history_changes_ignored_total", field=field)

    async with httpx.AsyncClient(timeout=10) as client:
        await _post(running, chunk(1), client)

        async def stored() -> bool:
            history = await db.number_history(pnid)
            return history is not None and history.progress.messages_imported == 5

        await eventually(stored, what="the first chunk")
        await _post(running, meta_json(envelope([partner_removed(display)])), client)
        await eventually(lambda: db.number_disabled(pnid), what="the number to be disabled")
        ignored_before = (await ignored("history"), await ignored("smb_app_state_sync"))
        await _post(running, chunk(2), client)  # acknowledged ...
        contact = state_sync_contact(pnid, customer, display_phone_number=display)
        await _post(running, meta_json(envelope([contact])), client)

    async def both_ignored() -> bool:
        now = (await ignored("history"), await ignored("smb_app_state_sync"))
        return now == (ignored_before[0] + 1, ignored_before[1] + 1)

    await eventually(both_ignored, what="both webhooks to be ignored")
    # ... and ignored.
    history = await db.number_history(pnid)
    assert history is not None
    assert history.progress.messages_imported == 5
    assert await db.contact_names(pnid, [customer]) == {}
    assert history.onboarding is not None
    assert history.onboarding.disabled_reason == "PARTNER_REMOVED:ACCOUNT_DISCONNECTED"

    # A customer writing live to the offboarded number: acknowledged, and the router drops it.
    # (The router never looked this number up before, so its cache holds no stale answer.)
    async def router_ignored() -> float:
        return await _metric(
            router_metrics_url,
            "baton_router_ignored_total",
            kind="customer",
            reason="number_disabled",
        )

    writer, control = "5599" + _digits(9), "5599" + _digits(9)
    connected = history_stack.phone_number_id
    async with watching_bot_asks(history_stack.amqp_url) as asks:
        ignored_live = await router_ignored()
        async with httpx.AsyncClient(timeout=10) as client:
            await _post(running, meta_json(envelope([customer_text(pnid, writer, "oi?")])), client)

            async def live_ignored() -> bool:
                return await router_ignored() == ignored_live + 1

            await eventually(live_ignored, what="the router to ignore the live message")
            # Behind it, a customer of a connected number is answered: the pipeline is flowing.
            await _post(
                running, meta_json(envelope([customer_text(connected, control, "oi?")])), client
            )

        async def control_answered() -> bool:
            return any(m.wamid for m in await sim.messages(phone_number_id=connected, to=control))

        await eventually(control_answered, what="the connected number's reply")
    assert asks.first_for(control) is not None
    assert asks.first_for(writer) is None  # no bot request ...
    assert await sim.messages(phone_number_id=pnid) == []  # ... and nothing sent from it
    assert writer not in await _conversations(history_stack.pg_url, pnid)  # nothing stored
