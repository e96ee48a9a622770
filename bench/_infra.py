"""What every benchmark sets up around itself and reports with: free loopback ports, a throwaway
vhost and database, the load average, percentiles, a process's CPU time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import asyncpg

from baton.store import open_store

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PG_ADMIN = os.environ.get("BATON_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise SystemExit("rabbitmqctl not found: the benchmark needs the local RabbitMQ")
    subprocess.run([ctl, *args], check=True, capture_output=True)


@contextlib.contextmanager
def throwaway_vhost(prefix: str) -> Iterator[str]:
    """A fresh RabbitMQ vhost for one run (its AMQP URL), deleted afterwards."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield AMQP + vhost
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one run (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"

    async def create() -> None:
        await _admin(f'CREATE DATABASE "{name}"')
        await (await open_store(url, migrate=True)).close()

    asyncio.run(create())
    try:
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank `p`th percentile (0 to 100); NaN without values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
