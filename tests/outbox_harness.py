"""Driving the outbox against the WhatsApp simulator: shared by the outbox tests and
`bench.outbox`. An outbox runs in-process (`running_outbox`) or as a real process
(`OutboxProcess`); send requests are published exactly as other services publish them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from baton.broker import Broker
from baton.messages import SendText
from baton.settings import NumbersConfig, NumberSettings, Settings
from baton.store import PostgresStore
from baton.types import Author, ConversationId
from baton.whatsapp.client import GraphClient
from devstack import REPO_ROOT
from services.outbox.handlers import Outbox
from services.outbox.runtime import OutboxRuntime, RuntimeConfig
from services.outbox.worker import WorkerConfig
from simulator import DEV_ACCESS_TOKEN, SentMessage


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most timestamps inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def number_id() -> str:
    """A fresh business number id (digits, like Meta's), so tests never share queues."""
    return "9" + str(uuid.uuid4().int)[:14]


def customer_id(i: int = 0) -> str:
    return "55" + str(uuid.uuid4().int)[:9] + f"{i:02d}"


async def conversations(
    store: PostgresStore, phone_number_id: str, customers: Sequence[str]
) -> dict[str, ConversationId]:
    found = {}
    for wa_id in customers:
        found[wa_id] = (await store.conversation(phone_number_id, wa_id)).id
    return found


def request(
    phone_number_id: str,
    wa_id: str,
    conversation_id: ConversationId,
    body: str,
    *,
    author: Author = Author.SYSTEM,
    key: str | None = None,
    epoch: int | None = None,
) -> SendText:
    return SendText(
        idempotency_key=key or uuid.uuid4().hex,
        conversation_id=conversation_id,
        phone_number_id=phone_number_id,
        to=wa_id,
        body=body,
        author=author,
        epoch=epoch,
    )


async def publish(broker: Broker, sends: Iterable[SendText]) -> None:
    """Publish in order, each confirmed, as the bot/router/console do."""
    for send in sends:
        await broker.publish_command(send)


def coexistence(*phone_number_ids: str, rate: float | None = None) -> NumbersConfig:
    return NumbersConfig(
        numbers={
            pnid: NumberSettings(phone_number_id=pnid, coexistence=True, rate_per_second=rate)
            for pnid in phone_number_ids
        }
    )


def numbers_toml(config: NumbersConfig) -> str:
    lines = []
    for pnid, number in config.numbers.items():
        lines.append(f'[numbers."{pnid}"]')
        lines.append(f"coexistence = {'true' if number.coexistence else 'false'}")
        if number.rate_per_second is not None:
            lines.append(f"rate_per_second = {number.rate_per_second}")
    return "\n".join(lines) + "\n"


def by_number(sent: Iterable[SentMessage], phone_number_id: str) -> list[SentMessage]:
    return [m for m in sent if m.phone_number_id == phone_number_id]


@contextlib.asynccontextmanager
async def running_outbox(
    amqp_url: str,
    pg_url: str,
    graph_url: str,
    numbers: NumbersConfig,
    *,
    replica_id: str | None = None,
    worker: WorkerConfig | None = None,
    standby_delay: float = 3.0,
    graph_timeout: float = 10.0,
) -> AsyncIterator[OutboxRuntime]:
    """One outbox replica in this event loop, stopped cleanly (released) on exit."""
    store = await PostgresStore.open(pg_url)
    broker = Broker(amqp_url, name="outbox-test")
    await broker.connect()
    graph = GraphClient(graph_url, DEV_ACCESS_TOKEN, timeout=graph_timeout)
    outbox = Outbox(store, broker, graph, numbers, abandon_after_seconds=graph_timeout + 5.0)
    runtime = OutboxRuntime(
        RuntimeConfig(
            amqp_url=amqp_url,
            replica_id=replica_id or f"test-{uuid.uuid4().hex[:8]}",
            standby_delay=standby_delay,
            worker=worker or WorkerConfig(),
        ),
        store=store,
        broker=broker,
        outbox=outbox,
        numbers=numbers,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        while not runtime.connected:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield runtime
    finally:
        stop.set()
        await task
        await graph.aclose()
        await broker.close()
        await store.close()


@dataclass
class OutboxProcess:
    """`python -m services.outbox` as a child process, with its own metrics port."""

    name: str
    env: Mapping[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def configure(
        cls,
        name: str,
        *,
        amqp_url: str,
        pg_url: str,
        graph_url: str,
        numbers_file: Path,
        port: int,
        log_dir: Path,
        extra: Mapping[str, str] | None = None,
    ) -> OutboxProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
        env.update(
            BATON_AMQP_URL=amqp_url,
            BATON_STORE_URL=pg_url,
            BATON_GRAPH_API_URL=graph_url,
            BATON_NUMBERS_FILE=str(numbers_file),
            BATON_METRICS_PORT=str(port),
            BATON_OUTBOX_REPLICA_ID=name,
            BATON_LOG_JSON="true",
            BATON_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra or {})
        return cls(name, env, port, log_dir / f"{name}.log")

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.outbox"],
                cwd=REPO_ROOT,
                env=dict(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def stop(self) -> int | None:
        """SIGTERM and wait (killing it if it hangs); the exit code, None if never started."""
        if self.process is None:
            return None
        self.signal(signal.SIGTERM)
        return self.wait()

    async def get(self, path: str) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                return await client.get(f"http://127.0.0.1:{self.port}{path}")
        except httpx.TransportError:
            return None

    async def ready(self) -> bool:
        response = await self.get("/readyz")
        return response is not None and response.status_code == 200

    async def states(self) -> dict[str, str]:
        """phone_number_id → idle / standby / active, as `/outbox/numbers` reports it."""
        response = await self.get("/outbox/numbers")
        if response is None or response.status_code != 200:
            return {}
        return {n["phone_number_id"]: n["state"] for n in response.json()["numbers"]}

    async def active_numbers(self) -> list[str]:
        return sorted(n for n, state in (await self.states()).items() if state == "active")

    async def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include `labels` (0 when absent)."""
        response = await self.get("/metrics")
        if response is None:
            return 0.0
        total = 0.0
        for line in response.text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            sample, _, raw = head.partition("{")
            if sample != name:
                continue
            if all(f'{k}="{v}"' in raw for k, v in labels.items()):
                total += float(value)
        return total


def settings_for(amqp_url: str, pg_url: str) -> Settings:
    return Settings(amqp_url=amqp_url, store_url=pg_url)
