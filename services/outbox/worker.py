"""The sender of one business number in one replica: its queue subscription, lanes and window.

States: IDLE (not subscribed) → STANDBY (subscribed; the broker's single-active-consumer keeps
another replica active) → ACTIVE (deliveries arrive: this replica is the number's only sender)
→ back to IDLE on release (rebalance, stop) or when the channel is lost.

Becoming active starts with a full window: the previous sender's last second is unknown here,
so the first call waits one second (plus a margin). Releasing lets calls in flight finish and
settle first, then closes the channel, which hands every unsent delivery back to the head of
the queue in order; only then can the broker activate another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pydantic import ValidationError

from baton import tracing
from baton.broker.topology import outbox_number_queue
from baton.messages import SendText
from baton.whatsapp.errors import ErrorClass
from services.outbox import metrics
from services.outbox.handlers import (
    Attempt,
    Busy,
    Failed,
    Outbox,
    Ready,
    Retry,
    Sent,
    Skipped,
)
from services.outbox.lanes import Lanes, Pending
from services.outbox.limiter import PairBucket, SendWindow, WindowShape
from services.outbox.retry import Failures, GiveUp, RetryPolicy, Scope, plan_retry
from services.outbox.settle import Settler

log = structlog.get_logger()

Item = Pending[AbstractIncomingMessage]

# Sends fenced and claimed ahead of their slot: enough that a slot never waits for the claim,
# few enough that little is held claimed (a bot send's fence is read again at the call).
_STAGED_AHEAD = 4
_LEAD_INTERVALS = 3.0
DEFAULT_WINDOW_MARGIN = 0.03  # bench/RESULTS.md, "Outbox at real latency (issue 16)"
_PRUNE_SECONDS = 60.0  # how often refilled pair buckets of idle customers are forgotten  # start staging this many send intervals before a slot frees


def _outcome(result: Attempt) -> str | None:
    """A finished send's outcome as `baton_outbox_sends_total` counts it."""
    match result:
        case Sent():
            return "sent"
        case Failed():
            return "failed"
        case Skipped(outcome=outcome):
            return outcome  # fenced, duplicate or offboarded
    return None  # not finished: tried again


class WorkerState(StrEnum):
    IDLE = "idle"
    STANDBY = "standby"
    ACTIVE = "active"


@dataclass(frozen=True)
class WorkerConfig:
    prefetch: int = 200
    pair_interval: float = 6.0
    pair_burst: int = 30
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    # Added to the one-second wait of a new active sender: a call of the previous sender that
    # was still on the wire when it died reaches Meta within this.
    activation_margin: float = 0.1
    # A slot is reused a second after its call's start + this, or after Meta's answer if that
    # came first (limiter.py): exact while the uplink jitter stays within it. inf: always the
    # answer (exact whatever the uplink, but a number then sustains limit / (1 + latency)).
    window_margin: float = DEFAULT_WINDOW_MARGIN


class NumberWorker:
    def __init__(
        self,
        phone_number_id: str,
        rate: float,
        *,
        outbox: Outbox,
        settler: Settler,
        config: WorkerConfig,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.queue_name = outbox_number_queue(phone_number_id).name
        self._outbox = outbox
        self._settler = settler
        self._config = config
        self._clock = clock
        self._rng = rng or random.Random()
        self.window = SendWindow(WindowShape.for_rate(rate), margin=config.window_margin)
        self._lanes: Lanes[AbstractIncomingMessage] = Lanes(self._new_bucket)
        self._state = WorkerState.IDLE
        self._generation = 0
        self._channel: AbstractChannel | None = None
        self._loop: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._closing = False
        self._staged = 0  # sends being fenced and claimed, or waiting for their slot
        self._freed = asyncio.Event()
        self._lead = _LEAD_INTERVALS * self.window.shape.seconds / self.window.shape.limit
        self._throughput_level = 0
        self._paused_at = -math.inf
        self._pruned_at = -math.inf
        self.active_since: float | None = None
        self.released_at = -math.inf

    @property
    def state(self) -> WorkerState:
        return self._state

    @property
    def held(self) -> int:
        return len(self._lanes)

    def _new_bucket(self, now: float) -> PairBucket:
        return PairBucket.full(
            interval=self._config.pair_interval, burst=self._config.pair_burst, now=now
        )

    # --- subscription -----------------------------------------------------------------

    async def subscribe(self, connection: AbstractConnection) -> None:
        """Register as a consumer of the number's queue (standby until the broker picks us)."""
        if self._state is not WorkerState.IDLE:
            return
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self._config.prefetch)
        queue = await channel.get_queue(self.queue_name, ensure=False)
        self._generation += 1
        generation = self._generation
        self._channel = channel
        self._closing = False
        self._state = WorkerState.STANDBY
        channel.close_callbacks.add(lambda *_: self._on_channel_closed(generation))
        self._loop = asyncio.create_task(self._run(generation), name=f"outbox:{self.queue_name}")
        await queue.consume(self._on_message)
        log.info("outbox.subscribed", phone_number_id=self.phone_number_id)

    async def release(self) -> None:
        """Stop sending, let calls in flight finish and settle, hand the rest back in order."""
        if self._state is WorkerState.IDLE:
            return
        was_active = self._state is WorkerState.ACTIVE
        self._closing = True
        self._wake.set()
        self._pulse()
        if self._loop is not None:
            await self._loop
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        channel = self._channel
        self._reset()
        if channel is not None and not channel.is_closed:
            # One step for the broker: unsent deliveries go back to the head, in their order,
            # and the next consumer is activated only after that.
            await channel.close()
        self.released_at = self._clock()
        if was_active:
            metrics.HANDOVERS.labels(event="released").inc()
        log.info("outbox.released", phone_number_id=self.phone_number_id, active=was_active)

    def _on_channel_closed(self, generation: int) -> None:
        if generation != self._generation or self._closing:
            return
        # Lost, not released: the broker already gave our unsettled deliveries to another
        # replica. Calls in flight finish (their acks fail; idempotency absorbs the redelivery).
        log.warning("outbox.subscription_lost", phone_number_id=self.phone_number_id)
        self._closing = True
        self._wake.set()
        self._pulse()
        self._reset()
        self.released_at = self._clock()

    def _reset(self) -> None:
        metrics.forget_number(self.phone_number_id, self)
        self._generation += 1
        self._lanes.clear()
        self._channel = None
        self._loop = None
        self._state = WorkerState.IDLE
        self.active_since = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # No await before the item is in its lane: deliveries are handled in arrival order.
        if self._closing:
            return  # unsettled: handed back when the channel closes
        now = self._clock()
        if self._state is WorkerState.STANDBY:
            self._activate(now)
        try:
            if message.type != SendText.TYPE:
                raise ValueError(f"outbox does not handle {message.type!r}")
            send = SendText.model_validate_json(message.body)
        except (ValidationError, ValueError) as exc:
            await self._settler.dead_letter(
                message, queue=self.queue_name, reason=f"{type(exc).__name__}: {exc}", attempts=0
            )
            return
        self._lanes.add(Pending(message.delivery_tag or 0, send, message, now))
        self._wake.set()

    def _activate(self, now: float) -> None:
        self._state = WorkerState.ACTIVE
        self.active_since = now
        self.window.fill(now + self._config.activation_margin)
        metrics.report_number(
            self.phone_number_id,
            self,
            held=lambda: self.held,
            free=lambda: self.window.available(self._clock()),
        )
        metrics.HANDOVERS.labels(event="activated").inc()
        log.info("outbox.activated", phone_number_id=self.phone_number_id)

    # --- the send loop ----------------------------------------------------------------

    async def _run(self, generation: int) -> None:
        while not self._closing and generation == self._generation:
            now = self._clock()
            item, wake_at = self._lanes.next_ready(now)
            if item is not None:
                if self._staged >= _STAGED_AHEAD:
                    wake_at = math.inf  # woken when a staged send takes its slot
                else:
                    # Fence and claim shortly before a slot frees, not as soon as one is free:
                    # the slot then waits on no claim (only a bot send's second fence read).
                    stage_at = self.window.free_at() - self._lead
                    if stage_at <= now:
                        self._start(item, now, generation)
                        continue
                    wake_at = stage_at
            await self._sleep(wake_at - now)

    def _start(self, item: Item, now: float, generation: int) -> None:
        if item.first_attempt_at is None:
            metrics.WAIT_SECONDS.observe(now - item.arrived_at)
        self._lanes.start(item, now)
        self._staged += 1
        headers, message_id = item.handle.headers, item.handle.message_id
        task = asyncio.create_task(
            tracing.consumed(
                self.queue_name, headers, self._process(item, generation), message_id=message_id
            )
        )
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), None if math.isinf(seconds) else seconds)

    def _pulse(self) -> None:
        """Wake staged sends waiting for a slot (a slot came back, or we are letting go)."""
        self._freed.set()
        self._freed = asyncio.Event()

    async def _take_slot(self, generation: int) -> int | None:
        """Wait for a free send slot; None if the number is being let go meanwhile."""
        while not self._closing and generation == self._generation:
            now = self._clock()
            free_at = self.window.free_at()
            if free_at <= now:
                return self.window.reserve(now)
            freed = self._freed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(freed.wait(), None if math.isinf(free_at) else free_at - now)
        return None

    async def _process(self, item: Item, generation: int) -> None:
        # Its own task (a copy of the context): every line of this attempt carries its ids.
        with structlog.contextvars.bound_contextvars(
            conversation_id=item.send.conversation_id,
            message_id=item.handle.message_id,
            idempotency_key=item.send.idempotency_key,
            phone_number_id=self.phone_number_id,
        ):
            await self._attempt(item, generation)

    async def _attempt(self, item: Item, generation: int) -> None:
        staged = True
        try:
            try:
                result: Attempt
                prepared = await self._outbox.prepare(item.send)
                if isinstance(prepared, Ready):
                    slot = await self._take_slot(generation)
                    self._staged -= 1
                    staged = False
                    self._wake.set()
                    if slot is None:
                        await self._outbox.abandon(item.send)
                        return  # released or lost: the broker has the delivery back
                    self._lanes.called(item, self._clock())
                    result = await self._call(item, slot)
                else:
                    result = prepared
            except Exception as exc:  # a bug must not stop the number: retried, then parked
                log.exception("outbox.attempt_crashed")
                result = Retry(ErrorClass.TRANSIENT, None, repr(exc), None)
            if staged:
                self._staged -= 1
                staged = False
            # Counted even if the number was lost meanwhile: the send happened all the same.
            if (outcome := _outcome(result)) is not None:
                self._count(item, outcome)
            if generation == self._generation:
                await self._conclude(item, result, self._clock())
        finally:
            if staged:
                self._staged -= 1
            self._wake.set()

    async def _call(self, item: Item, slot: int) -> Sent | Failed | Retry | Skipped:
        timing: tuple[float, float] | None = None
        called = True
        try:
            result = await self._outbox.call(item.send)
            if isinstance(result, Skipped):
                called = False  # fenced at the slot: no request left
            elif result.call is not None:
                # Meta counted the call when it arrived: by its answer, and (the window's
                # assumption) within the margin after its start.
                timing = (result.call.started, result.call.ended)
            return result
        finally:
            if not called:
                self.window.cancel(slot)
            elif timing is not None:
                self.window.settle_call(slot, *timing)
            else:
                # An unexpected error may have come after the request left: anchored now.
                self.window.settle(slot, self._clock())
            self._pulse()

    async def _conclude(self, item: Item, result: Attempt, now: float) -> None:
        match result:
            case Sent() | Failed() | Skipped():
                if isinstance(result, Sent):
                    self._throughput_level = 0
                self._lanes.finish(item, now, done=True)
                duplicate = isinstance(result, Skipped) and result.outcome == "duplicate"
                await self._settler.ack(
                    item.handle,
                    queue=self.queue_name,
                    outcome="duplicate" if duplicate else "processed",
                )
                if now - self._pruned_at >= _PRUNE_SECONDS:
                    # A customer's bucket is dropped when it finishes full; one sent to lately
                    # and never again would otherwise stay for the life of the process.
                    self._pruned_at = now
                    self._lanes.prune(now)
            case Busy(wait=wait):
                self._lanes.block(item, now + wait)
                self._lanes.finish(item, now, done=False)
            case Retry():
                await self._retry(item, result, now)

    async def _retry(self, item: Item, result: Retry, now: float) -> None:
        escalate = False
        if result.error_class is ErrorClass.THROUGHPUT:
            # Calls already in flight when the number paused fail too: one pause, not many.
            if result.call is None or result.call.started >= self._paused_at:
                self._throughput_level += 1
                escalate = True
        else:
            item.errors += 1
            if result.error_class is ErrorClass.PAIR_RATE:
                item.pair_errors += 1
                self._lanes.pair_limited(item, now)
        started = item.first_attempt_at if item.first_attempt_at is not None else now
        plan = plan_retry(
            result.error_class,
            Failures(
                errors=item.errors,
                pair_errors=item.pair_errors,
                throughput_level=self._throughput_level,
                elapsed=now - started,
            ),
            self._config.policy,
            self._rng,
        )
        if isinstance(plan, GiveUp):
            reason = f"{plan.reason}: {result.reason}"
            self._lanes.finish(item, now, done=True)
            await self._outbox.give_up(item.send, code=result.code, reason=reason)
            self._count(item, "dead_lettered")
            await self._settler.dead_letter(
                item.handle, queue=self.queue_name, reason=reason, attempts=item.errors
            )
            return
        metrics.RETRIES.labels(error_class=result.error_class, scope=plan.scope).inc()
        log.info(
            "outbox.retry",
            error_class=result.error_class,
            code=result.code,
            delay=round(plan.delay, 3),
            scope=plan.scope,
        )
        if plan.scope is Scope.NUMBER:
            if escalate:
                self._paused_at = now
                self.window.pause_until(now + plan.delay)
        else:
            self._lanes.block(item, now + plan.delay)
        self._lanes.finish(item, now, done=False)

    # --- observation ------------------------------------------------------------------

    def _count(self, item: Item, outcome: str) -> None:
        metrics.SENDS.labels(
            author=item.send.author, phone_number_id=self.phone_number_id, outcome=outcome
        ).inc()

    def snapshot(self) -> dict[str, Any]:
        """This number as `/outbox/numbers` shows it."""
        now = self._clock()
        return {
            "phone_number_id": self.phone_number_id,
            "state": self._state.value,
            "limit": self.window.shape.limit,
            "window_seconds": self.window.shape.seconds,
            "window_margin_seconds": self.window.margin
            if math.isfinite(self.window.margin)
            else None,
            "free_slots": self.window.available(now) if self._state is WorkerState.ACTIVE else 0,
            "in_flight": self.window.in_flight,
            "held": len(self._lanes),
            "active_for_seconds": None
            if self.active_since is None
            else round(now - self.active_since, 3),
        }
