"""The outbox at real latency (issue 16): sustained sends per number when Meta counts on arrival.

    .venv/bin/python -m bench.outbox_latency [--kind coexistence] [--counts 1,10,50]
        [--margins 0.03,inf] [--seconds 20] [--rtt-median 0.25 --rtt-p99 0.6 --uplink-share 0.2]

The WhatsApp simulator runs in its own process (`bench.outbox_sim`) with a random round trip per
request: an uplink, then Meta counts the request against the number's cap (20/s Coexistence,
80/s otherwise; 130429 above it), then a downlink (simulator/latency.py). For every
window margin (`BATON_OUTBOX_WINDOW_MARGIN_SECONDS`; `inf` = the answer-anchored window, the
outbox before issue 16) a fresh outbox process sends, for 1, 10 and 50 numbers, `seconds` worth
of sends per number queued at once (18/s Coexistence, 72/s otherwise). Per number: sustained
rate = (accepted - 1) / (last - first arrival), as a ratio of the configured rate; the most
arrivals in any 1 s; the simulator's throughput errors.

Baseline in the same run ("direct"): the same simulator driven by an ideal pacer with no broker,
no store and no window, one call exactly every 1/rate s per number, open loop. Its errors are
what the uplink jitter alone causes at the configured rate; its `uplink` column is the time from
a call's due moment to Meta's count (uplink + client overhead), p50 / p99 / max - min.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import uvloop

from baton.broker import Broker
from baton.messages import SendText
from baton.settings import NumbersConfig, NumberSettings
from baton.store import open_store
from baton.whatsapp.client import GraphClient
from baton.whatsapp.errors import GraphError
from bench._infra import free_port, throwaway_vhost
from devstack import REPO_ROOT
from services.outbox.limiter import WindowShape, tolerated_jitter
from simulator import DEV_ACCESS_TOKEN, NumberConfig, SimulatorClient
from tests.outbox_harness import (
    OutboxProcess,
    conversations,
    customer_id,
    max_in_window,
    number_id,
    numbers_toml,
    request,
)

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Kind:
    name: str
    rate: int  # the outbox's configured limit
    cap: int  # Meta's, as the simulator enforces it
    customers: int  # per number, far under the pair limit for the run

    @property
    def coexistence(self) -> bool:
        return self.name == "coexistence"


KINDS = {
    "coexistence": Kind("coexistence", 18, 20, 60),
    "default": Kind("default", 72, 80, 200),
}


@dataclass
class Row:
    window: str
    numbers: int
    rate_min: float
    rate_mean: float
    max_window: int
    errors: int
    call_ms: float | None = None
    uplink: str = ""
    cpu_ms: float | None = None  # the outbox process's CPU per send (user + system)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Run:
    def __init__(
        self, sim: SimulatorClient, graph_url: str, pg_url: str, kind: Kind, seconds: float
    ):
        self.sim = sim
        self.graph_url = graph_url
        self.pg_url = pg_url
        self.kind = kind
        self.seconds = seconds

    async def register(self, numbers: list[str]) -> None:
        for pnid in numbers:
            await self.sim.register(
                NumberConfig(phone_number_id=pnid, coexistence=self.kind.coexistence)
            )

    async def _sends(self, numbers: list[str], per_number: int, tag: str) -> list[SendText]:
        store = await open_store(self.pg_url)
        try:
            rounds: list[list[SendText]] = []
            for pnid in numbers:
                wa_ids = [customer_id(i) for i in range(self.kind.customers)]
                ids = await conversations(store, pnid, wa_ids)
                rounds.append(
                    [
                        request(
                            pnid,
                            wa_ids[i % len(wa_ids)],
                            ids[wa_ids[i % len(wa_ids)]],
                            f"{tag}#{i}",
                        )
                        for i in range(per_number)
                    ]
                )
        finally:
            await store.close()
        return [send for batch in zip(*rounds, strict=True) for send in batch]  # interleaved

    async def _accepted(self, numbers: list[str], each: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = (await self.sim.stats()).numbers
            if all(pnid in stats and stats[pnid].accepted >= each for pnid in numbers):
                return
            await asyncio.sleep(0.5)
        raise SystemExit(f"sends not delivered within {timeout:.0f}s")

    async def _per_number(self, numbers: list[str], tag: str) -> tuple[list[float], int]:
        rates, windows = [], 0
        for pnid in numbers:
            sent = [
                m for m in await self.sim.messages(pnid) if (m.body or "").startswith(f"{tag}#")
            ]
            accepted = sorted(m.at for m in sent if m.wamid is not None)
            rates.append((len(accepted) - 1) / (accepted[-1] - accepted[0]))
            windows = max(windows, max_in_window(accepted))
        return rates, windows

    async def outbox(self, label: str, numbers: list[str], outbox: OutboxProcess) -> Row:
        """Queue the whole backlog, then start the outbox: every number saturated from its first
        call (fed while sending, the feed would be measured on this loaded machine)."""
        await self.register(numbers)
        per_number = int(self.seconds * self.kind.rate)
        sends = await self._sends(numbers, per_number, "sat")
        broker = Broker(outbox.env["BATON_AMQP_URL"], name="bench")
        await broker.connect()
        try:
            await broker.declare_topology()
            for i in range(0, len(sends), 200):  # pipelined, 200 confirms at a time
                await asyncio.gather(*(broker.publish_command(s) for s in sends[i : i + 200]))
        finally:
            await broker.close()
        errors_before = (await self.sim.stats()).throughput_errors
        outbox.start()
        try:
            await self._accepted(numbers, per_number, timeout=self.seconds * 6 + 120)
            calls = await _calls(outbox)
            cpu = _cpu_seconds(outbox)
        finally:
            await asyncio.to_thread(outbox.stop)
        rates, worst = await self._per_number(numbers, "sat")
        errors = (await self.sim.stats()).throughput_errors - errors_before
        call_ms = 1000 * calls[0] / calls[1] if calls[1] else None
        row = Row(label, len(numbers), min(rates), statistics.fmean(rates), worst, errors, call_ms)
        row.cpu_ms = 1000 * cpu / (per_number * len(numbers))
        return row

    async def direct(self, numbers: list[str]) -> Row:
        """The ideal pacer: one call every 1/rate s per number, no window, no broker."""
        await self.register(numbers)
        per_number = int(self.seconds * self.kind.rate)
        errors_before = (await self.sim.stats()).throughput_errors
        due: dict[str, float] = {}
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with (
            httpx.AsyncClient(timeout=30.0, limits=limits) as http,
            GraphClient(self.graph_url, DEV_ACCESS_TOKEN, client=http) as graph,
        ):
            customers = [customer_id(i) for i in range(self.kind.customers)]
            calls: set[asyncio.Task[None]] = set()

            async def one(pnid: str, body: str) -> None:
                # A 130429 is counted by the simulator; an ideal pacer does not retry.
                with contextlib.suppress(GraphError):
                    await graph.send_text(pnid, customers[len(due) % len(customers)], body)

            began = time.monotonic() + 0.5
            offset = 1.0 / (self.kind.rate * len(numbers))
            schedule = sorted(
                (began + i / self.kind.rate + j * offset, pnid, f"direct#{i}#{j}")
                for j, pnid in enumerate(numbers)
                for i in range(per_number)
            )
            for at, pnid, body in schedule:
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                due[body] = at
                task = asyncio.create_task(one(pnid, body))
                calls.add(task)
                task.add_done_callback(calls.discard)
            await asyncio.gather(*calls)
        errors = (await self.sim.stats()).throughput_errors - errors_before
        rates, worst = await self._per_number(numbers, "direct")
        uplinks = [
            m.at - due[m.body]
            for pnid in numbers
            for m in await self.sim.messages(pnid)
            if m.body is not None and m.body in due
        ]
        spread = max(uplinks) - min(uplinks)
        uplink = (
            f"{_pct(uplinks, 0.5) * 1000:.0f} / {_pct(uplinks, 0.99) * 1000:.0f}"
            f" / {spread * 1000:.0f} ms"
        )
        return Row(
            "direct (ideal pacer)",
            len(numbers),
            min(rates),
            statistics.fmean(rates),
            worst,
            errors,
            None,
            uplink,
        )


def _cpu_seconds(outbox: OutboxProcess) -> float:
    """The outbox process's CPU time so far (Linux /proc), including its start-up."""
    assert outbox.process is not None
    fields = Path(f"/proc/{outbox.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _calls(outbox: OutboxProcess) -> tuple[float, float]:
    return (
        await outbox.metric("baton_outbox_send_seconds_sum"),
        await outbox.metric("baton_outbox_send_seconds_count"),
    )


def _numbers_file(path: Path, numbers: list[str], kind: Kind) -> None:
    config = NumbersConfig(
        numbers={
            pnid: NumberSettings(phone_number_id=pnid, coexistence=kind.coexistence)
            for pnid in numbers
        }
    )
    path.write_text(numbers_toml(config))


async def main(args: argparse.Namespace) -> None:
    kind = KINDS[args.kind]
    counts = [int(c) for c in args.counts.split(",")]
    margins = [float(m) for m in args.margins.split(",")]
    direct_counts = [int(c) for c in args.direct_counts.split(",") if c]
    load_before = os.getloadavg()
    database = f"bench_outbox_latency_{uuid.uuid4().hex[:8]}"
    pg_url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{database}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{database}"')
    await conn.close()
    rows: list[Row] = []
    sim_port = free_port()
    simulator = _start_simulator(sim_port, args)
    try:
        store = await open_store(pg_url, migrate=True)
        await store.close()
        root_url = f"http://127.0.0.1:{sim_port}"
        graph_url = f"{root_url}/v25.0"
        with (
            throwaway_vhost("bench-outbox-latency") as amqp_url,
            tempfile.TemporaryDirectory() as tmp,
        ):
            async with SimulatorClient(root_url) as sim:
                for _ in range(100):
                    if await sim.health():
                        break
                    await asyncio.sleep(0.1)
                run = Run(sim, graph_url, pg_url, kind, args.seconds)
                for count in direct_counts:
                    rows.append(await run.direct([number_id() for _ in range(count)]))
                    _print(rows[-1], kind)
                for margin in margins:
                    rows.extend(
                        await _with_outbox(
                            run, margin, counts, amqp_url, pg_url, graph_url, Path(tmp)
                        )
                    )
    finally:
        simulator.terminate()
        simulator.wait()
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.close()
    _table(rows, kind, args, load_before, os.getloadavg())


def _start_simulator(port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.outbox_sim", str(port)]
    command += ["--rtt-median", str(args.rtt_median), "--rtt-p99", str(args.rtt_p99)]
    command += ["--uplink-share", str(args.uplink_share), "--rtt-seed", str(args.seed)]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def _with_outbox(
    run: Run,
    margin: float,
    counts: list[int],
    amqp_url: str,
    pg_url: str,
    graph_url: str,
    tmp: Path,
) -> list[Row]:
    """A fresh outbox process per count, so each starts on a full backlog."""
    rows: list[Row] = []
    label = (
        "answer (margin inf, before)" if math.isinf(margin) else f"margin {margin * 1000:.0f} ms"
    )
    for count in counts:
        plan = [number_id() for _ in range(count)]
        name = f"bench-outbox-{uuid.uuid4().hex[:6]}"
        numbers_file = tmp / f"{name}.toml"
        _numbers_file(numbers_file, plan, run.kind)
        outbox = OutboxProcess.configure(
            name,
            amqp_url=amqp_url,
            pg_url=pg_url,
            graph_url=graph_url,
            numbers_file=numbers_file,
            port=free_port(),
            log_dir=tmp,
            extra={
                "BATON_LOG_LEVEL": "WARNING",
                "BATON_OUTBOX_WINDOW_MARGIN_SECONDS": str(margin),
            },
        )
        rows.append(await run.outbox(label, plan, outbox))
        _print(rows[-1], run.kind)
    return rows


def _print(row: Row, kind: Kind) -> None:
    print(
        f"{row.window}, {row.numbers} numbers: {row.rate_min:.2f}-{row.rate_mean:.2f}/s per number"
        f" (ratio {row.rate_min / kind.rate:.3f}), max {row.max_window} in 1 s at Meta,"
        f" {row.errors} throughput errors {row.uplink}",
        flush=True,
    )


def _table(
    rows: list[Row],
    kind: Kind,
    args: argparse.Namespace,
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
) -> None:
    shape = WindowShape(kind.rate, 1.0)
    print()
    print(
        f"{kind.name} numbers: {kind.rate}/s configured, Meta's cap {kind.cap}/s; round trip"
        f" median {args.rtt_median * 1000:.0f} ms, p99 {args.rtt_p99 * 1000:.0f} ms, uplink share"
        f" {args.uplink_share}; {args.seconds:g} s of sends per number; load average before"
        f" {' / '.join(f'{x:.2f}' for x in load_before)}, after"
        f" {' / '.join(f'{x:.2f}' for x in load_after)}"
    )
    print(
        f"| window | numbers | sends/s per number (min / mean) | ratio to {kind.rate}/s (min)"
        f" | max in any 1 s at Meta | throughput errors | Graph call (mean) | jitter {kind.cap}/s absorbs"
        " | uplink p50 / p99 / spread | outbox CPU per send |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        margin = math.inf
        if r.window.startswith("margin"):
            margin = float(r.window.split()[1]) / 1000
        absorbs = (
            "n/a"
            if r.window.startswith("direct")
            else "any"
            if math.isinf(margin)
            else f"{tolerated_jitter(shape, margin, kind.cap) * 1000:.0f} ms"
        )
        call = f"{r.call_ms:.0f} ms" if r.call_ms is not None else ""
        print(
            f"| {r.window} | {r.numbers} | {r.rate_min:.2f} / {r.rate_mean:.2f}"
            f" | {r.rate_min / kind.rate:.3f} | {r.max_window} | {r.errors} | {call} | {absorbs}"
            f" | {r.uplink} | {'' if r.cpu_ms is None else f'{r.cpu_ms:.1f} ms'} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kind", choices=sorted(KINDS), default="coexistence")
    parser.add_argument("--counts", default="1,10,50")
    parser.add_argument("--margins", default="0.03,inf")
    # The ideal pacer is this process's own httpx client, open loop: on 2 cores it keeps its
    # schedule for one number (18 or 72/s), not for 10 (its calls then queue in the client).
    parser.add_argument("--direct-counts", default="1")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rtt-median", type=float, default=0.25)
    parser.add_argument("--rtt-p99", type=float, default=0.6)
    parser.add_argument("--uplink-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=16)
    uvloop.run(main(parser.parse_args()))
