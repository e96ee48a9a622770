"""Pacing as plain values with an injected clock: the per-number send window, the pair bucket.

`SendWindow` makes the per-number limit exact. It has `limit` slots; a Graph API call holds one
slot from before it starts until `seconds` after its anchor, when Meta's answer arrived. Whenever
Meta counts a call, it is between the call's start and its answer, so two calls on the same slot
are always more than `seconds` apart as Meta sees them, and any `seconds`-long window holds at
most one call per slot: at most `limit` calls. The cost: a slot is busy for the call's latency
on top of `seconds`, so a number sustains `limit / (seconds + latency)` per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowShape:
    """`limit` calls per `seconds`: 18.7/s → 18 per 1 s; 0.5/s → 1 per 2 s."""

    limit: int
    seconds: float

    @classmethod
    def for_rate(cls, rate: float) -> WindowShape:
        if rate <= 0:
            raise ValueError("a send rate must be positive")
        if rate >= 1:
            return cls(limit=math.floor(rate + 1e-9), seconds=1.0)
        return cls(limit=1, seconds=1.0 / rate)


class SendWindow:
    """At most `shape.limit` calls in any `shape.seconds` window (see the module docstring)."""

    def __init__(self, shape: WindowShape, *, smooth: bool = True) -> None:
        self.shape = shape
        # The anchor of each slot's last call; -inf: never used. A reserved slot is in `_held`.
        self._anchors = [-math.inf] * shape.limit
        self._held: set[int] = set()
        self._not_before = -math.inf
        # Smooth: call starts at least seconds/limit apart, instead of `limit` at once. Same
        # limit, but each call runs alone, so its answer (the slot's anchor) comes sooner.
        self._gap = shape.seconds / shape.limit if smooth else 0.0
        self._last_start = -math.inf

    @property
    def in_flight(self) -> int:
        return len(self._held)

    def free_at(self) -> float:
        """When the next slot is free (inf while every slot is held by a call in flight)."""
        free = [a for i, a in enumerate(self._anchors) if i not in self._held]
        if not free:
            return math.inf
        return max(min(free) + self.shape.seconds, self._not_before, self._last_start + self._gap)

    def available(self, now: float) -> int:
        """Slots a call could take at `now` (a gauge: "tokens" of this number)."""
        if now < self._not_before or now < self._last_start + self._gap:
            return 0
        return sum(
            1
            for i, a in enumerate(self._anchors)
            if i not in self._held and a + self.shape.seconds <= now
        )

    def reserve(self, now: float) -> int:
        """Hold a free slot for a call about to start; raises if none is free at `now`."""
        if self.free_at() > now:
            raise RuntimeError("no send slot is free yet")
        slot = min(
            (i for i in range(self.shape.limit) if i not in self._held),
            key=lambda i: self._anchors[i],
        )
        self._held.add(slot)
        self._last_start = now
        return slot

    def settle(self, slot: int, anchor: float) -> None:
        """The call on `slot` is over; the slot is free again `seconds` after `anchor`."""
        self._held.discard(slot)
        self._anchors[slot] = max(self._anchors[slot], anchor)

    def cancel(self, slot: int) -> None:
        """The slot was reserved but no call was made: give it back unchanged."""
        self._held.discard(slot)

    def pause_until(self, when: float) -> None:
        """No call starts before `when` (a throughput error from Meta)."""
        self._not_before = max(self._not_before, when)

    def fill(self, at: float) -> None:
        """Count every slot as used at `at`: a new active consumer does not know the last
        second of its predecessor, so it assumes a full window."""
        self._anchors = [max(a, at) for a in self._anchors]


@dataclass
class PairBucket:
    """Meta's pair limit per customer: `burst` messages at once, then one per `interval` s.

    Meta lets a burst borrow future quota; a token bucket of the same shape spaces the messages
    beyond the burst instead of having Meta reject them (131056).
    """

    interval: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, *, interval: float, burst: float, now: float) -> PairBucket:
        return cls(interval=interval, burst=burst, tokens=burst, updated=now)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) / self.interval)
            self.updated = now

    def available_at(self, now: float) -> float:
        """When one message may go (now if a token is there)."""
        self._refill(now)
        if self.tokens >= 1.0:
            return now
        return now + (1.0 - self.tokens) * self.interval

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0

    def drain(self, now: float) -> None:
        """Meta said 131056: its view of this pair is emptier than ours; start from nothing."""
        self._refill(now)
        self.tokens = min(self.tokens, 0.0)

    def is_full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst
