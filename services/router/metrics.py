"""The router's Prometheus metrics, fed by observing each handoff decision."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from baton.handoff import (
    AgentEventKind,
    AgentSent,
    AskBot,
    CancelBotRequest,
    ConversationState,
    Decision,
    EchoReceived,
    EmitEvent,
    Event,
    NoticeKind,
    SendNotice,
    SkipNotice,
    TimerFired,
)
from baton.types import Mode

DECISIONS = Counter(
    "baton_router_decisions_total",
    "Handoff decisions by event, the mode before it, and outcome (changed or why ignored).",
    ["event", "mode", "outcome"],
)
BATCH_SIZE = Histogram(
    "baton_router_debounce_batch_messages",
    "Customer messages per bot request (one debounced burst).",
    buckets=(1, 2, 3, 4, 5, 8, 13, 21, 50),
)
HANDOFFS = Counter(
    "baton_handoffs_total",
    "Mode changes by reason (cause) and direction (from_to).",
    ["reason", "direction"],
)
FIRST_HUMAN_RESPONSE = Histogram(
    "baton_human_first_response_seconds",
    "From a customer starting to wait on a human to the first human answer.",
    buckets=(5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200),
)
GHOST_FALLBACKS = Counter(
    "baton_ghost_fallbacks_total",
    "Ghost fallback ('we will answer soon') notices: sent, or skipped and why.",
    ["outcome"],
)
NOTICES = Counter(
    "baton_notices_total",
    "Customer notices by kind: sent, or skipped and why.",
    ["kind", "outcome"],
)
BOT_REQUESTS_CANCELLED = Counter(
    "baton_bot_requests_cancelled_total",
    "Bot requests in flight whose replies lost the fence (superseded or mode changed).",
    ["reason"],
)
TIMERS_FIRED = Counter(
    "baton_router_timers_fired_total",
    "Conversation timers fired by kind and outcome (changed, or why nothing happened).",
    ["kind", "outcome"],
)
DUPLICATES = Counter(
    "baton_router_duplicates_total",
    "Redelivered messages that had already been through the state machine, by kind (customer,"
    " echo); a broker retry of one is announced again, never decided again.",
    ["kind"],
)
IGNORED = Counter(
    "baton_router_ignored_total",
    "Customer messages and echoes acknowledged and dropped before the state machine, by kind"
    " and reason (number_disabled: the number was offboarded).",
    ["kind", "reason"],
)
EFFECTS_RELAYED = Counter(
    "baton_router_effects_relayed_total",
    "Queued effects published by the relay sweep (left behind by a crash or broker outage).",
)


class RouterMetrics:
    """A `DecisionObserver` that counts what each decision did."""

    def observe(
        self, before: ConversationState, event: Event, decision: Decision, now: datetime
    ) -> None:
        outcome = (
            decision.ignored.value
            if decision.ignored
            else ("changed" if decision.changed else "unchanged")
        )
        DECISIONS.labels(event=type(event).__name__, mode=before.mode.value, outcome=outcome).inc()
        if isinstance(event, TimerFired):
            TIMERS_FIRED.labels(kind=event.kind.value, outcome=outcome).inc()
        after = decision.state
        if _human_answered(before, event, after):
            assert before.waiting_since is not None
            FIRST_HUMAN_RESPONSE.observe(max(0.0, (now - before.waiting_since).total_seconds()))
        for effect in decision.effects:
            match effect:
                case AskBot():
                    BATCH_SIZE.observe(len(effect.messages))
                case EmitEvent(kind=AgentEventKind.MODE_CHANGED):
                    direction = f"{effect.payload['from']}_to_{effect.payload['to']}"
                    HANDOFFS.labels(reason=str(effect.payload["cause"]), direction=direction).inc()
                case SendNotice():
                    NOTICES.labels(kind=effect.kind.value, outcome="sent").inc()
                    if effect.kind is NoticeKind.BUSY:
                        GHOST_FALLBACKS.labels(outcome="sent").inc()
                case SkipNotice():
                    outcome = f"skipped_{effect.reason.value}"
                    NOTICES.labels(kind=effect.kind.value, outcome=outcome).inc()
                    if effect.kind is NoticeKind.BUSY:
                        GHOST_FALLBACKS.labels(outcome=outcome).inc()
                case CancelBotRequest():
                    BOT_REQUESTS_CANCELLED.labels(reason=effect.reason.value).inc()
                case _:
                    pass


def _human_answered(before: ConversationState, event: Event, after: ConversationState) -> bool:
    """An agent or the owner wrote to a customer who was waiting, and a human still holds it."""
    human_wrote = isinstance(event, AgentSent) or (
        isinstance(event, EchoReceived) and not event.from_api
    )
    return (
        human_wrote
        and before.waiting_since is not None
        and after.waiting_since is None
        and after.mode is not Mode.BOT
    )


# Recounted from the store by the sweep loop: every router replica reports the same global
# numbers, so dashboards take `max by (mode)`, never `sum`.
CONVERSATIONS = Gauge(
    "baton_conversations",
    "Conversations by mode (bot, human, paused), counted in the store (global, not per replica).",
    ["mode"],
)

NUMBER_CHANGES = Counter(
    "baton_router_customer_number_changes_total",
    "Customers' number-change notices applied, by outcome (moved: the conversation follows the"
    " new wa_id; kept_both: the new wa_id had its own; no_conversation: nothing to move).",
    ["outcome"],
)
