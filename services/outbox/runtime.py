"""One outbox replica: its broker subscriptions, the numbers it knows, and its share of them.

Every replica subscribes to every known number's queue; the broker's single-active-consumer
makes exactly one of them the sender. Which one: the replica that `assign` names (bounded-load
rendezvous over the live replicas) subscribes as soon as it knows the number, the others only
`standby_delay` later, so the owner usually registers first. When the owner appears later (a
replica started or came back), the active non-owner releases the number after holding it at
least `hold` seconds, and the broker passes it on. A replica that dies hands its numbers to a
standby at once (the broker sees its connection close); that standby's first send waits one
second, so the per-number limit holds across the handover.

Numbers are known from the numbers file, from the store (every number the intake ever saw) and
from `outbox.number_announced` events the intake publishes when it meets a new number.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, ExchangeType
from pydantic import ValidationError

from baton.backoff import RECONNECT
from baton.broker import COMMANDS, EVENTS, Broker
from baton.broker.topology import LEGACY_OUTBOX_SENDS, OUTBOX_INTAKE, outbox_number_queue
from baton.messages import OutboxNumberAnnounced
from baton.settings import NumbersConfig, Settings
from baton.store import Store
from services.outbox import metrics
from services.outbox.assignment import assign
from services.outbox.handlers import Outbox
from services.outbox.intake import Intake
from services.outbox.retry import RetryPolicy
from services.outbox.settle import Settler
from services.outbox.worker import NumberWorker, WorkerConfig, WorkerState

log = structlog.get_logger()

_REFRESH_EVERY_TICKS = 10


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class RuntimeConfig:
    amqp_url: str
    replica_id: str
    heartbeat: float = 1.0
    standby_delay: float = 3.0
    worker: WorkerConfig = field(default_factory=WorkerConfig)

    @property
    def replica_ttl(self) -> float:
        return 3 * self.heartbeat

    @property
    def hold(self) -> float:
        """A number stays with the replica that became its sender at least this long."""
        return max(2.0, self.standby_delay)

    @classmethod
    def from_settings(cls, settings: Settings) -> RuntimeConfig:
        return cls(
            amqp_url=settings.amqp_url,
            replica_id=settings.outbox_replica_id or default_replica_id(),
            heartbeat=settings.outbox_heartbeat_seconds,
            standby_delay=settings.outbox_standby_delay_seconds,
            worker=WorkerConfig(
                prefetch=settings.outbox_number_prefetch,
                pair_interval=settings.outbox_pair_seconds_per_message,
                pair_burst=settings.outbox_pair_burst,
                window_margin=settings.outbox_window_margin_seconds,
                policy=RetryPolicy(
                    max_attempts=settings.outbox_max_attempts,
                    give_up_after=settings.outbox_give_up_after_seconds,
                ),
            ),
        )


class OutboxRuntime:
    def __init__(
        self,
        config: RuntimeConfig,
        *,
        store: Store,
        broker: Broker,
        outbox: Outbox,
        numbers: NumbersConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._store = store
        self._broker = broker
        self._outbox = outbox
        self._numbers = numbers
        self._clock = clock
        self._settler = Settler(broker)
        self._intake = Intake(broker, self._settler, self.ensure_number)
        self._workers: dict[str, NumberWorker] = {}
        self._known_since: dict[str, float] = {}
        self._declared: set[str] = set()
        self._replicas_since: dict[str, float] = {}
        self._live: list[str] = [config.replica_id]
        self._connection: AbstractConnection | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self._tick_now = asyncio.Event()
        self._rng = random.Random()
        metrics.NUMBERS.labels(state="active").set_function(lambda: self._count(WorkerState.ACTIVE))
        metrics.NUMBERS.labels(state="standby").set_function(
            lambda: self._count(WorkerState.STANDBY)
        )

    @property
    def replica_id(self) -> str:
        return self.config.replica_id

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    def not_ready_reasons(self) -> list[str]:
        """Why this replica cannot take send requests now (empty: it can)."""
        if not self.connected:
            return ["outbox senders not connected"]
        if not self._intake.consuming:
            return [f"not consuming {OUTBOX_INTAKE.name}"]
        return []

    def active_numbers(self) -> list[str]:
        return sorted(n for n, w in self._workers.items() if w.state is WorkerState.ACTIVE)

    def snapshot(self) -> dict[str, Any]:
        """The replica as `/outbox/numbers` shows it."""
        owners = assign(self._workers.keys(), self._live)
        return {
            "replica_id": self.replica_id,
            "live_replicas": self._live,
            "numbers": [
                {**w.snapshot(), "owner": owners.get(n)} for n, w in sorted(self._workers.items())
            ],
        }

    def _count(self, state: WorkerState) -> int:
        return sum(1 for w in self._workers.values() if w.state is state)

    # --- numbers ----------------------------------------------------------------------

    def _know(self, phone_number_id: str) -> None:
        if phone_number_id in self._workers:
            return
        self._workers[phone_number_id] = NumberWorker(
            phone_number_id,
            self._numbers.get(phone_number_id).send_rate,
            outbox=self._outbox,
            settler=self._settler,
            config=self.config.worker,
            clock=self._clock,
            rng=self._rng,
        )
        self._known_since[phone_number_id] = self._clock()
        self._tick_now.set()

    async def _declare(self, phone_number_id: str) -> None:
        if phone_number_id not in self._declared:
            await self._broker.declare_queue(outbox_number_queue(phone_number_id))
            self._declared.add(phone_number_id)

    async def ensure_number(self, phone_number_id: str) -> None:
        """The intake met this number: make sure its queue exists and every replica knows."""
        if phone_number_id in self._declared:
            return
        await self._declare(phone_number_id)
        await self._store.register_outbox_number(phone_number_id)
        self._know(phone_number_id)
        await self._broker.publish_event(OutboxNumberAnnounced(phone_number_id=phone_number_id))

    async def _refresh_numbers(self) -> None:
        for phone_number_id in await self._store.outbox_numbers():
            self._know(phone_number_id)

    async def _on_announcement(self, message: AbstractIncomingMessage) -> None:
        try:
            event = OutboxNumberAnnounced.model_validate_json(message.body)
        except ValidationError:
            log.warning("outbox.bad_announcement")
            return
        self._know(event.phone_number_id)

    # --- lifecycle --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop`, reconnecting to the broker as needed; then hand everything back."""
        log.info("outbox.replica_starting", replica_id=self.replica_id)
        await self._broker.declare_topology()
        for phone_number_id in self._numbers.numbers:
            await self._declare(phone_number_id)
            await self._store.register_outbox_number(phone_number_id)
            self._know(phone_number_id)
        await self._refresh_numbers()
        attempt = 0
        while not stop.is_set():
            try:
                connection = await aio_pika.connect(
                    self.config.amqp_url, client_properties={"connection_name": "outbox-senders"}
                )
            except Exception as exc:
                attempt += 1
                delay = RECONNECT.delay(attempt)
                log.warning("outbox.broker_unreachable", error=repr(exc), retry_in=delay)
                await _wait(stop, delay)
                continue
            attempt = 0
            try:
                await self._serve(connection, stop)
            finally:
                self._connection = None
                if not connection.is_closed:
                    await connection.close()
        log.info("outbox.replica_stopped", replica_id=self.replica_id)

    async def _serve(self, connection: AbstractConnection, stop: asyncio.Event) -> None:
        lost = asyncio.Event()
        connection.close_callbacks.add(lambda *_: lost.set())
        self._connection = connection
        await self._unbind_legacy_queue(connection)
        await self._listen_for_announcements(connection)
        await self._intake.start(connection)
        # A channel-level error (not the connection's) must also start over, or the intake
        # would stay unsubscribed on a live connection.
        self._intake.on_channel_lost(lost.set)
        ticks = 0
        while not stop.is_set() and not lost.is_set():
            ticks += 1
            try:
                if ticks % _REFRESH_EVERY_TICKS == 0:
                    await self._refresh_numbers()
                await self._tick(connection)
            except Exception:
                if lost.is_set():
                    break
                log.exception("outbox.tick_failed")
            self._tick_now.clear()
            await _wait_any((stop, lost, self._tick_now), self.config.heartbeat)
        if lost.is_set() and not stop.is_set():
            log.warning("outbox.broker_connection_lost")
            await self._intake.stop()
            return
        await self._shutdown()

    async def _shutdown(self) -> None:
        await self._intake.stop()
        await asyncio.gather(*self._releasing, return_exceptions=True)
        await asyncio.gather(*(w.release() for w in self._workers.values()))
        with contextlib.suppress(Exception):
            await self._store.outbox_leave(self.replica_id)

    async def _tick(self, connection: AbstractConnection) -> None:
        now = self._clock()
        try:
            live = list(
                await self._store.outbox_heartbeat(
                    self.replica_id, ttl_seconds=self.config.replica_ttl
                )
            )
        except Exception as exc:  # spreading is best effort; sending goes on without it
            log.warning("outbox.heartbeat_failed", error=repr(exc))
            live = self._live
        if self.replica_id not in live:
            live.append(self.replica_id)
        for replica in live:
            self._replicas_since.setdefault(replica, now)
        for gone in set(self._replicas_since) - set(live):
            del self._replicas_since[gone]
        self._live = sorted(live)
        owners = assign(self._workers.keys(), self._live)
        for phone_number_id, worker in self._workers.items():
            owner = owners.get(phone_number_id, self.replica_id)
            if worker.state is WorkerState.IDLE:
                if self._may_subscribe(phone_number_id, worker, owner, now):
                    await self._declare(phone_number_id)
                    await worker.subscribe(connection)
            elif (
                worker.state is WorkerState.ACTIVE
                and owner != self.replica_id
                and now - self._replicas_since.get(owner, now) >= self.config.standby_delay
                and worker.active_since is not None
                and now - worker.active_since >= self.config.hold
                and not any(t.get_name() == phone_number_id for t in self._releasing)
            ):
                log.info("outbox.rebalancing", phone_number_id=phone_number_id, owner=owner)
                task = asyncio.create_task(worker.release(), name=phone_number_id)
                self._releasing.add(task)
                task.add_done_callback(self._releasing.discard)

    def _may_subscribe(
        self, phone_number_id: str, worker: NumberWorker, owner: str, now: float
    ) -> bool:
        if any(t.get_name() == phone_number_id for t in self._releasing):
            return False
        if owner == self.replica_id:
            return True
        # Standby for a number another replica should send for: register after it.
        waited = now - max(self._known_since[phone_number_id], worker.released_at)
        return waited >= self.config.standby_delay

    async def _listen_for_announcements(self, connection: AbstractConnection) -> None:
        channel = await connection.channel(publisher_confirms=False)
        events = await channel.declare_exchange(EVENTS, ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(events, routing_key=OutboxNumberAnnounced.TYPE)
        await queue.consume(self._on_announcement, no_ack=True)

    async def _unbind_legacy_queue(self, connection: AbstractConnection) -> None:
        """The walking skeleton's `outbox.sends` got a copy of every send; stop that."""
        channel = await connection.channel(publisher_confirms=False)
        try:
            queue = await channel.declare_queue(LEGACY_OUTBOX_SENDS, passive=True)
        except Exception:
            return  # absent (the channel closed with 404): nothing to do
        try:
            await queue.unbind(COMMANDS, routing_key="outbox.#")
            log.warning(
                "outbox.legacy_queue_unbound",
                queue=LEGACY_OUTBOX_SENDS,
                messages_left=queue.declaration_result.message_count,
            )
        finally:
            if not channel.is_closed:
                await channel.close()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_any(events: tuple[asyncio.Event, ...], seconds: float) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
