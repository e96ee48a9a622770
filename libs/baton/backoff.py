"""The one retry policy: exponential backoff with full jitter, capped.

Used for redelivering a failed broker message, re-subscribing a lost consumer, reconnecting to
the broker and restarting a dead local service. Full jitter spreads the retries of many
replicas that lost the same dependency at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number `attempt` (1-based): uniform in [0, min(cap, base·2^(n-1))]."""

    base: float = 0.2
    cap: float = 10.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        return (rng or random).uniform(0, ceiling)


# Reconnecting and re-subscribing: quick first retries, never slower than every 5 s.
RECONNECT = Backoff(base=0.2, cap=5.0)


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds` unless `stop` is set first; True if it was."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
