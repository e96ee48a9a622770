"""The tests' one fake clock: time moves only when the test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_MONOTONIC_START = 1000.0  # any value: monotonic readings only ever get compared


class FakeClock:
    """`clock()` is the wall time (UTC) and `clock.monotonic()` the matching monotonic seconds,
    for code that takes either kind of clock; `advance` moves both together."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start if start is not None else datetime.now(UTC)
        self._elapsed = 0.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return _MONOTONIC_START + self._elapsed

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self._elapsed += seconds
