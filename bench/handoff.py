"""Handoff under load: bursts, debounce across router replicas, takeovers while the bot thinks.

    .venv/bin/python -m bench.handoff [--conversations 50] [--rounds 4] [--routers 2]

Starts real router processes and a real outbox process (to the WhatsApp simulator, in this
process) on a throwaway vhost and database. The benchmark plays the customers (bursts of 1-5
messages, published as ingest would), the bot (takes `bot.ask`, thinks for `--llm-ms`, replies
through the outbox and ends its turn) and the agents (with probability `--takeover` per round, a
takeover while the bot thinks, then a release). It prints:

- bot requests per burst (must be exactly 1.0), and whether each request held exactly its burst;
- fenced replies (expected: one per takeover) and leaked ones (must be 0);
- the router's added latency: last message of a burst published → bot request taken, minus the
  debounce window, p50/p99 — beside the baseline of two real broker hops measured in the same
  run with the routers running (publish → a relay consumer publishes on → consumed: the path a
  webhook takes to the router and the router's request to the bot, without the router's work).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import uvloop

from baton.broker import COMMANDS, EVENTS, WEBHOOKS, Broker, Delivery, QueueSpec
from baton.broker.topology import BOT_REQUESTS
from baton.conversations import Conversations
from baton.handoff import AgentReleased, AgentTookOver
from baton.logging import configure_logging
from baton.messages import AskBot, BotTurnFinished, ReplyFenced, SendText, WebhookChange
from baton.settings import NumbersConfig
from baton.store import PostgresStore, open_store
from baton.types import Author
from bench._infra import free_port, throwaway_vhost
from devstack import REPO_ROOT
from simulator import Simulator, running_simulator
from simulator.webhooks import customer_text

PG_ADMIN = os.environ.get("BATON_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NUMBERS = [f"9000000001{i:05d}" for i in range(5)]  # spread over numbers: no send-rate queueing


@dataclass
class Tally:
    bursts: int = 0
    requests: int = 0
    exact: int = 0  # requests that held exactly their burst's messages
    takeovers: int = 0
    latencies: list[float] = field(default_factory=list)
    first_round: list[float] = field(default_factory=list)  # router pools still warming up
    must_fence: set[str] = field(default_factory=set)  # reply bodies a human's takeover fenced
    fenced: set[str] = field(default_factory=set)  # idempotency keys the outbox fenced
    fences: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    def on_fenced(self, idempotency_key: str) -> None:
        self.fenced.add(idempotency_key)
        future = self.fences.get(idempotency_key)
        if future is not None and not future.done():
            future.set_result(None)

    def fence_of(self, idempotency_key: str) -> asyncio.Future[None]:
        future = self.fences.setdefault(idempotency_key, asyncio.get_running_loop().create_future())
        if idempotency_key in self.fenced and not future.done():
            future.set_result(None)
        return future


class BenchBot:
    """Takes bot requests and hands each to the conversation waiting for it."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[tuple[AskBot, float]]] = {}
        self.requests: dict[int, int] = {}

    async def on_request(self, delivery: Delivery) -> None:
        taken = time.monotonic()
        ask = AskBot.model_validate_json(delivery.body)
        self.requests[ask.conversation_id] = self.requests.get(ask.conversation_id, 0) + 1
        future = self.waiting.get(ask.conversation_id)
        if future is not None and not future.done():
            future.set_result((ask, taken))

    def expect(self, conversation_id: int) -> asyncio.Future[tuple[AskBot, float]]:
        future: asyncio.Future[tuple[AskBot, float]] = asyncio.get_running_loop().create_future()
        self.waiting[conversation_id] = future
        return future


async def _publish_message(broker: Broker, number: str, customer: str, text: str) -> str:
    wamid = f"wamid.B{uuid.uuid4().hex}"
    change = customer_text(number, customer, text, wamid=wamid)
    await broker.publish(
        WEBHOOKS,
        "messages",
        WebhookChange(
            entry_id="800000000000001",
            field="messages",
            value=change["value"],
            received_at=datetime.now(UTC),
        ),
    )
    return wamid


async def _reply(broker: Broker, ask: AskBot, body: str) -> SendText:
    reply = SendText(
        idempotency_key=f"reply:{ask.request_id}",
        conversation_id=ask.conversation_id,
        phone_number_id=ask.phone_number_id,
        to=ask.wa_id,
        body=body,
        author=Author.BOT,
        epoch=ask.epoch,
        request_id=ask.request_id,
    )
    await broker.publish_command(reply)
    await broker.publish_command(
        BotTurnFinished(
            request_id=ask.request_id,
            conversation_id=ask.conversation_id,
            phone_number_id=ask.phone_number_id,
            wa_id=ask.wa_id,
            epoch=ask.epoch,
            reply_count=1,
        )
    )
    return reply


async def _conversation(
    index: int,
    args: argparse.Namespace,
    broker: Broker,
    store: PostgresStore,
    shell: Conversations,
    bot: BenchBot,
    tally: Tally,
    sim: Simulator,
) -> None:
    rng = random.Random(index)
    number = NUMBERS[index % len(NUMBERS)]
    customer = f"55119{index:08d}"
    conversation = await store.conversation(number, customer)
    for round_ in range(args.rounds):
        expected = bot.expect(conversation.id)
        wamids = []
        for part in range(rng.randint(1, 5)):
            if part:
                await asyncio.sleep(rng.uniform(0.0, 0.6 * args.quiet))
            wamids.append(await _publish_message(broker, number, customer, f"r{round_} p{part}"))
        last_published = time.monotonic()
        tally.bursts += 1
        ask, taken = await asyncio.wait_for(expected, timeout=30)
        tally.latencies.append(taken - last_published - args.quiet)
        if round_ == 0:
            tally.first_round.append(tally.latencies[-1])
        tally.exact += sorted(m.wamid for m in ask.messages) == sorted(wamids)
        await asyncio.sleep(args.llm_ms / 1000)  # the bot thinks
        if rng.random() < args.takeover:
            tally.takeovers += 1
            await shell.apply(conversation.id, AgentTookOver(agent_id=f"agent-{index}"))
            reply = await _reply(broker, ask, f"late reply {ask.request_id}")
            tally.must_fence.add(reply.body)
            await shell.apply(conversation.id, AgentReleased(agent_id=f"agent-{index}"))
            await asyncio.wait_for(tally.fence_of(reply.idempotency_key), timeout=30)
        else:
            body = (await _reply(broker, ask, f"reply {ask.request_id}")).body
            # The customer reacts to the reply, so writes only once it arrived.
            await sim.wait_until(functools.partial(_delivered, sim, customer, body), timeout=30)


def _delivered(sim: Simulator, customer: str, body: str) -> bool:
    return any(m.body == body for m in sim.accepted(to=customer))


async def _hop_baseline(broker: Broker, samples: int = 200) -> list[float]:
    """Two real broker hops, as a customer message takes to reach the bot: a confirmed publish
    consumed from one quorum queue by a relay that publishes it on (confirmed) to a second,
    consumed there. Measured with the routers running, so the machine carries their load too."""
    arrived: asyncio.Queue[float] = asyncio.Queue()
    first = f"bench.hop1.{uuid.uuid4().hex[:8]}"
    second = f"bench.hop2.{uuid.uuid4().hex[:8]}"
    probe = BotTurnFinished(
        request_id="probe", conversation_id=0, phone_number_id="0", wa_id="0", epoch=0
    )

    async def relay(_: Delivery) -> None:
        await broker.publish(COMMANDS, second, probe)

    async def on(_: Delivery) -> None:
        arrived.put_nowait(time.monotonic())

    await broker.consume(QueueSpec(second, COMMANDS, (second,)), on, prefetch=10, max_attempts=1)
    await broker.consume(QueueSpec(first, COMMANDS, (first,)), relay, prefetch=10, max_attempts=1)
    hops = []
    for _ in range(samples):
        sent = time.monotonic()
        await broker.publish(COMMANDS, first, probe)
        hops.append(await arrived.get() - sent)
    return hops


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def _wait_ready(urls: list[str]) -> None:
    async with httpx.AsyncClient() as client:
        for url in urls:
            for _ in range(300):
                try:
                    if (await client.get(url)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"not ready: {url}")


async def _run(args: argparse.Namespace, amqp_url: str, pg_url: str, workdir: Path) -> None:
    store = await open_store(pg_url, migrate=True)
    broker = Broker(amqp_url, name="bench")
    await broker.connect()
    await broker.declare_topology()
    numbers_file = workdir / "numbers.toml"
    numbers_file.write_text(
        "".join(
            f'[numbers."{n}"]\ndebounce_quiet_seconds = {args.quiet}\n'
            f"debounce_cap_seconds = {max(5.0, args.quiet)}\n"
            for n in NUMBERS
        )
    )
    tally = Tally()
    bot = BenchBot()
    await broker.consume(BOT_REQUESTS, bot.on_request, prefetch=200, max_attempts=3)

    async def on_fenced(delivery: Delivery) -> None:
        tally.on_fenced(ReplyFenced.model_validate_json(delivery.body).idempotency_key)

    await broker.consume(
        QueueSpec(f"bench.fenced.{uuid.uuid4().hex[:8]}", EVENTS, (ReplyFenced.TYPE,)),
        on_fenced,
        prefetch=200,
        max_attempts=1,
    )
    async with running_simulator() as sim:
        processes, ready = _start(args, amqp_url, pg_url, numbers_file, sim, workdir)
        try:
            await _wait_ready(ready)
            hops = await _hop_baseline(broker)
            shell = Conversations(store, broker, NumbersConfig.load(numbers_file))
            started = time.monotonic()
            await asyncio.gather(
                *(
                    _conversation(i, args, broker, store, shell, bot, tally, sim)
                    for i in range(args.conversations)
                )
            )
            elapsed = time.monotonic() - started
            # A second request for a burst would come one debounce window after the first.
            await asyncio.sleep(args.quiet + 1.0)
            tally.requests = sum(bot.requests.values())
            _report(args, tally, hops, elapsed, sim)
        finally:
            for proc in processes:
                proc.terminate()
            for proc in processes:
                proc.wait(timeout=30)
    await broker.close()
    await store.close()


def _start(
    args: argparse.Namespace,
    amqp_url: str,
    pg_url: str,
    numbers_file: Path,
    sim: Simulator,
    workdir: Path,
) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_AMQP_URL": amqp_url,
        "BATON_STORE_URL": pg_url,
        "BATON_NUMBERS_FILE": str(numbers_file),
        "BATON_GRAPH_API_URL": sim.base_url,
        "BATON_LOG_LEVEL": os.environ.get("BENCH_SERVICE_LOG_LEVEL", "WARNING"),
        "BATON_LOG_JSON": "true",
    }
    processes, ready = [], []
    for name in ["router"] * args.routers + ["outbox"]:
        port = free_port()
        log = (workdir / f"{name}-{port}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                cwd=REPO_ROOT,
                env={**env, "BATON_METRICS_PORT": str(port)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        ready.append(f"http://127.0.0.1:{port}/readyz")
    return processes, ready


def _report(
    args: argparse.Namespace, tally: Tally, hops: list[float], elapsed: float, sim: Simulator
) -> None:
    leaked = [m for m in sim.accepted() if m.body in tally.must_fence]
    sent = [m for m in sim.accepted() if m.body and m.body.startswith("reply ")]
    lat, base = tally.latencies, hops
    print(
        f"{args.conversations} conversations x {args.rounds} rounds, {args.routers} routers,"
        f" debounce {args.quiet:g} s, bot thinks {args.llm_ms} ms, takeover p={args.takeover:g},"
        f" {os.cpu_count()} cores, {elapsed:.1f} s"
    )
    print(
        f"bursts {tally.bursts}  bot requests {tally.requests}"
        f"  requests per burst {tally.requests / tally.bursts:.3f}"
        f"  requests holding exactly their burst {tally.exact}/{tally.requests}"
    )
    print(
        f"takeovers mid-flight {tally.takeovers}  fenced replies {len(tally.fenced)}"
        f"  leaked to WhatsApp {len(leaked)}  bot replies delivered {len(sent)}"
    )
    print(
        f"router added latency  p50 {_pct(lat, 50) * 1000:7.1f} ms  p99 {_pct(lat, 99) * 1000:7.1f} ms"
        f"  (mean {statistics.fmean(lat) * 1000:.1f} ms)"
    )
    later = sorted(lat)
    for x in tally.first_round:
        later.remove(x)
    if later:
        first = tally.first_round
        print(
            f"  first round p50 {_pct(first, 50) * 1000:7.1f} ms  p99 {_pct(first, 99) * 1000:7.1f} ms"
            f"  later rounds p50 {_pct(later, 50) * 1000:7.1f} ms"
            f"  p99 {_pct(later, 99) * 1000:7.1f} ms"
        )
    print(
        f"baseline: 2 broker hops p50 {_pct(base, 50) * 1000:7.1f} ms  p99 {_pct(base, 99) * 1000:7.1f} ms"
    )
    print(
        f"ratio router/baseline  p50 {_pct(lat, 50) / _pct(base, 50):.1f}"
        f"  p99 {_pct(lat, 99) / _pct(base, 99):.1f}"
    )


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--routers", type=int, default=2)
    parser.add_argument("--quiet", type=float, default=1.0, help="debounce window, seconds")
    parser.add_argument("--takeover", type=float, default=0.25, help="per-round probability")
    parser.add_argument("--llm-ms", type=int, default=300, dest="llm_ms")
    args = parser.parse_args()
    configure_logging("bench", level="WARNING")

    database = f"baton_bench_{uuid.uuid4().hex[:8]}"
    pg_url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{database}"
    workdir = REPO_ROOT / ".run" / "bench-handoff"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with throwaway_vhost("baton-bench") as amqp_url:
            uvloop.run(_run(args, amqp_url, pg_url, workdir))
    finally:
        uvloop.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
