"""Meta's round trip as two random legs: the uplink (until Meta counts the request) and the rest.

Meta counts a request against a number's throughput when it arrives, not when it was sent nor
when it is answered. The simulator therefore holds each Graph API request for an uplink delay,
counts it, then holds the answer for a downlink delay. Each leg is log-normal (a network path
plus server time: a floor-less body with a long right tail); both legs share one shape, sized
so that the round trip has the configured median and p99. `uplink_share` says how much of the
round trip comes before the count: where Meta counts is undocumented, so it is a setting.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

_Z99 = 2.3263478740408408  # the standard normal's 99th percentile
_CALIBRATION_SAMPLES = 20_000


class RoundTrip(BaseModel):
    """The round trip's median and p99 (seconds), and the uplink's share of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    median: float = Field(default=0.25, ge=0)
    p99: float = Field(default=0.6, ge=0)
    uplink_share: float = Field(default=0.2, ge=0, le=1)
    seed: int | None = None  # fixed draws for reproducible runs

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.p99 < self.median:
            raise ValueError("the p99 round trip cannot be shorter than the median")
        return self


@dataclass(frozen=True)
class LegShape:
    """Each leg is `scale * share * exp(sigma * Z)` (the downlink with `1 - share`)."""

    scale: float
    sigma: float
    uplink_share: float

    def draw(self, rng: random.Random) -> tuple[float, float]:
        """(uplink, downlink) seconds of one request."""
        up = self.scale * self.uplink_share * math.exp(self.sigma * rng.gauss(0.0, 1.0))
        down = self.scale * (1 - self.uplink_share) * math.exp(self.sigma * rng.gauss(0.0, 1.0))
        return up, down


def leg_shape(round_trip: RoundTrip) -> LegShape:
    """The leg shape whose sum has the round trip's median and p99 (calibrated once)."""
    return _calibrate(round_trip.median, round_trip.p99, round_trip.uplink_share)


@lru_cache(maxsize=32)
def _calibrate(median: float, p99: float, share: float) -> LegShape:
    if median == 0:
        return LegShape(0.0, 0.0, share)
    if share in (0.0, 1.0):  # one log-normal leg: exact
        return LegShape(median, math.log(p99 / median) / _Z99, share)
    # The sum of two log-normals has no closed form: fit sigma on fixed normal draws, so the
    # same settings always give the same shape.
    rng = random.Random(16)
    pairs = [(rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)) for _ in range(_CALIBRATION_SAMPLES)]

    def quantiles(sigma: float) -> tuple[float, float]:
        sums = sorted(
            share * math.exp(sigma * a) + (1 - share) * math.exp(sigma * b) for a, b in pairs
        )
        return sums[len(sums) // 2], sums[int(0.99 * (len(sums) - 1))]

    target = p99 / median
    low, high = 0.0, 4.0
    for _ in range(40):
        sigma = (low + high) / 2
        mid, top = quantiles(sigma)
        if top / mid > target:
            high = sigma
        else:
            low = sigma
    mid, _ = quantiles(low)
    return LegShape(median / mid, low, share)
