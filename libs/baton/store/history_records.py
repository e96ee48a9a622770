"""Plain data of the history area crossing the store port: onboarding, sync requests, progress.

The derived views (`deadline_state`, `needs_person`) are pure functions of the data and a clock,
so the history service, the API and the metrics classify a number the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, computed_field

from baton.types import PhoneNumberId, WaId, Wamid


class SyncType(StrEnum):
    """The two one-shot syncs of a Coexistence onboarding, in the order they are requested."""

    CONTACTS = "smb_app_state_sync"
    HISTORY = "history"


class SyncStatus(StrEnum):
    PENDING = "pending"  # not sent yet, or sent and proven not accepted: due at next_attempt_at
    SENDING = "sending"  # claimed by a process that is calling Meta right now
    ACCEPTED = "accepted"  # Meta answered with a request_id (or history arrived)
    UNCLEAR = "unclear"  # Meta may or may not have it: a person decides, never re-sent blindly
    FAILED = "failed"  # Meta refused it (auth, bad parameter, already requested): a person fixes
    MISSED = "missed"  # the 24-hour window closed before it was accepted


NEEDS_PERSON = frozenset({SyncStatus.UNCLEAR, SyncStatus.FAILED})


class Resolution(StrEnum):
    """What a person decided about an unclear or failed sync request."""

    ACCEPTED = "accepted"  # Meta has it (e.g. checked with Meta, or the data arrived)
    RETRY = "retry"  # Meta certainly does not have it: send it again


class DeadlineState(StrEnum):
    """Where a number stands against its 24-hour sync window."""

    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    MISSED = "missed"
    MET = "met"  # the history sync was accepted in time
    DISABLED = "disabled"  # offboarded


class ImportState(StrEnum):
    WAITING = "waiting"  # no history webhook yet
    IMPORTING = "importing"
    COMPLETED = "completed"
    DECLINED = "declined"  # the business turned history sharing off: a normal end state


class Onboarding(BaseModel):
    model_config = ConfigDict(frozen=True)

    phone_number_id: PhoneNumberId
    display_phone_number: str | None
    waba_id: str | None
    generation: int
    onboarded_at: datetime | None  # None: seen in webhooks, never onboarded through Baton
    sync_deadline_at: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


class SyncRequestState(BaseModel):
    model_config = ConfigDict(frozen=True)

    sync_type: SyncType
    status: SyncStatus
    attempts: int
    next_attempt_at: datetime
    sending_since: datetime | None
    request_id: str | None
    error_code: int | None
    last_error: str | None
    resolved_by: str | None
    updated_at: datetime


class ImportProgress(BaseModel):
    """How far the backlog import of one number is."""

    model_config = ConfigDict(frozen=True)

    state: ImportState = ImportState.WAITING
    phase: int | None = None  # of the most advanced chunk imported
    chunk: int | None = None  # its chunk_order
    percent: int = 0  # Meta's own progress figure of that chunk (100 = sync complete)
    chunks_imported: int = 0
    chunks_in_flight: int = 0
    chunks_missing: int = 0  # gaps in chunk_order seen so far
    messages_imported: int = 0  # rows newly stored (duplicates not counted)
    messages_rejected: int = 0  # malformed messages kept aside
    declined: bool = False
    last_chunk_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def completed(self) -> bool:
        return self.state in (ImportState.COMPLETED, ImportState.DECLINED)


class NumberHistory(BaseModel):
    """Everything the history area knows about one number."""

    model_config = ConfigDict(frozen=True)

    phone_number_id: PhoneNumberId
    onboarding: Onboarding | None
    syncs: tuple[SyncRequestState, ...] = ()
    progress: ImportProgress = ImportProgress()

    def sync(self, sync_type: SyncType) -> SyncRequestState | None:
        return next((s for s in self.syncs if s.sync_type is sync_type), None)

    @property
    def needs_person(self) -> bool:
        """An unclear or refused sync request waits for a human decision."""
        return any(s.status in NEEDS_PERSON for s in self.syncs)

    def seconds_left(self, now: datetime) -> float | None:
        if self.onboarding is None or self.onboarding.sync_deadline_at is None:
            return None
        return (self.onboarding.sync_deadline_at - now).total_seconds()

    def deadline_state(self, now: datetime, at_risk: timedelta) -> DeadlineState | None:
        """None for a number whose history arrives without a Baton onboarding."""
        if self.onboarding is None:
            return None
        if self.onboarding.disabled:
            return DeadlineState.DISABLED
        if self.onboarding.sync_deadline_at is None:
            return None
        history = self.sync(SyncType.HISTORY)
        if history is not None and history.status is SyncStatus.ACCEPTED:
            return DeadlineState.MET
        if self.progress.state is not ImportState.WAITING:
            return DeadlineState.MET  # history is arriving: Meta has the request
        left = self.onboarding.sync_deadline_at - now
        if left <= timedelta(0):
            return DeadlineState.MISSED
        if left <= at_risk:
            return DeadlineState.AT_RISK
        return DeadlineState.ON_TRACK


class SyncClaim(BaseModel):
    """A sync request this process may send now; `attempt` fences the outcome it records."""

    model_config = ConfigDict(frozen=True)

    phone_number_id: PhoneNumberId
    sync_type: SyncType
    attempt: int
    deadline: datetime


class SyncOutcome(BaseModel):
    """What became of one attempt, as the row should record it."""

    model_config = ConfigDict(frozen=True)

    status: SyncStatus
    next_attempt_at: datetime | None = None  # for PENDING (a retry)
    request_id: str | None = None
    error_code: int | None = None
    error: str | None = None


class SyncExpiry(NamedTuple):
    phone_number_id: PhoneNumberId
    sync_type: SyncType
    status: SyncStatus  # MISSED or UNCLEAR


class HistoryRow(NamedTuple):
    """One backlog message ready to store.

    A NamedTuple, not a model: a backlog holds hundreds of thousands of these and they go
    straight into a bulk insert.
    """

    wa_id: WaId  # the customer: names the conversation
    wamid: Wamid
    direction: str  # "in" | "out"
    author: str  # "customer" | "app"
    type: str
    body: str
    payload: str  # the message as received, JSON text
    sent_at: datetime
    status: str | None
    status_rank: int


class ChunkStart(BaseModel):
    """Which change item is being imported; `kind` is chunk, declined or media."""

    model_config = ConfigDict(frozen=True)

    phone_number_id: PhoneNumberId
    chunk_key: str
    kind: str
    phase: int | None = None
    chunk_order: int | None = None
    progress: int | None = None
    messages_total: int = 0


class ContactChange(BaseModel):
    """An address-book entry added (or edited) or removed in the Business App."""

    model_config = ConfigDict(frozen=True)

    wa_id: WaId
    removed: bool
    full_name: str | None
    first_name: str | None
    changed_at: datetime


class NumberReport(BaseModel):
    """One number as the API and the CLI show it: deadline, sync requests, import progress."""

    model_config = ConfigDict(frozen=True)

    phone_number_id: PhoneNumberId
    display_phone_number: str | None
    onboarded_at: datetime | None
    deadline_at: datetime | None
    seconds_left: float | None
    deadline: DeadlineState | None
    needs_person: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    syncs: tuple[SyncRequestState, ...]
    progress: ImportProgress

    @classmethod
    def of(cls, history: NumberHistory, *, now: datetime, at_risk: timedelta) -> NumberReport:
        onboarding = history.onboarding
        left = history.seconds_left(now)
        return cls(
            phone_number_id=history.phone_number_id,
            display_phone_number=onboarding.display_phone_number if onboarding else None,
            onboarded_at=onboarding.onboarded_at if onboarding else None,
            deadline_at=onboarding.sync_deadline_at if onboarding else None,
            seconds_left=round(left, 3) if left is not None else None,
            deadline=history.deadline_state(now, at_risk),
            needs_person=history.needs_person,
            disabled_at=onboarding.disabled_at if onboarding else None,
            disabled_reason=onboarding.disabled_reason if onboarding else None,
            syncs=history.syncs,
            progress=history.progress,
        )
