"""The simulator's round-trip model: two log-normal legs sized to a median and a p99."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from simulator import ConfigUpdate, RoundTrip, SimConfig
from simulator.latency import leg_shape


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5, 1.0])
def test_the_round_trip_has_the_configured_median_and_p99(share: float) -> None:
    shape = leg_shape(RoundTrip(median=0.25, p99=0.6, uplink_share=share))
    rng = random.Random(7)
    legs = [shape.draw(rng) for _ in range(40_000)]
    trips = [up + down for up, down in legs]
    assert _quantile(trips, 0.5) == pytest.approx(0.25, rel=0.05)
    assert _quantile(trips, 0.99) == pytest.approx(0.6, rel=0.06)
    # The uplink's share of the median round trip is the configured one.
    median_up = _quantile([up for up, _ in legs], 0.5)
    assert median_up == pytest.approx(share * shape.scale, rel=0.05, abs=1e-9)


def test_no_jitter_makes_each_leg_its_share() -> None:
    shape = leg_shape(RoundTrip(median=0.2, p99=0.2, uplink_share=0.25))
    up, down = shape.draw(random.Random(1))
    assert (up, down) == pytest.approx((0.05, 0.15))


def test_a_p99_below_the_median_is_refused() -> None:
    with pytest.raises(ValidationError):
        RoundTrip(median=0.3, p99=0.2)


def test_the_round_trip_is_off_unless_configured_and_can_be_switched() -> None:
    config = SimConfig()
    assert config.round_trip is None
    on = ConfigUpdate(round_trip=RoundTrip()).apply(config)
    assert on.round_trip == RoundTrip()
    assert ConfigUpdate(latency=0.1).apply(on).round_trip == RoundTrip()  # kept
    assert ConfigUpdate(round_trip_enabled=False).apply(on).round_trip is None
