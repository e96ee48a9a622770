"""The sync driver: sends due sync requests, records their outcome, watches the 24-hour window.

Any number of history processes (and the onboarding CLI) may run it at once: a request is sent
only by the process whose claim moved it from `pending` to `sending`, and only once per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import structlog

from baton.store import Store
from baton.store.history_records import (
    NEEDS_PERSON,
    DeadlineState,
    ImportState,
    NumberHistory,
    SyncClaim,
    SyncOutcome,
    SyncStatus,
    SyncType,
)
from baton.types import PhoneNumberId
from services.history import metrics
from services.history.sync import RetryPolicy, outcome_of

log = structlog.get_logger()

# Numbers older than this are left out of the gauges: their window and import are long over.
GAUGE_HORIZON = timedelta(days=7)
_MAX_ROUNDS = 3  # contacts, then history, in one tick


class SyncRequester(Protocol):
    """The one Graph API call the driver makes (`GraphClient` is one)."""

    async def request_sync(
        self, phone_number_id: PhoneNumberId, sync_type: Literal["smb_app_state_sync", "history"]
    ) -> str: ...


@dataclass(frozen=True)
class DriverSettings:
    at_risk: timedelta
    lease_seconds: float
    poll_seconds: float
    retry: RetryPolicy


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _wire(sync_type: SyncType) -> Literal["smb_app_state_sync", "history"]:
    return "smb_app_state_sync" if sync_type is SyncType.CONTACTS else "history"


class SyncDriver:
    def __init__(
        self,
        store: Store,
        graph: SyncRequester,
        settings: DriverSettings,
        *,
        clock: Callable[[], datetime] = _utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._graph = graph
        self._settings = settings
        self._clock = clock
        self._jitter = jitter
        self._announced: dict[PhoneNumberId, DeadlineState] = {}

    async def tick(
        self, phone_number_id: PhoneNumberId | None = None
    ) -> list[tuple[SyncClaim, SyncOutcome]]:
        """Expire what is overdue, then send every due request (of one number, or all)."""
        for expiry in await self._store.expire_sync_requests(
            now=self._clock(), lease_seconds=self._settings.lease_seconds
        ):
            metrics.SYNC_ATTEMPTS.labels(
                sync_type=expiry.sync_type.value, outcome=expiry.status.value
            ).inc()
            log.error(
                "history.sync_expired",
                phone_number_id=expiry.phone_number_id,
                sync_type=expiry.sync_type.value,
                status=expiry.status.value,
            )
        done: list[tuple[SyncClaim, SyncOutcome]] = []
        for _ in range(_MAX_ROUNDS):
            claims = await self._store.claim_sync_requests(
                now=self._clock(), phone_number_id=phone_number_id
            )
            if not claims:
                break
            for claim in claims:
                done.append((claim, await self._attempt(claim)))
        return done

    async def _attempt(self, claim: SyncClaim) -> SyncOutcome:
        error: BaseException | None = None
        request_id: str | None = None
        try:
            request_id = await self._graph.request_sync(
                claim.phone_number_id, _wire(claim.sync_type)
            )
        except Exception as exc:
            error = exc
        now = self._clock()
        outcome = outcome_of(
            error,
            request_id,
            attempt=claim.attempt,
            now=now,
            deadline=claim.deadline,
            policy=self._settings.retry,
            jitter=self._jitter(),
        )
        recorded = await self._store.finish_sync_request(claim, outcome, now=now)
        label = "retry" if outcome.status is SyncStatus.PENDING else outcome.status.value
        metrics.SYNC_ATTEMPTS.labels(sync_type=claim.sync_type.value, outcome=label).inc()
        fields = {
            "phone_number_id": claim.phone_number_id,
            "sync_type": claim.sync_type.value,
            "attempt": claim.attempt,
            "status": outcome.status.value,
            "recorded": recorded,
        }
        if outcome.status is SyncStatus.ACCEPTED:
            log.info("history.sync_accepted", request_id=request_id, **fields)
        elif outcome.status is SyncStatus.PENDING:
            log.warning(
                "history.sync_retry",
                error=outcome.error,
                retry_at=outcome.next_attempt_at.isoformat() if outcome.next_attempt_at else None,
                **fields,
            )
        else:
            # Unclear, refused or out of time: a person has to look at it.
            log.error("history.sync_needs_person", error=outcome.error, **fields)
        return outcome

    async def refresh(self) -> list[NumberHistory]:
        """Recompute the gauges and log numbers entering at-risk or missed (once each)."""
        now = self._clock()
        numbers = [
            n
            for n in await self._store.numbers_history(onboarded_since=now - GAUGE_HORIZON)
            if n.onboarding is not None
            and n.onboarding.onboarded_at is not None
            and n.onboarding.onboarded_at <= now
        ]
        by_deadline = dict.fromkeys(DeadlineState, 0)
        by_import = dict.fromkeys(ImportState, 0)
        nearest = math.inf
        needs_person = 0
        lowest_percent = 100
        for number in numbers:
            state = number.deadline_state(now, self._settings.at_risk)
            assert state is not None  # onboarded numbers only
            by_deadline[state] += 1
            by_import[number.progress.state] += 1
            needs_person += sum(1 for s in number.syncs if s.status in NEEDS_PERSON)
            if state in (DeadlineState.ON_TRACK, DeadlineState.AT_RISK):
                nearest = min(nearest, number.seconds_left(now) or 0.0)
            if number.progress.state is ImportState.IMPORTING:
                lowest_percent = min(lowest_percent, number.progress.percent)
            self._announce(number, state, now)
        metrics.DEADLINE_SECONDS.set(nearest)
        for deadline_state, count in by_deadline.items():
            metrics.NUMBERS.labels(deadline=deadline_state.value).set(count)
        for import_state, count in by_import.items():
            metrics.IMPORTS.labels(state=import_state.value).set(count)
        metrics.NEEDS_PERSON.set(needs_person)
        metrics.IMPORT_PERCENT.set(lowest_percent)
        return numbers

    def _announce(self, number: NumberHistory, state: DeadlineState, now: datetime) -> None:
        previous = self._announced.get(number.phone_number_id)
        if previous is state:
            return
        self._announced[number.phone_number_id] = state
        fields = {
            "phone_number_id": number.phone_number_id,
            "seconds_left": round(number.seconds_left(now) or 0.0),
        }
        if state is DeadlineState.AT_RISK:
            log.error("history.deadline_at_risk", **fields)
        elif state is DeadlineState.MISSED:
            log.error("history.deadline_missed", **fields)
        elif previous is not None:
            log.info("history.deadline_state", state=state.value, **fields)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick and refresh every poll interval until `stop`; a failing tick is logged, not fatal."""
        while not stop.is_set():
            try:
                await self.tick()
                await self.refresh()
            except Exception:
                log.exception("history.driver_tick_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.poll_seconds)
