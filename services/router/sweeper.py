"""Fires conversation timers and relays queued effects.

Two paths, one guarantee. A decision this process saved arms a local wake-up for each timer
due soon (a debounce flush fires within milliseconds of its deadline). A polling sweep claims
every due timer nobody holds — armed by another router, or by one that crashed — and
republishes effects whose holder let go. Claims are leases taken with `FOR UPDATE SKIP
LOCKED`, and firing goes through the state's compare-and-set, so a timer acts at most once.
The same loop recounts conversations by mode for `baton_conversations`, less often.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from datetime import datetime

import structlog

from baton import tracing
from baton.conversations import Conversations
from baton.handoff import ConversationState, Decision, Event, TimerKind, next_timers
from baton.store import Store
from baton.types import ConversationId, Mode
from services.router import metrics

log = structlog.get_logger()

# Local wake-ups only for timers due this soon; later ones are the sweep's (they may move).
LOCAL_HORIZON_SECONDS = 120.0
# A wake-up a hair after the deadline, so the claim's `due_at <= now` holds.
_LATE_BY_SECONDS = 0.002


class Sweeper:
    """A `DecisionObserver` (local wake-ups) plus the polling sweep (`run`)."""

    def __init__(
        self,
        conversations: Conversations,
        *,
        interval: float,
        batch: int = 100,
        store: Store | None = None,  # recounts conversations by mode when given
        stats_interval: float = 15.0,
    ) -> None:
        self._conversations = conversations
        self._interval = interval
        self._batch = batch
        self._store = store
        self._stats_interval = stats_interval
        self._wakeups: dict[tuple[ConversationId, TimerKind], asyncio.TimerHandle] = {}
        self._firing: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Wake-ups run in the process's own log context, not the delivery's that armed them.
        self._context = contextvars.copy_context()

    def observe(
        self, before: ConversationState, event: Event, decision: Decision, now: datetime
    ) -> None:
        if not decision.changed:
            return
        state = decision.state
        now = self._conversations.now()  # the save took a while since the decision's `now`
        armed = {
            timer.kind: (timer.due_at - now).total_seconds()
            for timer in next_timers(state, self._conversations.policy(state.phone_number_id))
        }
        for kind in TimerKind:
            delay = armed.get(kind)
            key = (state.conversation_id, kind)
            if delay is None or delay > LOCAL_HORIZON_SECONDS:
                old = self._wakeups.pop(key, None)
                if old is not None:
                    old.cancel()
            else:
                self._wake(key, delay)

    def _wake(self, key: tuple[ConversationId, TimerKind], delay: float) -> None:
        if self._stopping:
            return
        old = self._wakeups.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._wakeups[key] = loop.call_later(
            max(0.0, delay) + _LATE_BY_SECONDS,
            self._fire,
            key,
            # The arming delivery's trace goes along, so the bot request continues it.
            context=tracing.carry(self._context.copy()),
        )

    def _fire(self, key: tuple[ConversationId, TimerKind]) -> None:
        self._wakeups.pop(key, None)
        if self._stopping:
            return
        task = asyncio.create_task(self._fire_one(*key))
        self._firing.add(task)
        task.add_done_callback(self._firing.discard)

    async def _fire_one(self, conversation_id: ConversationId, kind: TimerKind) -> None:
        try:
            with tracing.span(f"timer {kind.value}", conversation_id=str(conversation_id)):
                await self._conversations.fire_timer(conversation_id, kind)
        except Exception:
            # The timer stays stored: the sweep fires it once the lease (if any) runs out.
            log.exception("router.timer_failed", conversation_id=conversation_id, kind=kind.value)

    async def sweep(self) -> None:
        """One pass: every due timer nobody holds, then every effect nobody relays."""
        while await self._conversations.fire_due_timers(limit=self._batch) >= self._batch:
            pass
        while (relayed := await self._conversations.relay_pending(limit=self._batch)) > 0:
            metrics.EFFECTS_RELAYED.inc(relayed)
            if relayed < self._batch:
                break

    async def refresh_stats(self) -> None:
        """Set `baton_conversations{mode}` from one store count (a no-op without a store)."""
        if self._store is None:
            return
        counts = await self._store.conversations_by_mode()
        for mode in Mode:
            metrics.CONVERSATIONS.labels(mode=mode.value).set(counts.get(mode, 0))

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every `interval`, recount every `stats_interval`; on `stop`, finish timers."""
        loop = asyncio.get_running_loop()
        stats_due = loop.time()
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("router.sweep_failed")
            if loop.time() >= stats_due:
                # Timed from the start of the recount, so a slow count does not shift the next.
                stats_due = loop.time() + self._stats_interval
                try:
                    await self.refresh_stats()
                except Exception:
                    # The gauge keeps its last values; the next recount tries again.
                    log.exception("router.stats_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
        self._stopping = True
        for handle in self._wakeups.values():
            handle.cancel()
        self._wakeups.clear()
        if self._firing:
            await asyncio.gather(*self._firing, return_exceptions=True)
