"""The desk's fan-out: many agents on the console's SSE, events of many active conversations.

    .venv/bin/python -m bench.fanout [--agents 500] [--conversations 100] [--rate 20]
        [--seconds 20] [--baseline-seconds 10] [--client-procs 2] [--profile]

Starts the console (`python -m services.console`) as a real process on a throwaway vhost and a
fresh database, with `--agents` agents (BATON_AGENT_TOKENS, every number visible to each).
Events go the real path: `ModeChanged` events published on `baton.events` (as the router and
the handoff shell do), written once into the shared event log by the console's
`console.event_log` consumer, read by the hub (rung by the per-process feed) and fanned out to
every `GET /events` stream. Each event is stamped at its origin (`at`, taken just before
publishing); each SSE client (raw asyncio streams, `--client-procs` processes) takes
`time.time()` on arrival and records the difference.

Phases, in one run:
1. baseline: the same event rate to 1 agent (what the path costs without the fan-out);
2. memory: the console's RSS idle with 0 connections, then with `--agents` idle connections
   (all past their first `retry:` line): the difference divided by the connections;
3. fan-out: `--agents` agents, `--rate` events/s spread over `--conversations` conversations.
Printed: p50/p99/max event → delivery per phase and their ratios, deliveries missing, the
console's and each client process's CPU (to show the clients are not the limit), load average.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import os
import random
import secrets
import statistics
import sys
import time
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from baton.broker import Broker
from baton.logging import configure_logging
from baton.messages import ModeChanged
from baton.types import Mode
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
from devstack import REPO_ROOT, ServiceSpec, Stack

NUMBERS = [f"9200000000{i:05d}" for i in range(5)]
AT = b'"at":"'
TAIL = 2.0  # seconds after the last event, for the stragglers


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --- the SSE clients (run in child processes) ---------------------------------------------------


@dataclass
class ClientTally:
    latencies: array[float]
    events: int = 0
    resets: int = 0
    ended: int = 0


async def _follow(
    port: int, token: str, tally: ClientTally, connected: asyncio.Event, counter: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(
        b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/events answered {head[:60]!r}")
    chunked = b"transfer-encoding: chunked" in head.lower()
    buffer = b""
    first = True
    try:
        while True:
            if chunked:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    break
                data = await reader.readexactly(size + 2)
                buffer += data[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    break
                buffer += data
            now = time.time()
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                if first:
                    first = False
                    counter[0] += 1
                    if counter[0] == counter[1]:
                        connected.set()
                if frame.startswith(b"event: reset"):
                    tally.resets += 1
                    continue
                at = frame.find(AT)
                if at < 0:
                    continue
                stamp = frame[at + len(AT) : frame.index(b'"', at + len(AT))]
                tally.latencies.append(now - datetime.fromisoformat(stamp.decode()).timestamp())
                tally.events += 1
    finally:
        tally.ended += 1
        writer.close()


async def _clients(
    port: int, tokens: list[str], conn: multiprocessing.connection.Connection
) -> None:
    tally = ClientTally(array("d"))
    connected = asyncio.Event()
    counter = [0, len(tokens)]
    tasks = []
    for token in tokens:
        tasks.append(asyncio.create_task(_follow(port, token, tally, connected, counter)))
        await asyncio.sleep(0)  # do not open all at once: the accept backlog is finite
    await connected.wait()
    conn.send("connected")
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "measure"
    tally.latencies = array("d")
    cpu0 = time.process_time()
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
    cpu = time.process_time() - cpu0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    conn.send((tally.latencies.tobytes(), tally.events, tally.resets, cpu))


def _client_main(port: int, tokens: list[str], conn: multiprocessing.connection.Connection) -> None:
    try:
        import uvloop

        uvloop.run(_clients(port, tokens, conn))
    except ImportError:  # pragma: no cover
        asyncio.run(_clients(port, tokens, conn))


# --- the driver ---------------------------------------------------------------------------------


@dataclass
class Phase:
    agents: int
    published: int
    latencies: list[float]
    events: int
    resets: int
    client_cpu: list[float]
    console_cpu: float
    elapsed: float
    load: str

    def line(self, name: str) -> str:
        missing = self.published * self.agents - self.events
        return (
            f"{name}: {self.agents} agents, {self.published} events"
            f" ({self.published / (self.elapsed - TAIL):.1f}/s), {self.events} deliveries"
            f" ({self.events / (self.elapsed - TAIL):.0f}/s), {missing} missing, {self.resets} resets;"
            f" event→delivery p50 {percentile(self.latencies, 50) * 1000:.1f} ms"
            f" p99 {percentile(self.latencies, 99) * 1000:.1f} ms"
            f" max {max(self.latencies, default=float('nan')) * 1000:.1f} ms;"
            f" console CPU {self.console_cpu / self.elapsed:.0%} of a core, client procs"
            f" {', '.join(f'{c / self.elapsed:.0%}' for c in self.client_cpu)} of a core;"
            f" load average {self.load}"
        )


async def _publish(broker: Broker, rate: float, seconds: float, conversations: int) -> int:
    published = 0
    began = time.monotonic()
    epochs = [0] * conversations
    while (due := began + published / rate) < began + seconds:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        cid = random.randrange(conversations)
        epochs[cid] += 1
        await broker.publish_event(
            ModeChanged(
                conversation_id=cid + 1,
                phone_number_id=NUMBERS[cid % len(NUMBERS)],
                wa_id=f"55119{cid:08d}",
                at=datetime.now(UTC),
                from_mode=Mode.BOT,
                to_mode=Mode.HUMAN,
                epoch=epochs[cid],
                cause="agent_takeover",
                actor="agent0",
            )
        )
        published += 1
    return published


class Clients:
    """`procs` child processes sharing `tokens`, each holding its share of SSE connections."""

    def __init__(self, port: int, tokens: list[str], procs: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conns = []
        self.procs = []
        procs = min(procs, len(tokens))
        for i in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_client_main, args=(port, tokens[i::procs], child))
            proc.start()
            self._conns.append(parent)
            self.procs.append(proc)

    async def _recv(self) -> list[object]:
        loop = asyncio.get_running_loop()
        return [await loop.run_in_executor(None, c.recv) for c in self._conns]

    async def connected(self) -> None:
        await asyncio.wait_for(self._recv(), timeout=120)

    def measure(self) -> None:
        for c in self._conns:
            c.send("measure")

    async def stop(self) -> tuple[list[float], int, int, list[float]]:
        for c in self._conns:
            c.send("stop")
        answers = await asyncio.wait_for(self._recv(), timeout=120)
        latencies: list[float] = []
        events = resets = 0
        cpus: list[float] = []
        for answer in answers:
            assert isinstance(answer, tuple)
            raw, n, r, cpu = answer
            latencies.extend(array("d", raw))
            events += n
            resets += r
            cpus.append(cpu)
        for proc in self.procs:
            proc.join(timeout=30)
        return latencies, events, resets, cpus


async def _phase(
    args: argparse.Namespace, broker: Broker, port: int, pid: int, tokens: list[str], seconds: float
) -> Phase:
    clients = Clients(port, tokens, args.client_procs)
    await clients.connected()
    clients.measure()
    await asyncio.sleep(0.5)
    cpu0, began = cpu_seconds(pid), time.monotonic()
    published = await _publish(broker, args.rate, seconds, args.conversations)
    await asyncio.sleep(TAIL)  # the tail arrives
    elapsed = time.monotonic() - began
    console_cpu = cpu_seconds(pid) - cpu0
    load = load_average()
    latencies, events, resets, cpus = await clients.stop()
    return Phase(
        len(tokens), published, latencies, events, resets, cpus, console_cpu, elapsed, load
    )


async def _memory(port: int, pid: int, tokens: list[str], procs: int) -> tuple[int, int]:
    await asyncio.sleep(2.0)
    idle = _rss_kib(pid)
    clients = Clients(port, tokens, procs)
    await clients.connected()
    await asyncio.sleep(3.0)
    busy = _rss_kib(pid)
    clients.measure()
    await clients.stop()
    return idle, busy


async def _run(args: argparse.Namespace, amqp_url: str, pg_url: str) -> None:
    database = database_name(pg_url)
    run_dir = REPO_ROOT / ".run" / "bench-fanout" / database
    tokens = {f"agent{i}": secrets.token_hex(16) for i in range(args.agents)}
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "OTEL_"))},
        "BATON_AMQP_URL": amqp_url,
        "BATON_STORE_URL": pg_url,
        "BATON_APP_SECRET": "bench-fanout",
        "BATON_AGENT_TOKENS": ",".join(f"{a}:{t}" for a, t in tokens.items()),
        "BATON_CONSOLE_PORT": str(port),
        "BATON_LOG_LEVEL": "WARNING",
        "BATON_LOG_JSON": "true",
        **dict(kv.split("=", 1) for kv in args.env),
    }
    spec = ServiceSpec(
        "console", (sys.executable, "-m", "services.console"), f"http://127.0.0.1:{port}/readyz"
    )
    print(
        f"{args.agents} agents, {args.conversations} conversations, {args.rate:g} events/s for"
        f" {args.seconds:g} s (baseline: 1 agent, {args.baseline_seconds:g} s);"
        f" {args.client_procs} client processes; {os.cpu_count()} cores; load average {load_average()}",
        flush=True,
    )
    stack = Stack([spec], env, run_dir)
    stack.start()
    broker = Broker(amqp_url, name="bench-fanout")
    try:
        await stack.wait_ready(timeout=120)
        await broker.connect()
        pid = stack.processes["console"].pid
        all_tokens = list(tokens.values())
        # Warm-up: every code path ran once before anything is measured.
        await _phase(args, broker, port, pid, all_tokens[:1], 2.0)
        baseline = await _phase(args, broker, port, pid, all_tokens[:1], args.baseline_seconds)
        print(baseline.line("baseline"), flush=True)
        idle, busy = await _memory(port, pid, all_tokens, args.client_procs)
        per = (busy - idle) / args.agents
        print(
            f"memory: console RSS {idle} KiB idle with 0 connections, {busy} KiB with"
            f" {args.agents} idle connections: {per:.1f} KiB per connection; load average"
            f" {load_average()}",
            flush=True,
        )
        profiler = None
        if args.profile:
            profiler = py_spy(pid, max(5.0, args.seconds - 5), run_dir / "profile.txt")
        fanout = await _phase(args, broker, port, pid, all_tokens, args.seconds)
        print(fanout.line("fan-out"), flush=True)
        for p in (50, 99):
            b, f = percentile(baseline.latencies, p), percentile(fanout.latencies, p)
            print(f"p{p}: fan-out / baseline = {f / b:.1f}x ({f * 1000:.1f} / {b * 1000:.1f} ms)")
        cpu_per = fanout.console_cpu / max(fanout.events, 1) * 1e6
        base_per = baseline.console_cpu / max(baseline.events, 1) * 1e6
        print(
            f"console CPU per delivery: {cpu_per:.0f} µs fan-out vs {base_per:.0f} µs baseline;"
            f" goal p99 < 250 ms: {'met' if percentile(fanout.latencies, 99) < 0.25 else 'MISSED'},"
            f" < 50 KiB per idle connection: {'met' if per < 50 else 'MISSED'}"
        )
        if fanout.latencies:
            print(f"fan-out latency stdev {statistics.pstdev(fanout.latencies) * 1000:.1f} ms")
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        for line in metrics.splitlines():
            if line.startswith("baton_console_sse_events_total"):
                print(f"  {line}")
        if profiler is not None:
            profiler.wait(timeout=60)
            summarise_profile(run_dir / "profile.txt")
    finally:
        await broker.close()
        print(f"exit codes {stack.stop()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="events/s over all conversations")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--baseline-seconds", type=float, default=10.0, dest="baseline_seconds")
    parser.add_argument("--client-procs", type=int, default=2, dest="client_procs")
    parser.add_argument(
        "--env", action="append", default=[], help="extra KEY=VALUE for the console"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the console in fan-out")
    args = parser.parse_args()
    configure_logging("bench", level="WARNING")
    with throwaway_database("baton_fanout") as pg_url, throwaway_vhost("baton-bench") as amqp_url:
        asyncio.run(_run(args, amqp_url, pg_url))


if __name__ == "__main__":
    main()
