"""The workflow's handoff events (issue 12), one rule at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from baton.handoff import (
    AgentAssigned,
    AgentEventKind,
    AgentResolved,
    AgentSent,
    BotRequestedHandoff,
    ConversationState,
    CustomerWrote,
    EmitEvent,
    IgnoreReason,
    NoticeKind,
    Policy,
    SendNotice,
    TimerFired,
    TimerKind,
    decide,
    new_conversation,
)
from baton.handoff.assignment import Candidate, pick_agent
from baton.messages import Template
from baton.types import Mode

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def queued(
    now: datetime, *, from_ad: bool = False, policy: Policy | None = None
) -> ConversationState:
    policy = policy or Policy()
    state = new_conversation(1, "900", "55")
    state = decide(
        state, CustomerWrote(wamid="w1", timestamp=now, from_ad=from_ad), now, policy
    ).state
    return decide(state, BotRequestedHandoff(epoch=0, reason="r"), now, policy).state


def test_a_click_to_whatsapp_ad_opens_the_window_for_72_hours() -> None:
    assert queued(T0, from_ad=True).customer_window_expires_at == T0 + timedelta(hours=72)
    assert queued(T0).customer_window_expires_at == T0 + timedelta(hours=24)


def test_auto_assignment_refuses_a_full_agent_and_a_held_conversation() -> None:
    state = queued(T0)
    full = decide(state, AgentAssigned(agent_id="a", load=5, capacity=5), T0, Policy())
    assert full.ignored is IgnoreReason.AT_CAPACITY
    given = decide(state, AgentAssigned(agent_id="a", load=4, capacity=5), T0, Policy())
    assert (given.state.assignee, given.state.epoch) == ("a", state.epoch)
    again = decide(given.state, AgentAssigned(agent_id="b", load=0, capacity=5), T0, Policy())
    assert again.ignored is IgnoreReason.HELD_BY_ANOTHER


def test_the_busy_notice_past_the_window_is_the_numbers_template() -> None:
    template = Template(name="busy", language="pt_BR")
    policy = Policy(busy_template=template)
    state = queued(T0, policy=policy)
    late = T0 + timedelta(days=2)
    state = decide(state, CustomerWrote(wamid="w2", timestamp=T0), late, policy).state
    due = late + policy.ghost_fallback_delay
    decision = decide(state, TimerFired(kind=TimerKind.GHOST_FALLBACK, due_at=due), due, policy)
    (busy,) = [e for e in decision.effects if isinstance(e, SendNotice)]
    assert (busy.kind, busy.template) == (NoticeKind.BUSY, template)


def test_resolve_records_first_response_and_handling_times() -> None:
    state = queued(T0)
    state = decide(state, AgentSent(agent_id="a"), T0 + timedelta(minutes=2), Policy()).state
    done = decide(
        state, AgentResolved(agent_id="a", outcome="solved"), T0 + timedelta(minutes=10), Policy()
    )
    assert done.state.mode is Mode.BOT
    (resolved,) = [
        e for e in done.effects if isinstance(e, EmitEvent) and e.kind is AgentEventKind.RESOLVED
    ]
    assert (resolved.payload["first_response_seconds"], resolved.payload["handling_seconds"]) == (
        120,
        600,
    )


def test_least_loaded_then_least_recently_assigned() -> None:
    early, late = T0, T0 + timedelta(minutes=1)
    pool = [
        Candidate(agent_id="a", load=1, capacity=5, last_assigned_at=late),
        Candidate(agent_id="b", load=1, capacity=5, last_assigned_at=early),
        Candidate(agent_id="c", load=0, capacity=0),
    ]
    assert pick_agent(pool) == pool[1]
    assert pick_agent([Candidate(agent_id="x", load=2, capacity=2)]) is None
