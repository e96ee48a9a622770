"""Shared driver for the handoff tests: a conversation, a manual clock, and `decide` (no tests here)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from baton.handoff import (
    AgentReleased,
    AgentSent,
    AgentTookOver,
    BotReplied,
    BotRequestedHandoff,
    ConversationState,
    CustomerWrote,
    Decision,
    EchoReceived,
    Effect,
    Event,
    Policy,
    SendNotice,
    SkipNotice,
    TimerFired,
    TimerKind,
    decide,
    new_conversation,
    timer_due,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
E = TypeVar("E", bound=Effect)


def of_type(decision: Decision, kind: type[E]) -> list[E]:
    return [effect for effect in decision.effects if isinstance(effect, kind)]


def notices(decision: Decision) -> list[SendNotice | SkipNotice]:
    """Every notice sent or skipped by a decision."""
    return [e for e in decision.effects if isinstance(e, SendNotice | SkipNotice)]


class Convo:
    """One conversation driven through `decide` with a clock the test moves by hand."""

    def __init__(self, policy: Policy | None = None, state: ConversationState | None = None):
        self.policy = policy or Policy()
        self.state = state or new_conversation(42, "900000000000001", "5511999990000")
        self.now = T0
        self._ids = itertools.count(1)

    def at(self, seconds: float) -> Convo:
        self.now = T0 + timedelta(seconds=seconds)
        return self

    def advance(self, **delta: float) -> Convo:
        self.now += timedelta(**delta)
        return self

    def send(self, event: Event) -> Decision:
        decision = decide(self.state, event, self.now, self.policy)
        self.state = decision.state
        return decision

    def customer(
        self,
        text: str = "oi",
        *,
        type: str = "text",
        wamid: str | None = None,
        ts: datetime | None = None,
    ) -> Decision:
        wamid = wamid or f"wamid.C{next(self._ids)}"
        return self.send(CustomerWrote(wamid=wamid, timestamp=ts or self.now, type=type, text=text))

    def echo(
        self, text: str = "Oi, aqui é a Ana", *, from_api: bool = False, type: str = "text"
    ) -> Decision:
        wamid = f"wamid.E{next(self._ids)}"
        return self.send(
            EchoReceived(wamid=wamid, timestamp=self.now, text=text, from_api=from_api, type=type)
        )

    def take_over(self, agent: str = "agent-1") -> Decision:
        return self.send(AgentTookOver(agent_id=agent))

    def release(self, agent: str = "agent-1") -> Decision:
        return self.send(AgentReleased(agent_id=agent))

    def agent_sends(self, agent: str = "agent-1") -> Decision:
        return self.send(AgentSent(agent_id=agent))

    def bot_hands_off(
        self, reason: str = "customer asked for a human", epoch: int | None = None
    ) -> Decision:
        epoch = self.state.epoch if epoch is None else epoch
        return self.send(BotRequestedHandoff(epoch=epoch, reason=reason, summary="order #123"))

    def bot_replies(self, request_id: str, epoch: int | None = None, count: int = 1) -> Decision:
        epoch = self.state.epoch if epoch is None else epoch
        return self.send(BotReplied(request_id=request_id, epoch=epoch, reply_count=count))

    def fire(self, kind: TimerKind) -> Decision:
        """Fire a timer now, as a sweeper would with whatever due time it had stored."""
        due = timer_due(self.state, self.policy, kind) or self.now
        return self.send(TimerFired(kind=kind, due_at=due))

    def fire_when_due(self, kind: TimerKind) -> Decision:
        """Move the clock to the timer's due time and fire it."""
        due = timer_due(self.state, self.policy, kind)
        assert due is not None, f"{kind} is not armed"
        self.now = max(self.now, due)
        return self.send(TimerFired(kind=kind, due_at=due))
