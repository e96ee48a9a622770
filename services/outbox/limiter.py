"""Pacing as plain values with an injected clock: the per-number send window, the pair bucket.

`SendWindow` has `limit` slots; a Graph API call holds one from before it starts until it is
over, and the slot is free again `seconds` after the call's *anchor* (`anchor_of`): the moment
by which Meta has certainly counted it. Meta counts a call when it arrives, somewhere between
its start and its answer:

- Anchored on the answer (`margin = inf`), the window is exact whatever Meta's uplink: two calls
  on one slot are more than `seconds` apart as Meta sees them, so any `seconds`-long window at
  Meta holds at most `limit` calls. The cost: a slot is busy for the whole round trip on top of
  `seconds`, so a number sustains `limit / (seconds + latency)`: 0.8 of its limit at 250 ms.
- Anchored `margin` after the call's start (or on its answer if that came first), a slot is
  busy `seconds + margin`, whatever the latency: `limit / (seconds + margin)`. This is exact as
  long as the uplink delays of a number's calls (start → counted by Meta) differ by at most
  `margin` (`arrival_bound` states it, tests check it); beyond that, the calls are still spread
  `(seconds + margin) / limit` apart, so Meta's 20 (or 80) absorbs up to
  `cap / limit * (seconds + margin) - seconds` of uplink jitter (see `tolerated_jitter`).
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


def anchor_of(started: float, answered: float, margin: float) -> float:
    """When Meta has certainly counted a call: its answer, or `margin` after its start."""
    return min(answered, started + margin)


def call_gap(shape: WindowShape, margin: float) -> float:
    """Seconds between two call starts of a smooth window: `(seconds + margin) / limit`."""
    return (shape.seconds + (margin if math.isfinite(margin) else 0.0)) / shape.limit


def arrival_bound(shape: WindowShape, margin: float, jitter: float) -> int:
    """The most calls Meta can count in one `seconds`-long window of a smooth window when the
    uplink delays of a number's calls differ by at most `jitter` (`limit` if `jitter <= margin`)."""
    if not math.isfinite(margin):
        return shape.limit
    # Meta counts in [t, t + seconds) only calls started in a span of seconds + jitter, and
    # starts are at least one gap apart.
    return math.ceil((shape.seconds + jitter) / call_gap(shape, margin) - 1e-9)


def tolerated_jitter(shape: WindowShape, margin: float, cap: int) -> float:
    """The most uplink jitter for which Meta never counts more than `cap` in a window."""
    if not math.isfinite(margin):
        return math.inf
    return cap * call_gap(shape, margin) - shape.seconds


class SendWindow:
    """At most `shape.limit` calls in any `shape.seconds` window (see the module docstring)."""

    def __init__(
        self, shape: WindowShape, *, smooth: bool = True, margin: float = math.inf
    ) -> None:
        self.shape = shape
        self.margin = margin
        # The anchor of each slot's last call; -inf: never used. A reserved slot is in `_held`.
        self._anchors = [-math.inf] * shape.limit
        self._held: set[int] = set()
        self._not_before = -math.inf
        # Smooth: call starts at least one gap apart, instead of `limit` at once. Same limit, but
        # each call runs alone, so its answer comes sooner; with a margin, the gap is also what
        # bounds Meta's count when the uplink jitter exceeds the margin (`arrival_bound`).
        self._gap = call_gap(shape, margin) if smooth else 0.0
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

    def settle_call(self, slot: int, started: float, answered: float) -> None:
        """The call that started at `started` was answered (or failed) at `answered`."""
        self.settle(slot, anchor_of(started, answered, self.margin))

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
