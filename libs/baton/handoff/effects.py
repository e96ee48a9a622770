"""What the shell must do after saving a decision: the outputs of `decide` (frozen data).

Effects are performed only after the new state was saved (compare-and-set on `version`),
in the order given. Ids inside effects are deterministic, so a retried effect can be deduped.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from baton.handoff.notices import NoticeKind
from baton.handoff.timers import TimerKind
from baton.messages import BurstMessage, Template


class Cause(StrEnum):
    """Why the mode changed (a low-cardinality metric label)."""

    AGENT_TAKEOVER = "agent_takeover"
    AGENT_MESSAGE = "agent_message"  # an agent wrote without taking over first
    AGENT_RELEASED = "agent_released"
    BOT_HANDOFF = "bot_handoff"
    OWNER_ECHO = "owner_echo"  # the owner typed in the Business App
    OWNER_RESUME = "owner_resume"  # `#bot` / `#resume`
    OWNER_PAUSE = "owner_pause"  # `#pause <duration>`
    PAUSE_EXPIRED = "pause_expired"
    HUMAN_INACTIVE = "human_inactive"
    RESOLVED = "resolved"  # an agent ended the human service


class AgentEventKind(StrEnum):
    MODE_CHANGED = "mode_changed"
    ASSIGNEE_CHANGED = "assignee_changed"
    CUSTOMER_WAITING = "customer_waiting"  # a customer message while a human holds it
    RESOLVED = "resolved"  # a human service ended: its times and outcome


class SkipReason(StrEnum):
    DISABLED = "disabled"
    CUSTOMER_WINDOW_CLOSED = "customer_window_closed"


class CancelReason(StrEnum):
    SUPERSEDED = "superseded"  # the customer wrote again before the reply
    MODE_CHANGED = "mode_changed"  # a human or the owner took the conversation


class BaseEffect(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AskBot(BaseEffect):
    """Ask the bot to answer these customer messages under this epoch."""

    request_id: str
    epoch: int
    messages: tuple[BurstMessage, ...]


class CancelBotRequest(BaseEffect):
    """A request in flight lost its fence: its replies will be dropped (tell the bot, count)."""

    request_id: str
    reason: CancelReason


class SendNotice(BaseEffect):
    """Send the customer a system notice (author SYSTEM, not fenced like bot replies)."""

    kind: NoticeKind
    text: str
    idempotency_key: str
    template: Template | None = None  # outside the 24 h window: this template instead


class SkipNotice(BaseEffect):
    """Record that a notice was due but not sent, and why."""

    kind: NoticeKind
    reason: SkipReason


# Agent event payloads are flat JSON scalars (datetimes as ISO 8601 strings).
Payload = dict[str, str | int | None]


class EmitEvent(BaseEffect):
    """Tell agents (console SSE, Chatwoot) what happened.

    Payload keys: mode_changed -> from, to, epoch, cause, actor, assignee, reason, summary,
    paused_until; assignee_changed -> assignee, previous, actor, cause (takeover, auto,
    transfer, offline); customer_waiting -> wamid, mode, assignee, waiting_since;
    resolved -> agent, outcome, started_at, first_response_at, first_response_seconds,
    handling_seconds, epoch (the epoch of the service that ended).
    """

    kind: AgentEventKind
    payload: Payload


class ScheduleTimer(BaseEffect):
    """Arm (or move) the conversation's timer of this kind."""

    kind: TimerKind
    due_at: AwareDatetime


class CancelTimer(BaseEffect):
    """Disarm the conversation's timer of this kind."""

    kind: TimerKind


Effect = (
    AskBot | CancelBotRequest | SendNotice | SkipNotice | EmitEvent | ScheduleTimer | CancelTimer
)
