"""The send window anchored a margin after each call's start, against Meta counting at arrival.

Each call reaches Meta (and is counted) `uplink` after it starts and is answered `downlink`
later. The properties: with uplink jitter within the margin, no 1-second window at Meta holds
more than the limit; beyond it, no more than `arrival_bound`, hence never more than Meta's cap
while the jitter stays under `tolerated_jitter`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.outbox.limiter import (
    SendWindow,
    WindowShape,
    anchor_of,
    arrival_bound,
    call_gap,
    tolerated_jitter,
)
from tests.outbox_harness import max_in_window


@dataclass(frozen=True)
class Call:
    start: float
    arrival: float  # when Meta counts it
    answer: float


def _dispatch(
    shape: WindowShape, margin: float, legs: list[tuple[float, float]], count: int
) -> list[Call]:
    """A greedy sender with a backlog of `count` calls; call i takes legs[i % len(legs)]."""
    window = SendWindow(shape, margin=margin)
    running: list[tuple[float, int, Call]] = []  # (answer, slot, call)
    calls: list[Call] = []
    started = 0
    while started < count or running:
        free_at = window.free_at()
        next_answer = min((r[0] for r in running), default=math.inf)
        if started < count and free_at <= next_answer:
            now = max(free_at, 0.0)
            slot = window.reserve(now)
            up, down = legs[started % len(legs)]
            call = Call(now, now + up, now + up + down)
            running.append((call.answer, slot, call))
            started += 1
        else:
            running.sort(key=lambda r: r[0])
            _, slot, call = running.pop(0)
            window.settle_call(slot, call.start, call.answer)
            calls.append(call)
    return calls


def _at_meta(calls: list[Call]) -> int:
    """The most calls Meta counts in one second (two exactly 1 s apart are in two windows;
    the nanosecond spares float rounding of `a + 1 - a`)."""
    return max_in_window((c.arrival for c in calls), window=1.0 - 1e-9)


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 30),
    margin=st.floats(0.0, 0.3),
    base=st.floats(0.0, 0.5),
    jitters=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=25),
    downlinks=st.lists(st.floats(0.0, 1.5), min_size=1, max_size=25),
    count=st.integers(1, 120),
)
def test_uplink_jitter_within_the_margin_never_exceeds_the_limit_at_meta(
    limit: int,
    margin: float,
    base: float,
    jitters: list[float],
    downlinks: list[float],
    count: int,
) -> None:
    # Uplinks in [base, base + margin]: however slow the answers, Meta counts at most `limit`.
    legs = [(base + margin * j, downlinks[i % len(downlinks)]) for i, j in enumerate(jitters)]
    calls = _dispatch(WindowShape(limit, 1.0), margin, legs, count)
    assert len(calls) == count
    assert _at_meta(calls) <= limit


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 30),
    margin=st.floats(0.0, 0.3),
    jitter=st.floats(0.0, 1.0),
    fractions=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=25),
    downlinks=st.lists(st.floats(0.0, 1.5), min_size=1, max_size=25),
    count=st.integers(1, 120),
)
def test_beyond_the_margin_meta_counts_at_most_the_arrival_bound(
    limit: int,
    margin: float,
    jitter: float,
    fractions: list[float],
    downlinks: list[float],
    count: int,
) -> None:
    shape = WindowShape(limit, 1.0)
    legs = [(jitter * f, downlinks[i % len(downlinks)]) for i, f in enumerate(fractions)]
    calls = _dispatch(shape, margin, legs, count)
    assert _at_meta(calls) <= arrival_bound(shape, margin, jitter)


def test_the_answer_anchor_is_exact_whatever_the_uplink() -> None:
    # margin = inf: today's exact window. Uplinks of 0 and 0.9 s alternate; still <= limit.
    shape = WindowShape(4, 1.0)
    calls = _dispatch(shape, math.inf, [(0.9, 0.05), (0.0, 0.05)], 60)
    assert _at_meta(calls) <= 4


def test_a_jitter_beyond_the_margin_can_exceed_the_limit() -> None:
    # Why the margin must cover the uplink jitter: a slow uplink followed, on the same slot,
    # by a fast one lands both in one second at Meta.
    shape = WindowShape(2, 1.0)
    calls = _dispatch(shape, 0.0, [(0.3, 0.5), (0.3, 0.5), (0.0, 0.5), (0.0, 0.5)], 4)
    assert _at_meta(calls) == 3
    assert arrival_bound(shape, 0.0, 0.3) >= 3


def test_the_anchor_is_the_answer_or_the_margin_whichever_comes_first() -> None:
    assert anchor_of(10.0, 10.25, 0.03) == pytest.approx(10.03)
    assert anchor_of(10.0, 10.01, 0.03) == pytest.approx(10.01)
    assert anchor_of(10.0, 10.25, math.inf) == 10.25


def test_the_margin_sets_the_sustained_rate_whatever_the_latency() -> None:
    # 250 ms answers: the answer anchor sustains 18 / 1.25; a 30 ms margin 18 / 1.03.
    shape = WindowShape(18, 1.0)
    for margin, rate in ((math.inf, 18 / 1.25), (0.03, 18 / 1.03)):
        calls = _dispatch(shape, margin, [(0.05, 0.2)], 360)
        starts = sorted(c.start for c in calls)
        assert (len(starts) - 1) / (starts[-1] - starts[0]) == pytest.approx(rate, rel=0.02)


def test_what_metas_cap_absorbs() -> None:
    coexistence, default = WindowShape(18, 1.0), WindowShape(72, 1.0)
    assert call_gap(coexistence, 0.03) == pytest.approx(1.03 / 18)
    # 20/s at Meta over 18/s configured: ~144 ms of uplink jitter with a 30 ms margin.
    assert tolerated_jitter(coexistence, 0.03, 20) == pytest.approx(20 * 1.03 / 18 - 1)
    assert tolerated_jitter(default, 0.03, 80) == pytest.approx(80 * 1.03 / 72 - 1)
    assert arrival_bound(coexistence, 0.03, 0.03) == 18
    assert arrival_bound(coexistence, 0.03, tolerated_jitter(coexistence, 0.03, 20)) == 20
    assert arrival_bound(coexistence, 0.03, 0.2) > 20
    assert tolerated_jitter(coexistence, math.inf, 20) == math.inf
