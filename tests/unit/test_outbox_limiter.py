"""The per-number send window and the pair bucket, as pure values on a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.outbox.limiter import PairBucket, SendWindow, WindowShape


@pytest.mark.parametrize(
    ("rate", "limit", "seconds"),
    [(18.0, 18, 1.0), (72.0, 72, 1.0), (18.7, 18, 1.0), (1.0, 1, 1.0), (0.5, 1, 2.0)],
)
def test_shape_for_rate(rate: float, limit: int, seconds: float) -> None:
    assert WindowShape.for_rate(rate) == WindowShape(limit, seconds)


def _simulate(
    limit: int,
    latencies: list[float],
    arrivals: list[float],
    anchor_start: bool = False,
    smooth: bool = True,
) -> list[tuple[float, float]]:
    """A greedy dispatcher over the window: (start, end) of every call, arrivals in order."""
    window = SendWindow(WindowShape(limit, 1.0), smooth=smooth)
    pending = sorted(arrivals)
    running: list[tuple[float, int, float]] = []  # (end, slot, start)
    calls: list[tuple[float, float]] = []
    now = 0.0
    i = 0
    while i < len(pending) or running:
        free_at = window.free_at()
        next_arrival = pending[i] if i < len(pending) else math.inf
        next_end = min((r[0] for r in running), default=math.inf)
        can_start = max(free_at, next_arrival)
        if i < len(pending) and can_start <= next_end:
            now = can_start
            slot = window.reserve(now)
            end = now + latencies[i % len(latencies)]
            running.append((end, slot, now))
            i += 1
        else:
            running.sort()
            end, slot, start = running.pop(0)
            now = end
            window.settle(slot, start + 0.0 if anchor_start else end)
            calls.append((start, end))
    return calls


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=20),
    latencies=st.lists(st.floats(min_value=0.0, max_value=2.5), min_size=1, max_size=30),
    arrivals=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=120),
    smooth=st.booleans(),
)
def test_no_one_second_window_can_see_more_than_the_limit(
    limit: int, latencies: list[float], arrivals: list[float], smooth: bool
) -> None:
    # Meta counts a call somewhere between its start and its answer. However those points fall,
    # no window [t, t+1) may hold more than `limit` calls: count every call that *could* be in
    # it (started before t+1 and answered at or after t).
    calls = _simulate(limit, latencies, arrivals, smooth=smooth)
    assert len(calls) == len(arrivals)
    for t in {end for _, end in calls} | {start - 1 for start, _ in calls}:
        could_be_inside = [c for c in calls if c[0] < t + 1 and c[1] >= t]
        assert len(could_be_inside) <= limit


def test_anchoring_on_the_call_start_would_exceed_the_limit_as_meta_counts() -> None:
    # Why the worker anchors a slot on Meta's answer only (the removed `request` anchor): with
    # the start as anchor, a slow answer counted late by Meta and the slot's next call counted
    # early land in the same second.
    calls = _simulate(3, [0.5], [0.0] * 12, anchor_start=True, smooth=False)
    starts = sorted(s for s, _ in calls)
    assert starts[3] == pytest.approx(1.0)  # the slot came back one second after its start
    could_be_in_one_second = [c for c in calls if c[0] < 0.5 + 1 and c[1] >= 0.5]
    assert len(could_be_in_one_second) > 3


def test_the_exact_window_costs_limit_over_one_plus_latency() -> None:
    # A slot is reused one second after the answer: at 150 ms a number sustains 18 / 1.15.
    calls = _simulate(18, [0.15], [0.0] * 180)
    starts = sorted(s for s, _ in calls)
    assert (180 - 1) / (starts[-1] - starts[0]) == pytest.approx(18 / 1.15, rel=0.02)


def test_sustained_rate_with_a_short_latency_is_the_limit() -> None:
    # Smooth: one call every 1.005/18 s. In bursts: 18 calls every 1.005 s.
    for smooth, first_burst in ((True, 1), (False, 18)):
        calls = _simulate(18, [0.005], [0.0] * 360, smooth=smooth)
        starts = sorted(s for s, _ in calls)
        rate = (360 - first_burst) / (starts[-1] - starts[0])
        assert rate == pytest.approx(18 / 1.005, rel=0.01)


def test_smooth_starts_are_spread_over_the_window() -> None:
    starts = sorted(s for s, _ in _simulate(4, [0.01], [0.0] * 8))
    assert starts[:4] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert starts[4] == pytest.approx(1.01)  # slot 0 again: one second after its answer


def test_a_new_sender_waits_a_full_window() -> None:
    window = SendWindow(WindowShape(18, 1.0))
    assert window.free_at() == -math.inf
    window.fill(10.1)
    assert window.free_at() == pytest.approx(11.1)
    assert window.available(11.0) == 0
    assert window.available(11.1) == 18


def test_pause_holds_every_slot_and_cancel_gives_one_back() -> None:
    window = SendWindow(WindowShape(2, 1.0), smooth=False)
    window.pause_until(5.0)
    assert window.free_at() == 5.0
    with pytest.raises(RuntimeError):
        window.reserve(4.0)
    a = window.reserve(5.0)
    b = window.reserve(5.0)
    assert window.free_at() == math.inf  # both in flight
    window.cancel(a)
    assert window.free_at() == 5.0  # never used: free again at once
    window.settle(b, 5.2)
    assert window.in_flight == 0
    assert window.available(5.9) == 1
    assert window.available(6.2) == 2


def test_pair_bucket_spaces_messages_beyond_the_burst() -> None:
    bucket = PairBucket.full(interval=6.0, burst=3, now=0.0)
    for _ in range(3):
        assert bucket.available_at(0.0) == 0.0
        bucket.take(0.0)
    assert bucket.available_at(0.0) == pytest.approx(6.0)
    bucket.take(6.0)
    assert bucket.available_at(6.0) == pytest.approx(12.0)


def test_pair_bucket_drain_follows_meta_after_a_131056() -> None:
    bucket = PairBucket.full(interval=6.0, burst=30, now=0.0)
    bucket.drain(0.0)
    assert bucket.available_at(0.0) == pytest.approx(6.0)
    assert not bucket.is_full(60.0)
    assert bucket.is_full(180.0)
