"""Retry planning after Graph API failures (pure)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baton.store.outbox_records import AttemptRow, ClaimStatus, decide_claim
from baton.whatsapp.errors import ErrorClass
from services.outbox.retry import Failures, GiveUp, RetryAfter, RetryPolicy, Scope, plan_retry

POLICY = RetryPolicy(max_attempts=4, give_up_after=600.0)


def _plan(error_class: ErrorClass, **failures: float) -> RetryAfter | GiveUp:
    values = {"errors": 1, "pair_errors": 0, "throughput_level": 1, "elapsed": 0.0, **failures}
    return plan_retry(
        error_class,
        Failures(
            errors=int(values["errors"]),
            pair_errors=int(values["pair_errors"]),
            throughput_level=int(values["throughput_level"]),
            elapsed=values["elapsed"],
        ),
        POLICY,
        random.Random(7),
    )


def test_throughput_pauses_the_number_and_grows_to_a_cap() -> None:
    delays = []
    for level in range(1, 10):
        plan = _plan(ErrorClass.THROUGHPUT, throughput_level=level, errors=0)
        assert isinstance(plan, RetryAfter)
        assert plan.scope is Scope.NUMBER
        delays.append(plan.delay)
    assert 0.5 <= delays[0] <= 1.0
    assert all(d <= POLICY.throughput_cap for d in delays)
    assert delays[5] > delays[0]


def test_throughput_errors_never_use_up_the_attempts() -> None:
    # However many 130429s a send met, only the give-up time stops it.
    plan = _plan(ErrorClass.THROUGHPUT, errors=POLICY.max_attempts + 3, throughput_level=40)
    assert isinstance(plan, RetryAfter)
    assert isinstance(_plan(ErrorClass.THROUGHPUT, elapsed=601.0), GiveUp)


@pytest.mark.parametrize(("n", "low"), [(1, 1.0), (2, 4.0), (3, 16.0), (4, 64.0), (5, 64.0)])
def test_pair_rate_waits_4_to_the_n_for_that_conversation_only(n: int, low: float) -> None:
    plan = _plan(ErrorClass.PAIR_RATE, pair_errors=n, errors=1)
    assert isinstance(plan, RetryAfter)
    assert plan.scope is Scope.CONVERSATION
    assert low <= plan.delay <= low * 1.2


@given(errors=st.integers(min_value=1, max_value=3), seed=st.integers())
def test_transient_backoff_is_jittered_and_bounded(errors: int, seed: int) -> None:
    plan = plan_retry(
        ErrorClass.TRANSIENT,
        Failures(errors=errors, pair_errors=0, throughput_level=0, elapsed=1.0),
        POLICY,
        random.Random(seed),
    )
    assert isinstance(plan, RetryAfter)
    full = min(POLICY.transient_cap, POLICY.transient_base * 2 ** (errors - 1))
    assert full / 2 <= plan.delay <= full
    assert plan.scope is Scope.CONVERSATION


@pytest.mark.parametrize("error_class", [ErrorClass.TRANSIENT, ErrorClass.PAIR_RATE])
def test_bounded_attempts_then_give_up(error_class: ErrorClass) -> None:
    assert isinstance(_plan(error_class, errors=POLICY.max_attempts - 1), RetryAfter)
    plan = _plan(error_class, errors=POLICY.max_attempts)
    assert isinstance(plan, GiveUp)
    assert str(POLICY.max_attempts) in plan.reason


def test_permanent_is_never_planned() -> None:
    with pytest.raises(ValueError, match="never retried"):
        _plan(ErrorClass.PERMANENT)


def _row(**overrides: object) -> AttemptRow:
    values: dict[str, object] = {
        "has_wamid": False,
        "status": "pending",
        "attempt_open": False,
        "attempt_age_seconds": None,
        **overrides,
    }
    return AttemptRow.model_validate(values)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (_row(), (ClaimStatus.CLAIMED, 0.0)),
        (_row(has_wamid=True, status="delivered"), (ClaimStatus.SENT, 0.0)),
        (_row(status="failed"), (ClaimStatus.FAILED, 0.0)),
        (_row(status="dead_lettered"), (ClaimStatus.CLAIMED, 0.0)),  # replayed from its DLQ
        (_row(attempt_open=True, attempt_age_seconds=4.0), (ClaimStatus.BUSY, 11.0)),
        (_row(attempt_open=True, attempt_age_seconds=16.0), (ClaimStatus.CLAIMED, 0.0)),
    ],
)
def test_claim_decision(row: AttemptRow, expected: tuple[ClaimStatus, float]) -> None:
    assert decide_claim(row, abandon_after_seconds=15.0) == expected
