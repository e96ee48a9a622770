"""What happened to a conversation: the inputs of `decide` (past tense, frozen).

The shell builds these after its own dedupe by message id; `decide` still ignores a message
id it already holds in the bot lane, so a redelivery can never reach the bot twice.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict

from baton.handoff.timers import TimerKind
from baton.types import Wamid

# Message types that are not conversation. From the customer they count as traffic (and
# keep the 24 h window open) but never reach the bot nor leave anyone waiting for a human;
# from the owner's phone they are not a takeover. `request_welcome` and `edit` are answerable,
# and so is `unsupported` (a poll, a view-once photo…): the customer said something we cannot
# read, and the bot tells them so in their language rather than leave them unanswered.
NON_CONVERSATIONAL_TYPES = frozenset({"reaction", "revoke", "system"})


def is_conversational(message_type: str) -> bool:
    """Whether a message of this WhatsApp type is conversation (to answer, or an answer)."""
    return message_type not in NON_CONVERSATIONAL_TYPES


class BaseEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomerWrote(BaseEvent):
    """A live message from the customer (`messages` webhook)."""

    wamid: Wamid
    timestamp: AwareDatetime  # WhatsApp's timestamp, not arrival time
    type: str = "text"
    text: str = ""  # body, caption or a short "[image]"-style rendering
    from_ad: bool = False  # a click-to-WhatsApp ad referral: the window opens for 72 h


class EchoReceived(BaseEvent):
    """A message the business sent, seen as an echo.

    `from_api=True` marks our own API sends (bot, agents, notices): never a takeover.
    Otherwise it is the owner typing in the WhatsApp Business App (`smb_message_echoes`).
    """

    wamid: Wamid
    timestamp: AwareDatetime
    type: str = "text"
    text: str = ""
    from_api: bool = False


class HistoryMessageImported(BaseEvent):
    """A backlog message from the Coexistence history sync: never changes anything."""

    wamid: Wamid
    timestamp: AwareDatetime
    from_business: bool = False


class AgentTookOver(BaseEvent):
    """An agent took the conversation (console / Chatwoot).

    With `load` and `capacity` (how many the agent holds, of how many), a full agent is refused.
    """

    agent_id: str
    load: int | None = None
    capacity: int | None = None


class AgentReleased(BaseEvent):
    """An agent gave the conversation back to the bot."""

    agent_id: str


class AgentSent(BaseEvent):
    """An agent sent the customer a message."""

    agent_id: str
    wamid: Wamid | None = None


class AgentAssigned(BaseEvent):
    """Auto-assignment offers a queued conversation to an agent with this many held of `capacity`.

    The shell picks the agent (`baton.handoff.assignment.pick_agent`) under the store's
    assignment lock; `decide` still refuses it if the agent is full or someone holds it.
    """

    agent_id: str
    load: int  # conversations the agent holds now
    capacity: int


class AgentTransferred(BaseEvent):
    """The holder (or an admin) `agent_id` hands the conversation to `to`; None: the queue."""

    agent_id: str
    to: str | None
    load: int | None = None  # held by `to` now, of `capacity`: a full agent is refused
    capacity: int | None = None


class AgentWentOffline(BaseEvent):
    """The agent went offline (or missed heartbeats): what they hold goes back to the queue."""

    agent_id: str


class AgentResolved(BaseEvent):
    """The agent ended the human service: back to the bot, with the outcome recorded."""

    agent_id: str
    outcome: str | None = None


class BotRequestedHandoff(BaseEvent):
    """The bot asked for a human (tool call, keywords, repeated failures, LLM down)."""

    epoch: int
    reason: str
    summary: str = ""


class BotReplied(BaseEvent):
    """The bot finished its turn for a request; an empty reply still answers the burst."""

    request_id: str
    epoch: int
    reply_count: int = 0  # messages it sent; 0 = it chose to stay silent


class TimerFired(BaseEvent):
    """The shell's sweeper saw a stored timer come due."""

    kind: TimerKind
    due_at: AwareDatetime


Event = (
    CustomerWrote
    | EchoReceived
    | HistoryMessageImported
    | AgentTookOver
    | AgentReleased
    | AgentSent
    | BotRequestedHandoff
    | BotReplied
    | TimerFired
    | AgentAssigned
    | AgentTransferred
    | AgentWentOffline
    | AgentResolved
)
