"""What to do after one sync request attempt (pure): accepted, retry, unclear, failed or missed.

Meta accepts each sync type once per onboarding, so a request is re-sent only when the failure
proves Meta never took it: the connection was refused (nothing left this machine) or Meta
answered with a rate-limit error. A timeout, a broken connection or a server error may hide an
accepted request: that is `unclear`, and a person decides. Meta refusing the request outright
(auth, bad parameter, already requested) is `failed`: retrying would not change the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from baton.store.history_records import SyncOutcome, SyncStatus
from baton.whatsapp import ErrorClass, GraphApiError, GraphTransportError


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float
    cap_seconds: float

    def delay(self, attempt: int, jitter: float) -> timedelta:
        """Exponential backoff, capped; `jitter` in [0, 1] spreads it over [½, 1] of the step."""
        step = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return timedelta(seconds=step * (0.5 + 0.5 * jitter))


def proven_not_accepted(error: BaseException) -> bool:
    """True only when Meta certainly did not take the request."""
    if isinstance(error, GraphTransportError):
        return not error.maybe_delivered
    if isinstance(error, GraphApiError):
        return error.error_class is ErrorClass.THROUGHPUT  # rate limits: 4, 80007, 130429, 429
    return False


def outcome_of(
    error: BaseException | None,
    request_id: str | None,
    *,
    attempt: int,
    now: datetime,
    deadline: datetime,
    policy: RetryPolicy,
    jitter: float,
) -> SyncOutcome:
    """Classify one attempt (`error` None means Meta answered with `request_id`)."""
    if error is None:
        return SyncOutcome(status=SyncStatus.ACCEPTED, request_id=request_id)
    code = error.code if isinstance(error, GraphApiError) else None
    text = f"{type(error).__name__}: {error}"[:500]
    if proven_not_accepted(error):
        retry_at = now + policy.delay(attempt, jitter)
        if retry_at >= deadline:
            return SyncOutcome(status=SyncStatus.MISSED, error_code=code, error=text)
        return SyncOutcome(
            status=SyncStatus.PENDING, next_attempt_at=retry_at, error_code=code, error=text
        )
    if isinstance(error, GraphApiError) and error.http_status < 300:
        # Meta said yes in a shape the client cannot read: it most likely has the request.
        return SyncOutcome(status=SyncStatus.UNCLEAR, error_code=code, error=text)
    if isinstance(error, GraphApiError) and error.error_class is ErrorClass.PERMANENT:
        return SyncOutcome(status=SyncStatus.FAILED, error_code=code, error=text)
    return SyncOutcome(status=SyncStatus.UNCLEAR, error_code=code, error=text)
