"""Opening hours in the business's time zone, with holidays: is it open at a given instant?"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# Far enough to cross a long holiday season; a week with no hours at all answers "not known".
_LOOKAHEAD_DAYS = 21


class DayHours(BaseModel):
    """One opening interval of a day, `opens` < `closes` (local time)."""

    model_config = ConfigDict(frozen=True)

    opens: time
    closes: time

    @classmethod
    def parse(cls, text: str) -> Self:
        """ "08:00-18:00" → an interval; "24:00" closes at midnight."""
        match = _RANGE.match(text)
        if match is None:
            raise ValueError(f"not an interval like 08:00-18:00: {text!r}")
        oh, om, ch, cm = (int(part) for part in match.groups())
        closes = time.max if (ch, cm) == (24, 0) else time(ch, cm)
        interval = cls(opens=time(oh, om), closes=closes)
        if interval.opens >= interval.closes:
            raise ValueError(f"an interval must close after it opens: {text!r}")
        return interval


class Holiday(BaseModel):
    """A day the business is closed all day."""

    model_config = ConfigDict(frozen=True)

    date: date
    name: str = ""


class OpeningHours(BaseModel):
    """Weekly hours in a time zone; `weekly` maps a weekday to intervals ("closed" or absent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "America/Sao_Paulo"
    weekly: dict[Weekday, tuple[DayHours, ...]] = Field(default_factory=dict)
    holidays: tuple[Holiday, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("weekly", mode="before")
    @classmethod
    def _parse_weekly(cls, value: object) -> object:
        """Accept TOML's `mon = "08:00-12:00, 14:00-18:00"` and `sun = "closed"`."""
        if not isinstance(value, dict):
            return value
        parsed: dict[str, object] = {}
        for day, spec in value.items():
            if isinstance(spec, str):
                parts = [part for part in spec.split(",") if part.strip()]
                if len(parts) == 1 and parts[0].strip().lower() == "closed":
                    parts = []
                parsed[day] = tuple(DayHours.parse(part) for part in parts)
            else:
                parsed[day] = spec
        return parsed

    @model_validator(mode="after")
    def _sorted_intervals(self) -> Self:
        for day, intervals in self.weekly.items():
            if list(intervals) != sorted(intervals, key=lambda i: i.opens):
                raise ValueError(f"{day}: list intervals in order")
            for earlier, later in pairwise(intervals):
                if later.opens < earlier.closes:
                    raise ValueError(f"{day}: intervals overlap")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def holiday_on(self, day: date) -> Holiday | None:
        return next((h for h in self.holidays if h.date == day), None)

    def intervals_on(self, day: date) -> tuple[DayHours, ...]:
        """The day's opening intervals; none on a holiday."""
        if self.holiday_on(day) is not None:
            return ()
        return self.weekly.get(WEEKDAYS[day.weekday()], ())


class OpenStatus(BaseModel):
    """The answer to "are you open now?" at one instant, in the business's local time."""

    model_config = ConfigDict(frozen=True)

    open_now: bool
    local_now: datetime
    closes_at: datetime | None = None  # when open
    next_opening: datetime | None = None  # when closed; None → no hours in the coming weeks
    holiday: Holiday | None = None  # today's holiday, if any


def status_at(hours: OpeningHours, now: datetime) -> OpenStatus:
    """Whether the business is open at `now` (any time zone), and when that changes."""
    local = (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).astimezone(hours.zone)
    today = local.date()
    holiday = hours.holiday_on(today)
    for interval in hours.intervals_on(today):
        if interval.opens <= local.time() < interval.closes:
            return OpenStatus(
                open_now=True,
                local_now=local,
                closes_at=_at(today, interval.closes, hours.zone),
                holiday=holiday,
            )
    return OpenStatus(
        open_now=False, local_now=local, next_opening=_next_opening(hours, local), holiday=holiday
    )


def _next_opening(hours: OpeningHours, local: datetime) -> datetime | None:
    for offset in range(_LOOKAHEAD_DAYS):
        day = local.date() + timedelta(days=offset)
        for interval in hours.intervals_on(day):
            opening = _at(day, interval.opens, hours.zone)
            if opening > local:
                return opening
    return None


def _at(day: date, moment: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=zone)
