"""Outbox pacing: sustained sends/s per number against its limit, and queueing delay at 50 % load.

    .venv/bin/python -m bench.outbox [--seconds 15] [--counts 1,2,10] [--latency 0.15]

One real outbox process (`python -m services.outbox`) on a throwaway vhost and database, sending
to the WhatsApp simulator (its own process), which enforces Meta's 20 msg/s per Coexistence
number (130429 above it). Every number is a Coexistence number configured at 18 msg/s.
`--latency` makes the simulator hold every answer that long (Meta's round trip; loopback has
none): a send slot is reused one second after the answer, so the ceiling is 18 / (1 + call). For
1, 2 and 10 numbers:

- saturation: `seconds` x 18 sends per number queued at once; sustained rate per number =
  (sends - 1) / (last - first send) (the outbox spaces its calls evenly), as a ratio of the configured 18/s (goal >= 0.95), the
  most sends in any 1-s window (must stay <= 18) and the simulator's throughput errors (0);
- half load: 9 sends/s per number published open-loop for `seconds`; queueing delay = the
  simulator's receive time - the scheduled publish time, p50/p99. The baseline, measured in
  the same run, is the same schedule sent straight to the simulator with the Graph API client
  (no broker, no outbox).

Windows and delays use the simulator's receive timestamps (same monotonic clock as here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import uvloop

from baton.broker import Broker
from baton.messages import SendText
from baton.store import open_store
from baton.whatsapp.client import GraphClient
from bench._infra import free_port, throwaway_vhost
from devstack import REPO_ROOT
from simulator import DEV_ACCESS_TOKEN, NumberConfig, SentMessage, SimulatorClient
from tests.outbox_harness import (
    OutboxProcess,
    coexistence,
    conversations,
    customer_id,
    max_in_window,
    number_id,
    numbers_toml,
    request,
)

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
RATE = 18
CUSTOMERS = 60  # per number: keeps every customer far under the pair limit


def _start_simulator(port: int, latency: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.outbox_sim", str(port), str(latency)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Row:
    numbers: int
    rate_min: float
    rate_mean: float
    max_window: int
    throughput_errors: int
    p50_ms: float
    p99_ms: float
    base_p50_ms: float
    base_p99_ms: float
    call_ms: float  # mean Graph API call latency during saturation, seen by the outbox


class Bench:
    def __init__(
        self,
        sim: SimulatorClient,
        graph_url: str,
        broker: Broker,
        pg_url: str,
        seconds: float,
        outbox: OutboxProcess,
    ) -> None:
        self.outbox = outbox
        self.sim = sim
        self.graph_url = graph_url
        self.broker = broker
        self.pg_url = pg_url
        self.seconds = seconds

    async def _sends(self, numbers: list[str], per_number: int, tag: str) -> list[SendText]:
        store = await open_store(self.pg_url)
        try:
            rounds: list[list[SendText]] = []
            for pnid in numbers:
                wa_ids = [customer_id(i) for i in range(CUSTOMERS)]
                ids = await conversations(store, pnid, wa_ids)
                rounds.append(
                    [
                        request(
                            pnid,
                            wa_ids[i % CUSTOMERS],
                            ids[wa_ids[i % CUSTOMERS]],
                            f"{tag}#{pnid}#{i}",
                        )
                        for i in range(per_number)
                    ]
                )
        finally:
            await store.close()
        return [send for batch in zip(*rounds, strict=True) for send in batch]  # interleaved

    async def _accepted(self, numbers: list[str], each: int, timeout: float) -> None:
        """Poll the simulator's counters (cheap) until every number has `each` accepted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = (await self.sim.stats()).numbers
            if all(pnid in stats and stats[pnid].accepted >= each for pnid in numbers):
                return
            await asyncio.sleep(0.5)
        raise SystemExit(f"sends not delivered within {timeout:.0f}s")

    async def _messages(self, numbers: list[str], tag: str) -> dict[str, list[SentMessage]]:
        found = {}
        for pnid in numbers:
            sent = await self.sim.messages(pnid)
            found[pnid] = [m for m in sent if (m.body or "").startswith(f"{tag}#")]
        return found

    async def run(self, numbers: list[str]) -> Row:
        count = len(numbers)
        for pnid in numbers:
            await self.sim.register(NumberConfig(phone_number_id=pnid, coexistence=True))
        # Warm-up: a replica subscribes to each number and becomes its sender.
        for send in await self._sends(numbers, 1, "warm"):
            await self.broker.publish_command(send)
        await self._accepted(numbers, 1, timeout=60)
        errors_before = (await self.sim.stats()).throughput_errors
        calls_before = await self._calls()

        per_number = int(self.seconds * RATE)
        for send in await self._sends(numbers, per_number, "sat"):
            await self.broker.publish_command(send)
        await self._accepted(numbers, 1 + per_number, timeout=self.seconds * 4 + 60)
        rates, windows = [], []
        for sat in (await self._messages(numbers, "sat")).values():
            accepted = [m.at for m in sat if m.wamid is not None]
            rates.append((len(accepted) - 1) / (max(accepted) - min(accepted)))
            windows.append(max_in_window(m.at for m in sat))
        throughput_errors = (await self.sim.stats()).throughput_errors - errors_before
        calls_after = await self._calls()
        call_ms = 1000 * (calls_after[0] - calls_before[0]) / (calls_after[1] - calls_before[1])

        half = await self._sends(numbers, int(self.seconds * RATE / 2), "half")
        scheduled = await self._paced(half, count)
        await self._accepted(numbers, 1 + per_number + len(half) // count, self.seconds * 2 + 60)
        at = {
            m.body: m.at for sent in (await self._messages(numbers, "half")).values() for m in sent
        }
        delays = [at[body] - t for body, t in scheduled.items()]
        base = await self._baseline(numbers)
        return Row(
            numbers=count,
            rate_min=min(rates),
            rate_mean=statistics.fmean(rates),
            max_window=max(windows),
            throughput_errors=throughput_errors,
            p50_ms=_pct(delays, 0.5) * 1000,
            p99_ms=_pct(delays, 0.99) * 1000,
            base_p50_ms=_pct(base, 0.5) * 1000,
            base_p99_ms=_pct(base, 0.99) * 1000,
            call_ms=call_ms,
        )

    async def _calls(self) -> tuple[float, float]:
        """(seconds, count) of the outbox's Graph API calls so far."""
        return (
            await self.outbox.metric("baton_outbox_send_seconds_sum"),
            await self.outbox.metric("baton_outbox_send_seconds_count"),
        )

    async def _paced(self, sends: list[SendText], count: int) -> dict[str, float]:
        """Publish open-loop at RATE/2 per number; body → scheduled time."""
        interval = 1.0 / (RATE / 2 * count)
        began = time.monotonic() + 0.1
        scheduled: dict[str, float] = {}
        for i, send in enumerate(sends):
            due = began + i * interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self.broker.publish_command(send)
            scheduled[send.body] = due
        return scheduled

    async def _baseline(self, numbers: list[str]) -> list[float]:
        """The same half-load schedule sent straight to the simulator: the floor."""
        per_number = int(self.seconds * RATE / 2)
        interval = 1.0 / (RATE / 2 * len(numbers))
        scheduled: dict[str, float] = {}
        async with GraphClient(self.graph_url, DEV_ACCESS_TOKEN) as graph:

            async def one(pnid: str, body: str, due: float) -> None:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await graph.send_text(pnid, customer_id(), body)

            began = time.monotonic() + 0.1
            jobs = []
            for i in range(per_number * len(numbers)):
                body = f"base#{numbers[i % len(numbers)]}#{i}"
                scheduled[body] = began + i * interval
                jobs.append(one(numbers[i % len(numbers)], body, scheduled[body]))
            await asyncio.gather(*jobs)
        at = {
            m.body: m.at for sent in (await self._messages(numbers, "base")).values() for m in sent
        }
        return [at[body] - due for body, due in scheduled.items()]


async def main(seconds: float, counts: list[int], latency: float) -> None:
    load_before = os.getloadavg()
    database = f"bench_outbox_{uuid.uuid4().hex[:8]}"
    with throwaway_vhost("bench-outbox") as amqp_url:
        await _measure(amqp_url, database, seconds, counts, latency, load_before)


async def _measure(
    amqp_url: str,
    database: str,
    seconds: float,
    counts: list[int],
    latency: float,
    load_before: tuple[float, float, float],
) -> None:
    pg_url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{database}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{database}"')
    await conn.close()
    store = await open_store(pg_url, migrate=True)
    await store.close()
    # The numbers of every run, known up front: the numbers file makes them Coexistence (18/s).
    plans = [[number_id() for _ in range(count)] for count in counts]
    processes: list[subprocess.Popen[bytes]] = []
    outbox: OutboxProcess | None = None
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # The simulator runs as its own process, as Meta would: its answers must not wait
            # behind this process publishing thousands of sends.
            sim_port = free_port()
            processes.append(_start_simulator(sim_port, latency))
            root_url = f"http://127.0.0.1:{sim_port}"
            graph_url = f"{root_url}/v25.0"
            async with SimulatorClient(root_url) as sim:
                for _ in range(100):
                    if await sim.health():
                        break
                    await asyncio.sleep(0.1)
                numbers_file = Path(tmp) / "numbers.toml"
                numbers_file.write_text(
                    numbers_toml(coexistence(*(n for plan in plans for n in plan)))
                )
                outbox = OutboxProcess.configure(
                    "bench-outbox",
                    amqp_url=amqp_url,
                    pg_url=pg_url,
                    graph_url=graph_url,
                    numbers_file=numbers_file,
                    port=free_port(),
                    log_dir=Path(tmp),
                    extra={"BATON_LOG_LEVEL": "WARNING"},
                )
                broker = Broker(amqp_url, name="bench")
                await broker.connect()
                await broker.declare_topology()
                outbox.start()
                for _ in range(300):
                    if await outbox.ready():
                        break
                    await asyncio.sleep(0.2)
                else:
                    raise SystemExit(f"the outbox did not get ready; see {outbox.log_path}")
                bench = Bench(sim, graph_url, broker, pg_url, seconds, outbox)
                for plan in plans:
                    rows.append(await bench.run(plan))
                    _print(rows[-1])
                await broker.close()
                await asyncio.to_thread(outbox.stop)
    finally:
        if outbox is not None and outbox.process is not None and outbox.process.poll() is None:
            outbox.process.kill()
        for process in processes:
            process.terminate()
            process.wait()
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.close()
    load_after = os.getloadavg()
    print()
    print(
        f"simulator latency {latency * 1000:.0f} ms; load average (1/5/15 min) before"
        f" {_load(load_before)}, after {_load(load_after)}"
    )
    print(
        "| numbers | sends/s per number (min / mean) | ratio to 18/s (min) | max in any 1 s"
        " | throughput errors | delay p50 / p99 at 50 % | direct p50 / p99 | Graph call"
        " | ceiling 18/(1+call) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.numbers} | {r.rate_min:.2f} / {r.rate_mean:.2f} | {r.rate_min / RATE:.3f}"
            f" | {r.max_window} | {r.throughput_errors} | {r.p50_ms:.1f} / {r.p99_ms:.1f} ms"
            f" | {r.base_p50_ms:.1f} / {r.base_p99_ms:.1f} ms | {r.call_ms:.1f} ms"
            f" | {RATE / (1 + r.call_ms / 1000):.2f} |"
        )


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def _print(row: Row) -> None:
    print(
        f"{row.numbers:>2} numbers: {row.rate_min:.2f}-{row.rate_mean:.2f} sends/s per number"
        f" (ratio {row.rate_min / RATE:.3f}), max {row.max_window} in 1 s,"
        f" {row.throughput_errors} throughput errors; delay at 50 %: p50 {row.p50_ms:.1f} ms,"
        f" p99 {row.p99_ms:.1f} ms (direct: {row.base_p50_ms:.1f} / {row.base_p99_ms:.1f} ms);"
        f" Graph call {row.call_ms:.1f} ms",
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--counts", default="1,2,10")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds the simulator holds every answer"
    )
    args = parser.parse_args()
    uvloop.run(main(args.seconds, [int(c) for c in args.counts.split(",")], args.latency))
