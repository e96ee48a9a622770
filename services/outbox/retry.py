"""What to do after a retryable Graph API failure: wait how long, and who waits (pure).

- THROUGHPUT (130429 and friends): the whole number pauses; exponential per consecutive pause,
  capped. These do not use up a send's attempts (the send did nothing wrong); only the overall
  give-up time bounds them.
- PAIR_RATE (131056): only that customer's conversation waits, 4^n seconds as Meta suggests.
- TRANSIENT (5xx, timeouts): only that conversation waits, exponential with jitter.
After `max_attempts` failed calls, or `give_up_after` seconds, the send is dead-lettered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from baton.whatsapp.errors import ErrorClass


class Scope(StrEnum):
    NUMBER = "number"  # every send of the business number waits
    CONVERSATION = "conversation"  # only this conversation waits; the others go on


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    give_up_after: float = 900.0
    throughput_base: float = 1.0  # Meta's window is one second
    throughput_cap: float = 30.0
    pair_base: float = 1.0
    pair_cap: float = 64.0
    transient_base: float = 0.5
    transient_cap: float = 30.0


@dataclass(frozen=True)
class RetryAfter:
    delay: float
    scope: Scope


@dataclass(frozen=True)
class GiveUp:
    reason: str


@dataclass(frozen=True)
class Failures:
    """A send's failure history so far, including the failure being decided on."""

    errors: int  # failed calls that count against max_attempts (pair rate and transient)
    pair_errors: int
    throughput_level: int  # consecutive throughput pauses of the number (1 on the first)
    elapsed: float  # seconds since the send's first attempt


def plan_retry(
    error_class: ErrorClass,
    failures: Failures,
    policy: RetryPolicy,
    rng: random.Random,
) -> RetryAfter | GiveUp:
    """The next step after a retryable failure (never called for PERMANENT)."""
    if error_class is ErrorClass.PERMANENT:
        raise ValueError("permanent errors are never retried")
    if failures.elapsed >= policy.give_up_after:
        return GiveUp(f"still failing ({error_class}) after {failures.elapsed:.0f}s")
    if error_class is ErrorClass.THROUGHPUT:
        level = max(1, failures.throughput_level)
        delay = min(policy.throughput_cap, policy.throughput_base * 2 ** (level - 1))
        return RetryAfter(_equal_jitter(delay, rng), Scope.NUMBER)
    if failures.errors >= policy.max_attempts:
        return GiveUp(f"{failures.errors} failed attempts, last {error_class}")
    if error_class is ErrorClass.PAIR_RATE:
        n = max(1, failures.pair_errors)
        delay = min(policy.pair_cap, policy.pair_base * 4 ** (n - 1))
        return RetryAfter(delay * rng.uniform(1.0, 1.2), Scope.CONVERSATION)
    n = max(1, failures.errors)
    delay = min(policy.transient_cap, policy.transient_base * 2 ** (n - 1))
    return RetryAfter(_equal_jitter(delay, rng), Scope.CONVERSATION)


def _equal_jitter(delay: float, rng: random.Random) -> float:
    # Half fixed, half random: never retries at once, and replicas do not retry in lockstep.
    return delay / 2 + rng.uniform(0, delay / 2)
