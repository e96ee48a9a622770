"""Which sync request failures are retried, and how a number stands against its deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baton.store.history_records import (
    DeadlineState,
    ImportProgress,
    ImportState,
    NumberHistory,
    Onboarding,
    SyncOutcome,
    SyncRequestState,
    SyncStatus,
    SyncType,
)
from baton.whatsapp import GraphApiError, GraphTransportError
from services.history.sync import RetryPolicy, outcome_of, proven_not_accepted

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(hours=20)
POLICY = RetryPolicy(base_seconds=2, cap_seconds=300)


def _outcome(
    error: BaseException | None, *, attempt: int = 1, deadline: datetime = DEADLINE
) -> SyncOutcome:
    return outcome_of(
        error,
        "req-1" if error is None else None,
        attempt=attempt,
        now=NOW,
        deadline=deadline,
        policy=POLICY,
        jitter=1.0,
    )


def test_success_is_accepted_with_its_request_id() -> None:
    outcome = _outcome(None)
    assert (outcome.status, outcome.request_id) == (SyncStatus.ACCEPTED, "req-1")


@pytest.mark.parametrize(
    "error",
    [
        GraphTransportError("ConnectError: refused", maybe_delivered=False),
        GraphApiError(400, 130429, "(#130429) Rate limit hit"),
        GraphApiError(400, 80007, "(#80007) WABA rate limit"),
        GraphApiError(400, 4, "(#4) Application request limit reached"),
        GraphApiError(429, None, "Too Many Requests"),
    ],
)
def test_failures_proving_meta_did_not_take_it_are_retried(error: BaseException) -> None:
    assert proven_not_accepted(error)
    outcome = _outcome(error, attempt=3)
    assert outcome.status is SyncStatus.PENDING
    assert outcome.next_attempt_at == NOW + timedelta(seconds=8)


@pytest.mark.parametrize(
    "error",
    [
        GraphTransportError("ReadTimeout", maybe_delivered=True),
        GraphTransportError("RemoteProtocolError: connection closed", maybe_delivered=True),
        GraphApiError(500, 131000, "(#131000) Something went wrong"),
        GraphApiError(503, 131016, "(#131016) Service unavailable"),
        GraphApiError(502, None, "<html>Bad Gateway</html>"),
        GraphApiError(200, None, "unreadable _SyncResponse response"),
        RuntimeError("a bug between the call and its answer"),
    ],
)
def test_unclear_results_are_never_resent(error: BaseException) -> None:
    assert not proven_not_accepted(error)
    assert _outcome(error).status is SyncStatus.UNCLEAR


@pytest.mark.parametrize(
    "error",
    [
        GraphApiError(401, 190, "Invalid OAuth access token"),
        GraphApiError(400, 100, "(#100) Invalid parameter", "already requested"),
        GraphApiError(403, 200, "(#200) Permission denied"),
    ],
)
def test_refusals_go_to_a_person(error: BaseException) -> None:
    outcome = _outcome(error)
    assert outcome.status is SyncStatus.FAILED
    assert outcome.error_code == error.code  # type: ignore[attr-defined]


def test_a_retry_that_would_land_after_the_deadline_is_missed() -> None:
    refused = GraphTransportError("ConnectError", maybe_delivered=False)
    outcome = _outcome(refused, attempt=20, deadline=NOW + timedelta(seconds=10))
    assert outcome.status is SyncStatus.MISSED


@given(attempt=st.integers(1, 60), jitter=st.floats(0, 1))
def test_backoff_grows_is_capped_and_never_instant(attempt: int, jitter: float) -> None:
    delay = POLICY.delay(attempt, jitter).total_seconds()
    assert 1.0 <= delay <= 300
    assert POLICY.delay(attempt + 1, 1.0) >= POLICY.delay(attempt, 1.0)


def _number(
    *,
    history: SyncStatus = SyncStatus.PENDING,
    contacts: SyncStatus = SyncStatus.ACCEPTED,
    progress: ImportState = ImportState.WAITING,
    disabled: bool = False,
) -> NumberHistory:
    def sync(sync_type: SyncType, status: SyncStatus) -> SyncRequestState:
        return SyncRequestState(
            sync_type=sync_type,
            status=status,
            attempts=1,
            next_attempt_at=NOW,
            sending_since=None,
            request_id=None,
            error_code=None,
            last_error=None,
            resolved_by=None,
            updated_at=NOW,
        )

    return NumberHistory(
        phone_number_id="900",
        onboarding=Onboarding(
            phone_number_id="900",
            display_phone_number=None,
            waba_id=None,
            generation=1,
            onboarded_at=NOW - timedelta(hours=4),
            sync_deadline_at=DEADLINE,
            disabled_at=NOW if disabled else None,
            disabled_reason=None,
        ),
        syncs=(sync(SyncType.CONTACTS, contacts), sync(SyncType.HISTORY, history)),
        progress=ImportProgress(state=progress),
    )


AT_RISK = timedelta(hours=6)


def test_deadline_states() -> None:
    waiting = _number(history=SyncStatus.PENDING)
    assert waiting.deadline_state(NOW, AT_RISK) is DeadlineState.ON_TRACK
    assert waiting.deadline_state(DEADLINE - AT_RISK, AT_RISK) is DeadlineState.AT_RISK
    assert waiting.deadline_state(DEADLINE, AT_RISK) is DeadlineState.MISSED
    assert waiting.seconds_left(NOW) == 20 * 3600
    assert _number(history=SyncStatus.ACCEPTED).deadline_state(DEADLINE, AT_RISK) is (
        DeadlineState.MET
    )
    arriving = _number(history=SyncStatus.UNCLEAR, progress=ImportState.IMPORTING)
    assert arriving.deadline_state(DEADLINE, AT_RISK) is DeadlineState.MET
    assert _number(disabled=True).deadline_state(NOW, AT_RISK) is DeadlineState.DISABLED


def test_unclear_or_refused_requests_need_a_person() -> None:
    assert not _number().needs_person
    assert _number(contacts=SyncStatus.UNCLEAR).needs_person
    assert _number(history=SyncStatus.FAILED).needs_person
    assert not _number(history=SyncStatus.MISSED).needs_person
