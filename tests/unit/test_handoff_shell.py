"""The conversation shell's pure parts: per-number policy, effects → broker messages, metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from baton.broker import COMMANDS, EVENTS
from baton.conversations import (
    Conversations,
    held_by,
    not_held_by_other,
    outgoing,
    policy_for,
)
from baton.handoff import (
    AgentSent,
    AgentTookOver,
    CustomerWrote,
    Decision,
    EchoReceived,
    Language,
    NoticeKind,
    Policy,
    TimerFired,
    TimerKind,
    decide,
    new_conversation,
)
from baton.messages import (
    AskBot,
    AssigneeChanged,
    CustomerWaiting,
    ModeChanged,
    NoticeSkipped,
    SendText,
)
from baton.settings import NumbersConfig, NumberSettings
from baton.types import Author, Mode
from services.router.metrics import RouterMetrics

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POLICY = Policy()


def _wrote(text: str, at: datetime) -> CustomerWrote:
    return CustomerWrote(wamid=f"wamid.{text}", timestamp=at, text=text)


def test_a_numbers_settings_become_its_policy() -> None:
    policy = policy_for(
        NumberSettings(
            phone_number_id="1",
            language="en",
            bot_prefix="🤖",
            notices_enabled=True,
            notice_takeover="Ana here.",
            notice_busy="",
            debounce_quiet_seconds=0.5,
            debounce_cap_seconds=3,
            pause_seconds=60,
            human_inactivity_seconds=600,
            ghost_fallback_seconds=120,
            resume_commands=("#robo",),
            pause_command="#pausa",
        )
    )
    assert policy == Policy(
        debounce_quiet=timedelta(seconds=0.5),
        debounce_cap=timedelta(seconds=3),
        pause_window=timedelta(seconds=60),
        human_inactivity_timeout=timedelta(minutes=10),
        ghost_fallback_delay=timedelta(minutes=2),
        language=Language.EN,
        notice_texts={NoticeKind.TAKEOVER: "Ana here.", NoticeKind.BUSY: ""},
        bot_prefix="🤖",
        resume_words=("#robo",),
        pause_words=("#pausa",),
    )


def test_an_unconfigured_number_gets_the_default_policy() -> None:
    assert policy_for(NumberSettings(phone_number_id="1")) == Policy()


def test_a_pause_longer_than_a_month_raises_the_pause_cap() -> None:
    policy = policy_for(NumberSettings(phone_number_id="1", pause_seconds=60 * 86400))
    assert policy.max_pause == policy.pause_window == timedelta(days=60)


def test_an_inconsistent_number_fails_at_startup() -> None:
    numbers = NumbersConfig(
        numbers={
            "1": NumberSettings(
                phone_number_id="1", debounce_quiet_seconds=5, debounce_cap_seconds=1
            )
        }
    )
    with pytest.raises(ValidationError, match="debounce_cap"):
        Conversations(store=None, broker=None, numbers=numbers)  # type: ignore[arg-type]


def test_preconditions_for_agents() -> None:
    bot = new_conversation(1, "900", "55")
    held = bot.model_copy(update={"mode": Mode.HUMAN, "assignee": "ana", "epoch": 1})
    queued = held.model_copy(update={"assignee": None})
    assert not_held_by_other("bia")(bot)
    assert not_held_by_other("bia")(queued)
    assert not_held_by_other("ana")(held)
    assert not not_held_by_other("bia")(held)
    assert held_by("ana")(held)
    assert not held_by("bia")(held)
    assert not held_by("ana")(bot)


def _flushed() -> Decision:
    state = new_conversation(7, "900", "5511")
    for i, text in enumerate(["oi", "tudo bem?"]):
        state = decide(state, _wrote(text, T0 + timedelta(seconds=i)), T0, POLICY).state
    due = state.flush_due_at
    assert due is not None
    return decide(state, TimerFired(kind=TimerKind.DEBOUNCE, due_at=due), due, POLICY)


def test_a_flush_is_one_bot_command_named_by_its_request() -> None:
    decision = _flushed()
    [message] = outgoing(decision.state, decision.effects, T0)
    assert (message.exchange, message.routing_key) == (COMMANDS, AskBot.TYPE)
    ask = AskBot.model_validate_json(message.body)
    assert message.message_id == ask.request_id == decision.state.current_request_id
    assert (ask.conversation_id, ask.phone_number_id, ask.wa_id) == (7, "900", "5511")
    assert [m.text for m in ask.messages] == ["oi", "tudo bem?"]


def test_a_takeover_is_an_event_and_a_notice_and_nothing_for_the_cancel() -> None:
    in_flight = _flushed().state
    now = T0 + timedelta(seconds=5)
    decision = decide(in_flight, AgentTookOver(agent_id="ana"), now, POLICY)
    messages = outgoing(decision.state, decision.effects, now)

    assert [m.type for m in messages] == [ModeChanged.TYPE, SendText.TYPE]
    event, notice = messages
    assert event.exchange == EVENTS
    changed = ModeChanged.model_validate_json(event.body)
    assert (changed.from_mode, changed.to_mode, changed.epoch, changed.actor) == (
        Mode.BOT,
        Mode.HUMAN,
        1,
        "ana",
    )
    assert changed.at == now
    text = SendText.model_validate_json(notice.body)
    assert text.author is Author.SYSTEM
    assert notice.message_id == text.idempotency_key
    # Deterministic ids: a decision retried after a crash publishes the same messages.
    assert outgoing(decision.state, decision.effects, now) == messages
    assert event.message_id.startswith(f"7:{decision.state.version}:")


def test_agent_events_carry_their_payload() -> None:
    held = decide(
        new_conversation(7, "900", "5511").model_copy(
            update={"customer_window_expires_at": T0 + timedelta(hours=1)}
        ),
        AgentTookOver(agent_id="ana"),
        T0,
        POLICY,
    ).state
    waiting = decide(held, _wrote("alô?", T0), T0 + timedelta(seconds=1), POLICY)
    [message] = outgoing(waiting.state, waiting.effects, T0)
    customer = CustomerWaiting.model_validate_json(message.body)
    assert (customer.mode, customer.assignee, customer.wamid) == (Mode.HUMAN, "ana", "wamid.alô?")

    moved = decide(held, AgentTookOver(agent_id="bia"), T0, POLICY)
    [message] = outgoing(moved.state, moved.effects, T0)
    assigned = AssigneeChanged.model_validate_json(message.body)
    assert (assigned.assignee, assigned.previous) == ("bia", "ana")


def test_a_skipped_notice_is_announced() -> None:
    # The customer never wrote: the 24 h window is closed, so the takeover notice is skipped.
    decision = decide(new_conversation(7, "900", "5511"), AgentTookOver(agent_id="ana"), T0, POLICY)
    skipped = [
        m for m in outgoing(decision.state, decision.effects, T0) if m.type == NoticeSkipped.TYPE
    ]
    [notice] = [NoticeSkipped.model_validate_json(m.body) for m in skipped]
    assert (notice.kind, notice.reason) == ("takeover", "customer_window_closed")


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_router_metrics_count_what_decisions_did() -> None:
    metrics = RouterMetrics()
    before_batches = _sample("baton_router_debounce_batch_messages_count")
    before_handoffs = _sample(
        "baton_handoffs_total", reason="owner_echo", direction="bot_to_paused"
    )
    before_response = _sample("baton_human_first_response_seconds_count")

    flushed = _flushed()
    metrics.observe(flushed.state, TimerFired(kind=TimerKind.DEBOUNCE, due_at=T0), flushed, T0)
    assert _sample("baton_router_debounce_batch_messages_count") == before_batches + 1

    echo = EchoReceived(wamid="wamid.e", timestamp=T0, text="Oi!")
    paused = decide(flushed.state, echo, T0, POLICY)
    metrics.observe(flushed.state, echo, paused, T0)
    assert (
        _sample("baton_handoffs_total", reason="owner_echo", direction="bot_to_paused")
        == before_handoffs + 1
    )

    held = decide(paused.state, AgentTookOver(agent_id="ana"), T0, POLICY).state
    waiting = decide(held, _wrote("alô?", T0), T0, POLICY).state
    answer = AgentSent(agent_id="ana")
    answered = decide(waiting, answer, T0 + timedelta(seconds=42), POLICY)
    metrics.observe(waiting, answer, answered, T0 + timedelta(seconds=42))
    assert _sample("baton_human_first_response_seconds_count") == before_response + 1
