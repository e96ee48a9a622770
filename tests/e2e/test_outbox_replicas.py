"""Two outbox processes against one simulator: they split the numbers, together stay under each
number's rate, and a killed or stopped replica hands its numbers over within seconds, with no
loss and no duplicate (beyond the documented crash window, checked against the store).

The load is above the rate (24/s offered for 18/s numbers), so every number has a backlog when
its sender is killed or stopped: the window check holds while both the dying and the new sender
would send as fast as their window lets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from baton.broker import Broker
from baton.messages import SendText
from baton.store import open_store
from simulator import Outcome, SentMessage, Simulator
from tests.conftest import PG_ADMIN_URL, unique
from tests.e2e.conftest import free_port
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
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

RATE = 18  # the default for Coexistence numbers (Meta's cap: 20)
LOAD_PER_NUMBER = 24  # msg/s published per number: a third above the rate, a growing backlog
CUSTOMERS = 32  # per number: each gets ~12 sends, far under the pair limit's burst of 30


@pytest.fixture(scope="module")
def own_pg_url() -> Iterator[str]:
    """A database of its own: the replicas spread exactly these tests' numbers."""
    name = unique("baton_outbox").replace("-", "_")
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"

    async def create() -> None:
        store = await open_store(url, migrate=True)
        await store.close()

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield url
    asyncio.run(drop())


@dataclass
class Stream:
    """Publishes a steady flow of sends over every number and customer, in the background."""

    broker: Broker
    sends: dict[str, list[SendText]]  # phone_number_id → its sends, in order
    published: list[SendText] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        rounds = zip(*self.sends.values(), strict=True)
        for i, batch in enumerate(rounds):
            await asyncio.sleep(max(0.0, began + i / LOAD_PER_NUMBER - loop.time()))
            for send in batch:
                await self.broker.publish_command(send)
                self.published.append(send)

    async def finish(self) -> None:
        assert self._task is not None
        await self._task


@dataclass
class Replicas:
    sim: Simulator
    pg_url: str
    numbers: list[str]
    a: OutboxProcess
    b: OutboxProcess

    async def ready(self) -> None:
        for replica in (self.a, self.b):
            replica.start()
        await eventually(
            lambda: _both(self.a.ready(), self.b.ready()), timeout=30, what="replicas ready"
        )

    async def stream(self, broker: Broker, seconds: float) -> Stream:
        per_number = int(seconds * LOAD_PER_NUMBER)
        store = await open_store(self.pg_url)
        try:
            sends: dict[str, list[SendText]] = {}
            for pnid in self.numbers:
                customers = [customer_id(i) for i in range(CUSTOMERS)]
                ids = await conversations(store, pnid, customers)
                sends[pnid] = [
                    request(
                        pnid,
                        customers[i % CUSTOMERS],
                        ids[customers[i % CUSTOMERS]],
                        f"{pnid} #{i}",
                    )
                    for i in range(per_number)
                ]
        finally:
            await store.close()
        stream = Stream(broker, sends)
        stream.start()
        return stream

    def accepted(self) -> list[SentMessage]:
        return [m for m in self.sim.accepted() if m.phone_number_id in self.numbers]


async def _both(first: object, second: object) -> bool:
    results = await asyncio.gather(first, second)  # type: ignore[call-overload]
    return all(results)


@pytest.fixture
async def replicas(
    amqp_url: str, own_pg_url: str, sim: Simulator, tmp_path: Path
) -> AsyncIterator[Replicas]:
    numbers = [number_id() for _ in range(4)]
    for pnid in numbers:
        sim.register(pnid, coexistence=True)
    numbers_file = tmp_path / "numbers.toml"
    numbers_file.write_text(numbers_toml(coexistence(*numbers)))
    made = {
        name: OutboxProcess.configure(
            f"outbox-{name}-{uuid.uuid4().hex[:6]}",
            amqp_url=amqp_url,
            pg_url=own_pg_url,
            graph_url=sim.base_url,
            numbers_file=numbers_file,
            port=free_port(),
            log_dir=tmp_path,
            # The exact (answer-anchored) window: the check counts at the simulator, where a
            # loaded machine's loopback can exceed the default margin's 30 ms of jitter.
            extra={"BATON_OUTBOX_WINDOW_MARGIN_SECONDS": "inf"},
        )
        for name in ("a", "b")
    }
    group = Replicas(sim, own_pg_url, numbers, made["a"], made["b"])
    try:
        yield group
    finally:
        for replica in (group.a, group.b):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(replica.stop)


async def _spread(replicas: Replicas) -> dict[str, list[str]] | None:
    """Each replica the sender of some numbers, standby for the others, and sending."""
    a, b = await asyncio.gather(replicas.a.states(), replicas.b.states())
    numbers = set(replicas.numbers)
    a_active = {n for n, state in a.items() if state == "active"}
    b_active = {n for n, state in b.items() if state == "active"}
    subscribed = all(
        {n for n, state in states.items() if state in ("active", "standby")} >= numbers
        for states in (a, b)
    )
    if not (a_active and b_active and subscribed and a_active | b_active == numbers):
        return None
    sent = await asyncio.gather(
        *(r.metric("baton_outbox_sends_total", outcome="sent") for r in (replicas.a, replicas.b))
    )
    if min(sent) < 10:
        return None
    return {"a": sorted(a_active), "b": sorted(b_active)}


def _check_limit_and_order(replicas: Replicas) -> None:
    for pnid in replicas.numbers:
        calls = replicas.sim.messages(pnid)
        assert max_in_window([m.at for m in calls]) <= RATE, pnid
        per_customer: dict[str, list[int]] = defaultdict(list)
        for message in replicas.sim.accepted(pnid):
            assert message.body is not None
            per_customer[message.wa_id].append(int(message.body.rsplit("#", 1)[1]))
        for sequence in per_customer.values():
            assert sequence == sorted(sequence), "per-conversation order"
    assert replicas.sim.stats().throughput_errors == 0


def _check_saturated(replicas: Replicas, stream: Stream) -> None:
    """When the stream ends, every number is at least a second of sends behind: the load really
    was above the rate (the publisher kept up), so the window was full across the handover."""
    for pnid in replicas.numbers:
        published = sum(1 for s in stream.published if s.phone_number_id == pnid)
        backlog = published - len(replicas.sim.accepted(pnid))
        assert backlog >= RATE, f"{pnid}: only {backlog} behind, the load was not above the rate"


async def _all_delivered(replicas: Replicas, stream: Stream) -> None:
    expected = {s.body for s in stream.published}

    async def done() -> bool:
        return expected <= {m.body for m in replicas.accepted()}

    await eventually(done, timeout=60, what="every published send delivered")


async def test_two_replicas_split_the_numbers_and_a_killed_one_hands_them_over(
    replicas: Replicas, broker: Broker
) -> None:
    await broker.declare_topology()
    await replicas.ready()
    stream = await replicas.stream(broker, seconds=12)
    spread = await eventually(lambda: _spread(replicas), timeout=20, what="both replicas active")

    victim = spread["a"]
    killed_at = time.monotonic()
    replicas.a.signal(signal.SIGKILL)
    # Waiting for a process blocks: off the event loop, which also runs the simulator.
    await asyncio.to_thread(replicas.a.wait)

    async def took_over() -> bool:
        return set(await replicas.b.active_numbers()) == set(replicas.numbers)

    await eventually(took_over, timeout=10, what="the survivor sending for every number")
    await stream.finish()
    _check_saturated(replicas, stream)
    await _all_delivered(replicas, stream)

    _check_limit_and_order(replicas)
    for pnid in victim:
        after = [m.at for m in replicas.sim.messages(pnid) if m.at > killed_at + 0.05]
        assert after and after[0] - killed_at < 5.0, f"{pnid} handed over within seconds"
    counts: dict[str | None, int] = defaultdict(int)
    for message in replicas.accepted():
        counts[message.body] += 1
    duplicates = {body for body, n in counts.items() if n > 1}
    # The one window the design admits: a send Meta accepted just before the kill, before its
    # outcome was recorded. Each such send shows its second attempt in the store.
    if duplicates:
        keys = [s.idempotency_key for s in stream.published if s.body in duplicates]
        conn = await asyncpg.connect(replicas.pg_url)
        try:
            attempts = await conn.fetch(
                "SELECT send_attempts FROM messages WHERE idempotency_key = ANY($1)", keys
            )
        finally:
            await conn.close()
        assert all(r["send_attempts"] >= 2 for r in attempts)
        assert len(duplicates) <= len(victim), duplicates
    assert await asyncio.to_thread(replicas.b.stop) == 0


async def test_a_replica_stopping_hands_over_without_loss_or_duplicate(
    replicas: Replicas, broker: Broker
) -> None:
    await broker.declare_topology()
    await replicas.ready()
    stream = await replicas.stream(broker, seconds=10)
    spread = await eventually(lambda: _spread(replicas), timeout=20, what="both replicas active")

    stopped_at = time.monotonic()
    # SIGTERM: drains its calls in flight, hands the rest back.
    assert await asyncio.to_thread(replicas.a.stop) == 0
    await stream.finish()
    _check_saturated(replicas, stream)
    await _all_delivered(replicas, stream)

    _check_limit_and_order(replicas)
    bodies = [m.body for m in replicas.accepted()]
    assert len(bodies) == len(set(bodies)) == len(stream.published)
    rejected = [m for m in replicas.sim.messages() if m.outcome is Outcome.REJECTED]
    assert not [m for m in rejected if m.phone_number_id in replicas.numbers]
    for pnid in spread["a"]:
        after = [m.at for m in replicas.sim.messages(pnid) if m.at > stopped_at]
        assert after and after[0] - stopped_at < 5.0
    assert await asyncio.to_thread(replicas.b.stop) == 0
