"""The whole pipeline under load: signed webhooks in, bot replies out at the WhatsApp simulator.

    .venv/bin/python -m bench.pipeline [--rate 1000] [--seconds 60] [--customers 6000]
        [--routers 1] [--bots 1] [--outboxes 1] [--ingests 1] [--quiet 0.1] [--llm-ms 300]
        [--prefetch 32] [--profile router]

Starts, as real processes on a throwaway vhost and a fresh database (`devstack.Stack`, logs in
.run/bench-pipeline/<run>/): the WhatsApp simulator (`bench.outbox_sim`, on uvloop, answering at
once), the fake LLM (`bench.llm_sim`, answering every call after `--llm-ms`), ingest, router,
bot and outbox (each `--<name>s` replicas). 20 business numbers (72 sends/s each, so 1,440/s of
outbox capacity) share `--customers` customers; the numbers file sets the debounce window to
`--quiet` seconds (production default: 1 s) so that the window does not dominate the latency.

Load is open loop (`bench.loadgen.paced`): customer messages at `--rate` per second, each a
signed one-message webhook, customer after customer, so each customer writes every
customers/rate seconds (6 s by default: one message per burst, under the pair limit). A message's
reply is the one whose body echoes its token (the fake LLM echoes the last user message).

Printed:
- the rate ingest acknowledged, the rate replies reached the simulator, and how many messages
  got no reply before the drain deadline;
- Baton's added latency per message: reply accepted by the simulator - webhook sent - debounce
  window - LLM delay, p50/p99/max, over the whole run and its last 10 s (a backlog grows there);
- each process's CPU per customer message (from /proc; PostgreSQL = the backends of this run's
  database, RabbitMQ = the whole broker, shared with whatever else runs on the machine);
- the baseline measured in the same run: the same paced load against a bare endpoint
  (`bench.bare_server`), i.e. what the load generator and loopback alone cost, and the ratios.
With `--profile NAME`, py-spy samples that process (the first replica) for 20 s in mid-run and
the top frames by own and by inclusive time are printed (needs `py-spy` in the venv).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from baton.logging import configure_logging
from baton.whatsapp.signature import sign
from bench._infra import (
    cpu_seconds,
    database_name,
    free_port,
    load_average,
    percentile,
    throwaway_database,
    throwaway_vhost,
)
from bench._profiling import py_spy, summarise_profile
from bench.ingest import _wait_up
from bench.loadgen import Result, paced, post_request
from devstack import GRAPH_API_VERSION, REPO_ROOT, ServiceSpec, Stack
from simulator import Outcome, SentMessage, SimulatorClient
from simulator.webhooks import customer_text, envelope, meta_json

SECRET = "bench-pipeline-secret"
NUMBERS = [f"9100000000{i:05d}" for i in range(20)]
TOKEN = re.compile(r"q(\d+)x(\d+)")
SERVICES = ("ingest", "router", "bot", "outbox")


@dataclass
class Customers:
    """Customer messages in schedule order: customer after customer, round after round."""

    count: int
    sent_at: dict[str, float] = field(default_factory=dict)  # token → wall clock when sent
    _seq: int = 0

    def next_request(self) -> bytes:
        i, k = self._seq % self.count, self._seq // self.count
        self._seq += 1
        token = f"q{i}x{k}"
        change = customer_text(
            NUMBERS[i % len(NUMBERS)],
            f"5511{i:09d}",
            f"onde está meu pedido {token}?",
            wamid=f"wamid.P{token}",
        )
        body = meta_json(envelope([change]))
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, SECRET)}
        self.sent_at[token] = time.time()
        return post_request("/webhook", body, headers)


def _numbers_toml(quiet: float) -> str:
    lines = []
    for pnid in NUMBERS:
        lines += [
            f'[numbers."{pnid}"]',
            f"debounce_quiet_seconds = {quiet}",
            f"debounce_cap_seconds = {max(quiet * 5, 1.0)}",
        ]
    return "\n".join(lines) + "\n"


def _specs(args: argparse.Namespace, sim_port: int, llm_port: int) -> list[ServiceSpec]:
    py = sys.executable
    specs = [
        ServiceSpec(
            "simulator",
            (py, "-m", "bench.outbox_sim", str(sim_port)),
            f"http://127.0.0.1:{sim_port}/_sim/health",
        ),
        ServiceSpec(
            "llm",
            (py, "-m", "bench.llm_sim", str(llm_port), str(args.llm_ms / 1000)),
            f"http://127.0.0.1:{llm_port}/_control/transcriptions",
        ),
    ]
    for i in range(args.ingests):
        port = free_port()
        specs.append(
            ServiceSpec(
                f"ingest-{i}",
                (py, "-m", "services.ingest"),
                f"http://127.0.0.1:{port}/readyz",
                {"BATON_INGEST_PORT": str(port)},
            )
        )
    for name, replicas in (("router", args.routers), ("bot", args.bots), ("outbox", args.outboxes)):
        for i in range(replicas):
            port = free_port()
            specs.append(
                ServiceSpec(
                    f"{name}-{i}",
                    (py, "-m", f"services.{name}"),
                    f"http://127.0.0.1:{port}/readyz",
                    {"BATON_METRICS_PORT": str(port), "BATON_OUTBOX_REPLICA_ID": f"{name}-{i}"},
                )
            )
    return specs


def _postgres_pids(database: str) -> list[int]:
    """The PostgreSQL backends serving `database` (their process title names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            found.append(int(entry.name))
    return found


def _rabbit_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # a backend that exited meanwhile
            total += cpu_seconds(pid)
    return total


def _cpu_snapshot(stack: Stack, database: str) -> dict[str, float]:
    snap = {name: _cpu([proc.pid]) for name, proc in stack.processes.items()}
    snap["postgres"] = _cpu(_postgres_pids(database))
    snap["rabbitmq"] = _cpu(_rabbit_pids())
    snap["driver"] = _cpu([os.getpid()])
    return snap


async def _replies(sim: SimulatorClient, seen: list[SentMessage]) -> int:
    """Append the simulator's new accepted sends to `seen`; how many arrived."""
    after = seen[-1].seq if seen else 0
    new = await sim.messages(outcome=Outcome.ACCEPTED, after_seq=after)
    seen.extend(new)
    return len(new)


async def _drive(
    ports: list[int], customers: Customers, rate: float, seconds: float, connections: int
) -> Result:
    each = [
        paced(
            port,
            customers.next_request,
            rate=rate / len(ports),
            seconds=seconds,
            connections=max(1, connections // len(ports)),
        )
        for port in ports
    ]
    results = await asyncio.gather(*each)
    merged = Result(elapsed=max(r.elapsed for r in results))
    for r in results:
        merged.sent += r.sent
        merged.latencies += r.latencies
        for status, n in r.by_status.items():
            merged.by_status[status] = merged.by_status.get(status, 0) + n
    return merged


def _latencies(
    customers: Customers, seen: list[SentMessage], offset: float
) -> tuple[dict[str, float], int]:
    """token → Baton's added latency (seconds); replies that matched no token."""
    added: dict[str, float] = {}
    stray = 0
    for reply in seen:
        tokens = TOKEN.findall(reply.body or "")
        if not tokens:
            stray += 1
        at = reply.received_at.timestamp()
        for i, k in tokens:
            token = f"q{i}x{k}"
            if token in customers.sent_at and token not in added:
                added[token] = at - customers.sent_at[token] - offset
    return added, stray


def _window(values: list[tuple[float, float]], start: float, end: float) -> list[float]:
    return [v for t, v in values if start <= t < end]


async def _baseline(args: argparse.Namespace) -> Result:
    """The same paced load against a bare 200 endpoint: the load generator and loopback alone."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once, before any load)
        [sys.executable, "-m", "bench.bare_server", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _wait_up(port, "/webhook")
        customers = Customers(args.customers)
        seconds = min(args.seconds, args.baseline_seconds)
        return await _drive([port], customers, args.rate, seconds, args.connections)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def _run(args: argparse.Namespace, amqp_url: str, pg_url: str) -> None:
    database = database_name(pg_url)
    run_dir = REPO_ROOT / ".run" / "bench-pipeline" / database
    run_dir.mkdir(parents=True, exist_ok=True)
    numbers_file = run_dir / "numbers.toml"
    numbers_file.write_text(_numbers_toml(args.quiet))
    sim_port, llm_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "OTEL_"))},
        "BATON_AMQP_URL": amqp_url,
        "BATON_STORE_URL": pg_url,
        "BATON_APP_SECRET": SECRET,
        "BATON_NUMBERS_FILE": str(numbers_file),
        "BATON_GRAPH_API_URL": f"http://127.0.0.1:{sim_port}/{GRAPH_API_VERSION}",
        "BATON_LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
        "BATON_LLM_API_KEY": "bench",
        "BATON_LLM_MODEL": "fake",
        "BATON_CONSUMER_PREFETCH": str(args.prefetch),
        "BATON_LOG_LEVEL": "WARNING",
        "BATON_LOG_JSON": "true",
    }
    print(
        f"{args.rate:g} customer msgs/s for {args.seconds:g} s, {args.customers} customers on"
        f" {len(NUMBERS)} numbers, debounce {args.quiet:g} s, LLM {args.llm_ms} ms,"
        f" prefetch {args.prefetch}; ingest x{args.ingests}, router x{args.routers},"
        f" bot x{args.bots}, outbox x{args.outboxes}; {os.cpu_count()} cores;"
        f" load average {load_average()}",
        flush=True,
    )
    baseline = await _baseline(args)
    print(
        f"baseline (bare endpoint, same paced load, {baseline.elapsed:.0f} s):"
        f" {baseline.ok / baseline.elapsed:.0f} acks/s, ack p50"
        f" {baseline.percentile(50) * 1000:.1f} ms p99 {baseline.percentile(99) * 1000:.1f} ms;"
        f" load average {load_average()}",
        flush=True,
    )

    stack = Stack(_specs(args, sim_port, llm_port), env, run_dir)
    stack.start()
    sim = SimulatorClient(f"http://127.0.0.1:{sim_port}")
    try:
        await stack.wait_ready(timeout=120)
        ingest_ports = [
            int(spec.env["BATON_INGEST_PORT"])
            for spec in stack.specs
            if spec.name.startswith("ingest")
        ]
        # Warm-up: every conversation exists and every process has its connections.
        warm = Customers(args.customers)
        warm_result = await _drive(
            ingest_ports, warm, args.rate / 2, args.customers / (args.rate / 2), args.connections
        )
        seen: list[SentMessage] = []
        deadline = time.monotonic() + 60
        while len(seen) < warm_result.ok * 0.99 and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            await _replies(sim, seen)
        print(
            f"warm-up: {warm_result.ok} messages, {len(seen)} replies; load average {load_average()}",
            flush=True,
        )
        warm_seq = seen[-1].seq if seen else 0

        customers = Customers(args.customers)
        customers._seq = args.customers * 1000  # tokens of this phase differ from warm-up's
        profiler = None
        if args.profile:
            name = f"{args.profile}-0" if args.profile != "simulator" else args.profile
            profile_out = run_dir / "profile.txt"

            async def start_profile() -> subprocess.Popen[bytes] | None:
                await asyncio.sleep(min(10.0, args.seconds / 4))
                return py_spy(stack.processes[name].pid, 20, profile_out)

            profiling = asyncio.create_task(start_profile())
        cpu_before = _cpu_snapshot(stack, database)
        began = time.time()
        result = await _drive(ingest_ports, customers, args.rate, args.seconds, args.connections)
        cpu_after = _cpu_snapshot(stack, database)
        load_end = load_average()
        if args.profile:
            profiler = await profiling
        seen = []
        sent = len(customers.sent_at)
        last = -1
        stalled = drain_began = time.monotonic()
        # A backlog drains at the pipeline's own rate: stop waiting after --drain seconds.
        while (
            time.monotonic() - stalled < 10
            and time.monotonic() - drain_began < args.drain
            and len(seen) < sent
        ):
            await asyncio.sleep(1.0)
            if not seen:
                seen = await sim.messages(outcome=Outcome.ACCEPTED, after_seq=warm_seq)
            else:
                await _replies(sim, seen)
            if len(seen) != last:
                last, stalled = len(seen), time.monotonic()
        stats = await sim.stats()
    finally:
        await sim.aclose()
        codes = stack.stop()
    offset = args.quiet + args.llm_ms / 1000
    added, stray = _latencies(customers, seen, offset)
    _report(args, result, baseline, customers, seen, added, stray, began, offset)
    print(
        f"simulator: {stats.accepted} accepted, {stats.rejected} rejected,"
        f" {stats.throughput_errors} throughput errors; exit codes {codes}"
    )
    messages = max(result.ok, 1)
    print(
        f"CPU per customer message (load window, {result.elapsed:.0f} s); load average {load_end}"
    )
    total = 0.0
    for name in sorted(cpu_after):
        used = cpu_after[name] - cpu_before.get(name, cpu_after[name])
        total += used if name not in ("rabbitmq",) else 0.0
        print(
            f"  {name:<10} {used / messages * 1e6:7.0f} µs  ({used / result.elapsed:5.0%} of a core)"
        )
    print(f"  all but RabbitMQ: {total / messages * 1e6:.0f} µs per message")
    if profiler is not None:
        profiler.wait(timeout=60)
        summarise_profile(run_dir / "profile.txt")


def _report(
    args: argparse.Namespace,
    result: Result,
    baseline: Result,
    customers: Customers,
    seen: list[SentMessage],
    added: dict[str, float],
    stray: int,
    began: float,
    offset: float,
) -> None:
    sent = len(customers.sent_at)
    non_200 = {s: n for s, n in result.by_status.items() if s != 200}
    ack_rate = result.ok / result.elapsed
    replies_in_window = [r for r in seen if r.received_at.timestamp() < began + result.elapsed]
    print(
        f"offered {args.rate:g}/s: ingest acked {result.ok} of {sent} ({ack_rate:.0f}/s,"
        f" non-200 {non_200 or 'none'}), ack p50 {result.percentile(50) * 1000:.1f} ms"
        f" p99 {result.percentile(99) * 1000:.1f} ms"
    )
    print(
        f"replies: {len(seen)} ({len(replies_in_window) / result.elapsed:.0f}/s during the load),"
        f" messages answered {len(added)}/{sent}, unanswered {sent - len(added)},"
        f" replies without a token {stray}"
    )
    values = list(added.values())
    timed = [(customers.sent_at[t] - began, v) for t, v in added.items()]
    tail = _window(timed, result.elapsed - 10, result.elapsed)
    head = _window(timed, 0, 10)
    print(
        f"Baton's added latency (reply at simulator - sent - debounce - LLM = - {offset:.2f} s):"
        f" p50 {percentile(values, 50) * 1000:.0f} ms  p99 {percentile(values, 99) * 1000:.0f} ms"
        f"  max {max(values, default=float('nan')) * 1000:.0f} ms"
        f"  mean {statistics.fmean(values) * 1000 if values else float('nan'):.0f} ms"
    )
    print(
        f"  first 10 s p99 {percentile(head, 99) * 1000:.0f} ms; last 10 s p50"
        f" {percentile(tail, 50) * 1000:.0f} ms p99 {percentile(tail, 99) * 1000:.0f} ms"
    )
    base_rate = baseline.ok / baseline.elapsed if baseline.ok else float("nan")
    print(
        f"ratios to the bare endpoint: acked rate {ack_rate / base_rate:.2f},"
        f" reply rate {len(replies_in_window) / result.elapsed / base_rate:.2f},"
        f" ack p99 {result.percentile(99) / baseline.percentile(99):.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="customer messages/s")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-seconds", type=float, default=10.0, dest="baseline_seconds")
    parser.add_argument("--customers", type=int, default=6000)
    parser.add_argument("--drain", type=float, default=90.0, help="max seconds to wait for replies")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--ingests", type=int, default=1)
    parser.add_argument("--routers", type=int, default=1)
    parser.add_argument("--bots", type=int, default=1)
    parser.add_argument("--outboxes", type=int, default=1)
    parser.add_argument("--quiet", type=float, default=0.1, help="debounce window, seconds")
    parser.add_argument("--llm-ms", type=int, default=300, dest="llm_ms")
    parser.add_argument("--prefetch", type=int, default=32, help="BATON_CONSUMER_PREFETCH")
    parser.add_argument("--profile", choices=[*SERVICES, "simulator"], default=None)
    args = parser.parse_args()
    configure_logging("bench", level="WARNING")

    with throwaway_database("baton_pipe") as pg_url, throwaway_vhost("baton-bench") as amqp_url:
        uvloop.run(_run(args, amqp_url, pg_url))


if __name__ == "__main__":
    main()
