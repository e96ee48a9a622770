"""The pure conversation handoff core: who answers a conversation, bot or human.

`decide(state, event, now, policy) -> Decision(state, effects)` holds every rule;
`baton.conversations.Conversations` is the imperative shell the router and the console share
(load, decide, compare-and-set save, perform effects). Outbox fences
bot replies with `may_send_bot_reply`. Nothing in this package does I/O or reads a clock.
"""

from baton.handoff.commands import (
    OwnerCommand,
    PauseBot,
    ResumeBot,
    parse_duration,
    parse_owner_command,
)
from baton.handoff.effects import (
    AgentEventKind,
    AskBot,
    CancelBotRequest,
    CancelReason,
    CancelTimer,
    Cause,
    Effect,
    EmitEvent,
    ScheduleTimer,
    SendNotice,
    SkipNotice,
    SkipReason,
)
from baton.handoff.events import (
    NON_CONVERSATIONAL_TYPES,
    AgentAssigned,
    AgentReleased,
    AgentResolved,
    AgentSent,
    AgentTookOver,
    AgentTransferred,
    AgentWentOffline,
    BotReplied,
    BotRequestedHandoff,
    CustomerWrote,
    EchoReceived,
    Event,
    HistoryMessageImported,
    TimerFired,
    is_conversational,
)
from baton.handoff.fencing import (
    FenceReason,
    is_bot_reply_current,
    may_send_bot_reply,
    may_send_external_bot_message,
)
from baton.handoff.machine import Decision, IgnoreReason, decide
from baton.handoff.notices import (
    DEFAULT_TEXTS,
    Language,
    NoticeKind,
    language_from_code,
    with_bot_prefix,
)
from baton.handoff.policy import Policy, notice_text
from baton.handoff.state import (
    AD_CUSTOMER_WINDOW,
    CUSTOMER_WINDOW,
    ConversationState,
    PendingBotRequest,
    customer_window_open,
    new_conversation,
)
from baton.handoff.timers import Timer, TimerKind, next_timers, timer_due

__all__ = [
    "AD_CUSTOMER_WINDOW",
    "CUSTOMER_WINDOW",
    "DEFAULT_TEXTS",
    "NON_CONVERSATIONAL_TYPES",
    "AgentAssigned",
    "AgentEventKind",
    "AgentReleased",
    "AgentResolved",
    "AgentSent",
    "AgentTookOver",
    "AgentTransferred",
    "AgentWentOffline",
    "AskBot",
    "BotReplied",
    "BotRequestedHandoff",
    "CancelBotRequest",
    "CancelReason",
    "CancelTimer",
    "Cause",
    "ConversationState",
    "CustomerWrote",
    "Decision",
    "EchoReceived",
    "Effect",
    "EmitEvent",
    "Event",
    "FenceReason",
    "HistoryMessageImported",
    "IgnoreReason",
    "Language",
    "NoticeKind",
    "OwnerCommand",
    "PauseBot",
    "PendingBotRequest",
    "Policy",
    "ResumeBot",
    "ScheduleTimer",
    "SendNotice",
    "SkipNotice",
    "SkipReason",
    "Timer",
    "TimerFired",
    "TimerKind",
    "customer_window_open",
    "decide",
    "is_bot_reply_current",
    "is_conversational",
    "language_from_code",
    "may_send_bot_reply",
    "may_send_external_bot_message",
    "new_conversation",
    "next_timers",
    "notice_text",
    "parse_duration",
    "parse_owner_command",
    "timer_due",
    "with_bot_prefix",
]
