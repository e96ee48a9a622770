"""`baton doctor`: one line per thing Baton needs, and what to do when it is missing.

Checks, in order: the broker (reachable, every queue of the topology declared), the store
(reachable, every migration applied), the Graph API token of each known business number, and
the clock against the database's and Meta's (a skewed clock misjudges the 24-hour windows).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aio_pika
import httpx
from aiormq.exceptions import ChannelNotFoundEntity

from baton.broker.topology import QUEUES
from baton.settings import Settings
from baton.store import migrations, open_store

# Past this the 24-hour window and the timers are off by a noticeable amount.
MAX_SKEW_SECONDS = 2.0
TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name:<12} {self.detail}"


async def broker(settings: Settings) -> Check:
    try:
        connection = await aio_pika.connect(settings.amqp_url, timeout=TIMEOUT_SECONDS)
    except Exception as exc:
        return Check("broker", False, f"cannot connect to {_host(settings.amqp_url)}: {exc!r}")
    missing = []
    async with connection:
        for name in QUEUES:
            async with connection.channel() as channel:
                try:
                    await channel.declare_queue(name, passive=True)
                except ChannelNotFoundEntity:
                    missing.append(name)
    if missing:
        return Check(
            "broker", False, f"queues missing: {', '.join(missing)} (start any Baton service)"
        )
    return Check("broker", True, f"{_host(settings.amqp_url)}, {len(QUEUES)} queues declared")


async def store(settings: Settings) -> tuple[Check, Check]:
    try:
        opened = await asyncio.wait_for(open_store(settings.store_url), TIMEOUT_SECONDS)
    except Exception as exc:
        failed = Check("store", False, f"cannot connect to {_host(settings.store_url)}: {exc!r}")
        return failed, Check("clock", False, "not checked: no store")
    try:
        async with opened.pool.acquire() as conn:
            applied = {
                row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")
            }
            started = time.time()
            db_now: datetime = await conn.fetchval("SELECT now()")
            ours = (started + time.time()) / 2
    except Exception as exc:
        await opened.close()
        return Check("store", False, f"not migrated: {exc!r}"), Check("clock", False, "not checked")
    await opened.close()
    pending = [m.version for m in migrations.available() if m.version not in applied]
    store_check = (
        Check("store", False, f"migrations pending: {pending} (run the migrate job)")
        if pending
        else Check("store", True, f"{_host(settings.store_url)}, {len(applied)} migrations")
    )
    skew = ours - db_now.timestamp()
    clock = Check(
        "clock",
        abs(skew) <= MAX_SKEW_SECONDS,
        f"{skew:+.2f} s against the database (at most ±{MAX_SKEW_SECONDS:.0f} s)",
    )
    return store_check, clock


async def graph(settings: Settings) -> list[Check]:
    numbers = settings.numbers()
    found = []
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
        for number, config in sorted(numbers.numbers.items()):
            token = (config.access_token or settings.access_token).get_secret_value()
            url = f"{settings.graph_api_url.rstrip('/')}/{number}"
            try:
                response = await client.get(
                    url, params={"fields": "id"}, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as exc:
                found.append(Check("graph", False, f"{number}: {exc!r}"))
                continue
            if response.is_success:
                found.append(Check("graph", True, f"{number}: token accepted{_skew(response)}"))
            else:
                found.append(
                    Check(
                        "graph",
                        False,
                        f"{number}: HTTP {response.status_code} {response.text[:120]}",
                    )
                )
    if not found:
        found.append(Check("graph", True, "no numbers configured (BATON_NUMBERS_FILE): skipped"))
    return found


def _skew(response: httpx.Response) -> str:
    date = response.headers.get("date")
    if date is None:
        return ""
    skew = datetime.now(UTC).timestamp() - parsedate_to_datetime(date).timestamp()
    return f", clock {skew:+.0f} s against Meta's" if abs(skew) > MAX_SKEW_SECONDS else ""


def _host(url: str) -> str:
    """The URL without its credentials."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


async def run(settings: Settings, write: Callable[[str], object] = print) -> int:
    """Run every check, print one line each; 0 when all pass."""
    checks: list[Check] = [await broker(settings), *await store(settings)]
    checks.extend(await graph(settings))
    for check in checks:
        write(check.line())
    return 0 if all(check.ok for check in checks) else 1
