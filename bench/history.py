"""History import end to end, against a raw bulk insert of the same rows measured in the same run.

    .venv/bin/python -m bench.history [--messages 1000000] [--conversations 20000]
        [--chunk-messages 2000] [--connections 4] [--batch-size 1000] [--prefetch 4]

1. Generates a Coexistence backlog (simulator/backlog.py) as signed `history` webhooks.
2. Baseline: the same rows (as the history service would store them) COPYed in binary into the
   `messages` table of a fresh database with the same schema and indexes; only the COPY calls
   are timed.
3. Pipeline: real ingest and history processes on a fresh database and RabbitMQ vhost; the
   webhooks are POSTed to ingest (a few connections, like Meta's concurrent deliveries), timed
   until the last message is stored. Peak RSS of the history process is its VmHWM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import asyncpg
import httpx
import uvloop

from baton.broker import Broker
from baton.logging import configure_logging
from baton.store import open_store
from baton.store.history_records import HistoryRow
from bench._infra import cpu_seconds, free_port, throwaway_vhost
from devstack import REPO_ROOT
from services.history.backlog import thread_rows
from simulator.backlog import Backlog, BacklogSpec, signed

SECRET = "bench-app-secret"
PG = "postgresql://postgres@127.0.0.1:5432/"
PNID = "900000000000042"
BUSINESS = "15550009999"
COLUMNS = (
    "conversation_id",
    "phone_number_id",
    "wamid",
    "direction",
    "author",
    "type",
    "body",
    "payload",
    "sent_at",
    "imported",
    "status",
    "status_rank",
)


async def _fresh_database(name: str) -> str:
    conn = await asyncpg.connect(PG + "postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    store = await open_store(PG + name, migrate=True)
    await store.close()
    return PG + name


async def _drop_database(name: str) -> None:
    conn = await asyncpg.connect(PG + "postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _rows(backlog: Backlog, first: int, last: int) -> Iterator[HistoryRow]:
    for chunk in backlog.chunks[first:last]:
        threads = backlog.chunk_change(chunk)["value"]["history"][0]["threads"]
        for row in thread_rows(threads, business=BUSINESS):
            assert isinstance(row, HistoryRow)
            yield row


async def raw_copy(backlog: Backlog, url: str) -> float:
    """Rows per second of binary COPY into `messages`, timing the COPY calls only."""
    conn = await asyncpg.connect(url)
    # Binary COPY needs a binary jsonb codec: version byte 1, then the JSON text.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda text: b"\x01" + text.encode(),
        decoder=lambda data: data[1:].decode(),
        schema="pg_catalog",
        format="binary",
    )
    try:
        customers = [backlog.customer(c) for c in range(backlog.spec.conversations)]
        await conn.execute(
            "INSERT INTO conversations (phone_number_id, wa_id) SELECT $1, unnest($2::text[])",
            PNID,
            customers,
        )
        ids: dict[str, int] = {
            r["wa_id"]: r["id"]
            for r in await conn.fetch(
                "SELECT wa_id, id FROM conversations WHERE phone_number_id = $1", PNID
            )
        }
        copied = 0
        spent = 0.0
        step = 10  # chunks per COPY
        for first in range(0, len(backlog.chunks), step):
            records = [
                (
                    ids[r.wa_id],
                    PNID,
                    r.wamid,
                    r.direction,
                    r.author,
                    r.type,
                    r.body,
                    r.payload,
                    r.sent_at,
                    True,
                    r.status,
                    r.status_rank,
                )
                for r in _rows(backlog, first, first + step)
            ]
            started = time.perf_counter()
            await conn.copy_records_to_table("messages", records=records, columns=COLUMNS)
            spent += time.perf_counter() - started
            copied += len(records)
        return copied / spent
    finally:
        await conn.close()


def _webhooks(backlog: Backlog) -> list[tuple[bytes, dict[str, str]]]:
    return [signed(backlog.envelope(backlog.chunk_change(c)), SECRET) for c in backlog.chunks]


async def _wait_ready(urls: Sequence[str], procs: Sequence[subprocess.Popen[bytes]]) -> None:
    async with httpx.AsyncClient(timeout=2.0) as client:
        for url in urls:
            for _ in range(300):
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError("a service exited during startup")
                try:
                    if (await client.get(url)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"not ready: {url}")


async def _stored(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT coalesce(sum(messages_stored), 0) FROM history_chunks"
                " WHERE phone_number_id = $1",
                PNID,
            )
        )
    finally:
        await conn.close()


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start(names: Sequence[str], env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in names
    ]


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


async def pipeline(
    backlog: Backlog, url: str, amqp_url: str, args: argparse.Namespace
) -> tuple[float, float, float]:
    """(messages/s end to end, seconds, peak RSS MiB of history) through ingest → history."""
    broker = Broker(amqp_url, name="bench")
    await broker.connect()
    await broker.declare_topology()
    await broker.close()
    ingest_port, history_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_AMQP_URL": amqp_url,
        "BATON_STORE_URL": url,
        "BATON_APP_SECRET": SECRET,
        "BATON_INGEST_PORT": str(ingest_port),
        "BATON_METRICS_PORT": str(history_port),
        "BATON_LOG_LEVEL": "WARNING",
        "BATON_HISTORY_BATCH_SIZE": str(args.batch_size),
        "BATON_HISTORY_PREFETCH": str(args.prefetch),
        "BATON_GRAPH_API_URL": "http://127.0.0.1:9/v25.0",  # never called: nothing onboarded
    }
    procs = _start(("ingest", "history"), env)
    try:
        await _wait_ready(
            [f"http://127.0.0.1:{ingest_port}/readyz", f"http://127.0.0.1:{history_port}/readyz"],
            procs,
        )
        bodies = _webhooks(backlog)
        size = sum(len(b) for b, _ in bodies)
        print(f"  {len(bodies)} webhooks, {size / 2**20:.0f} MiB in all", flush=True)
        queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
        for item in bodies:
            queue.put_nowait(item)
        del bodies
        webhook = f"http://127.0.0.1:{ingest_port}/webhook"

        async def post_all(client: httpx.AsyncClient) -> None:
            while not queue.empty():
                body, headers = queue.get_nowait()
                for _ in range(20):
                    response = await client.post(webhook, content=body, headers=headers)
                    if response.status_code == 200:
                        break
                    await asyncio.sleep(0.5)  # Meta retries anything but 200
                else:
                    raise RuntimeError(f"ingest keeps answering {response.status_code}")

        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=60.0) as client:
            await asyncio.gather(*(post_all(client) for _ in range(args.connections)))
        posted = time.perf_counter() - started
        print(f"  all webhooks acknowledged after {posted:.1f} s", flush=True)
        total = backlog.spec.messages
        while (stored := await _stored(url)) < total:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a service died during the import")
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        assert stored == total, stored
        ingest_cpu, history_cpu = (cpu_seconds(p.pid) for p in procs)
        print(
            f"  CPU seconds: ingest {ingest_cpu:.1f}, history {history_cpu:.1f}"
            f" ({history_cpu / total * 1e6:.1f} µs per message)",
            flush=True,
        )
        return total / elapsed, elapsed, _peak_rss_mib(procs[1].pid)
    finally:
        _stop(procs)


async def _run(args: argparse.Namespace) -> None:
    backlog = Backlog(
        BacklogSpec(
            phone_number_id=PNID,
            business_number=BUSINESS,
            conversations=args.conversations,
            messages=args.messages,
            onboarded_at=int(time.time()),
            chunk_messages=args.chunk_messages,
        )
    )
    tag = uuid.uuid4().hex[:8]
    raw_db, pipe_db = f"bench_raw_{tag}", f"bench_history_{tag}"
    print(
        f"{args.messages:,} messages, {args.conversations:,} conversations,"
        f" {args.chunk_messages} per webhook, batches of {args.batch_size},"
        f" prefetch {args.prefetch}, {os.cpu_count()} cores",
        flush=True,
    )
    try:
        raw_rate = await raw_copy(backlog, await _fresh_database(raw_db))
        print(f"raw COPY into messages:    {raw_rate:>9,.0f} rows/s", flush=True)
        await _drop_database(raw_db)
        with throwaway_vhost("bench-history") as amqp_url:
            rate, elapsed, rss = await pipeline(
                backlog, await _fresh_database(pipe_db), amqp_url, args
            )
        print(f"end to end (ingest→history→store): {rate:>9,.0f} messages/s ({elapsed:.1f} s)")
        print(f"peak RSS of the history process: {rss:.0f} MiB")
        print(f"ratio to raw COPY: {rate / raw_rate:.2f}")
    finally:
        await _drop_database(raw_db)
        await _drop_database(pipe_db)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--chunk-messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1000, help="BATON_HISTORY_BATCH_SIZE")
    parser.add_argument("--prefetch", type=int, default=4, help="BATON_HISTORY_PREFETCH")
    args = parser.parse_args()
    configure_logging("bench", level="WARNING")
    uvloop.run(_run(args))


if __name__ == "__main__":
    main()
