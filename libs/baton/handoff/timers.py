"""Which timers a conversation has armed, derived from its state alone.

Timers are derived, never decided on their own: the state says when each is due, the shell
stores `next_timers(state, policy)` beside it (in the same save) for the sweeper to find, and a `TimerFired` that is no
longer armed or not yet due is simply a no-op (a fired timer is a prompt to re-check).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from baton.handoff.policy import Policy
from baton.handoff.state import ConversationState, latest
from baton.types import Mode


class TimerKind(StrEnum):
    DEBOUNCE = "debounce"  # flush the buffered burst to the bot
    PAUSE_EXPIRY = "pause_expiry"  # paused -> bot
    HUMAN_INACTIVITY = "human_inactivity"  # human -> bot after no human activity
    GHOST_FALLBACK = "ghost_fallback"  # one "busy" notice per handoff


class Timer(BaseModel):
    """One armed timer of a conversation."""

    model_config = ConfigDict(frozen=True)
    kind: TimerKind
    due_at: AwareDatetime


def timer_due(state: ConversationState, policy: Policy, kind: TimerKind) -> datetime | None:
    """When the timer of this kind is due, or None if it is not armed."""
    match kind:
        case TimerKind.DEBOUNCE:
            return state.flush_due_at if state.mode is Mode.BOT and state.buffer else None
        case TimerKind.PAUSE_EXPIRY:
            return state.paused_until if state.mode is Mode.PAUSED else None
        case TimerKind.HUMAN_INACTIVITY:
            if state.mode is not Mode.HUMAN:
                return None
            since = latest(state.mode_changed_at, state.last_human_at)
            return None if since is None else since + policy.human_inactivity_timeout
        case TimerKind.GHOST_FALLBACK:
            if state.mode is Mode.BOT or state.ghost_fallback_done or state.waiting_since is None:
                return None
            return state.waiting_since + policy.ghost_fallback_delay


def next_timers(state: ConversationState, policy: Policy) -> tuple[Timer, ...]:
    """Every armed timer, in `TimerKind` order."""
    armed = ((kind, timer_due(state, policy, kind)) for kind in TimerKind)
    return tuple(Timer(kind=kind, due_at=due) for kind, due in armed if due is not None)
