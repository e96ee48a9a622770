"""Owner commands typed in the WhatsApp Business App (`#bot`, `#resume`, `#pause 3h`).

A command is the whole message: one command word, plus a duration for pause. Anything else
(`#bot please`, `#pause soon`) is ordinary conversation and pauses the bot like any echo,
because the customer sees what the owner typed either way.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from baton.handoff.policy import Policy

# Units in descending order, each at most once: "90s", "30m", "3h", "1d", "1h30m", "1d 12h".
_DURATION = re.compile(
    r"(?:(?P<d>[0-9]{1,6})d)?(?:(?P<h>[0-9]{1,6})h)?(?:(?P<m>[0-9]{1,6})m)?(?:(?P<s>[0-9]{1,6})s)?"
)


class ResumeBot(BaseModel):
    """Give the conversation back to the bot now."""

    model_config = ConfigDict(frozen=True)


class PauseBot(BaseModel):
    """Keep the bot quiet for `duration` (None: the number's pause window)."""

    model_config = ConfigDict(frozen=True)
    duration: timedelta | None = None


OwnerCommand = ResumeBot | PauseBot


def parse_duration(text: str) -> timedelta:
    """Parse "90s", "30m", "3h", "1d" or a combination such as "1h30m"; ValueError otherwise."""
    compact = "".join(text.split()).casefold()
    match = _DURATION.fullmatch(compact)
    if not compact or match is None:
        raise ValueError(f"not a duration: {text!r}")
    parts = {unit: int(value) if value else 0 for unit, value in match.groupdict().items()}
    duration = timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
    if duration <= timedelta(0):
        raise ValueError(f"duration must be positive: {text!r}")
    return duration


def parse_owner_command(text: str, policy: Policy) -> OwnerCommand | None:
    """The owner command this whole message is, or None if it is conversation."""
    parts = text.split(maxsplit=1)
    if not parts:
        return None
    word = parts[0].casefold()
    argument = parts[1].strip() if len(parts) > 1 else ""
    if word in {w.casefold() for w in policy.resume_words}:
        return ResumeBot() if not argument else None
    if word in {w.casefold() for w in policy.pause_words}:
        if not argument:
            return PauseBot()
        try:
            return PauseBot(duration=parse_duration(argument))
        except ValueError:
            return None
    return None
