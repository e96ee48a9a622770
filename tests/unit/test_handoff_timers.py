"""Timers: pause expiry, human inactivity, the ghost fallback, and stale timers as no-ops."""

from __future__ import annotations

from datetime import timedelta

import pytest

from baton.handoff import (
    CancelTimer,
    IgnoreReason,
    NoticeKind,
    Policy,
    ScheduleTimer,
    SendNotice,
    SkipNotice,
    SkipReason,
    Timer,
    TimerFired,
    TimerKind,
    next_timers,
    timer_due,
)
from baton.types import Mode
from tests.unit.test_handoff_support import T0, Convo, notices, of_type

# --- pause expiry ----------------------------------------------------------------------


def test_pause_expiry_returns_to_bot() -> None:
    convo = Convo()
    convo.echo()
    decision = convo.fire_when_due(TimerKind.PAUSE_EXPIRY)
    assert convo.now == T0 + timedelta(hours=2)
    assert (convo.state.mode, convo.state.epoch, convo.state.paused_until) == (Mode.BOT, 2, None)
    assert CancelTimer(kind=TimerKind.PAUSE_EXPIRY) in decision.effects
    # The customer was never told about the owner, so no back-to-bot notice either.
    assert notices(decision) == []


def test_a_pause_timer_stored_before_an_extension_is_a_no_op() -> None:
    convo = Convo()
    convo.echo()
    first_due = timer_due(convo.state, convo.policy, TimerKind.PAUSE_EXPIRY)
    assert first_due is not None
    extended = convo.advance(hours=1).echo("ainda aqui")
    assert of_type(extended, ScheduleTimer) == [
        ScheduleTimer(kind=TimerKind.PAUSE_EXPIRY, due_at=T0 + timedelta(hours=3))
    ]
    convo.now = first_due
    stale = convo.send(TimerFired(kind=TimerKind.PAUSE_EXPIRY, due_at=first_due))
    assert stale.ignored is IgnoreReason.TIMER_NOT_DUE
    assert convo.state.mode is Mode.PAUSED


def test_pause_expiry_after_an_agent_took_over_says_the_bot_is_back() -> None:
    convo = Convo()
    convo.customer("oi")
    convo.take_over()  # the customer is told a human took over
    convo.advance(minutes=1).echo("aqui é o dono")  # the owner takes it from the agent
    decision = convo.fire_when_due(TimerKind.PAUSE_EXPIRY)
    (notice,) = of_type(decision, SendNotice)
    assert notice.kind is NoticeKind.BACK_TO_BOT


# --- human inactivity ------------------------------------------------------------------


def test_human_inactivity_returns_to_bot() -> None:
    convo = Convo()
    convo.customer("oi")
    convo.take_over()
    decision = convo.fire_when_due(TimerKind.HUMAN_INACTIVITY)
    assert convo.now == T0 + timedelta(minutes=30)
    assert (convo.state.mode, convo.state.epoch, convo.state.assignee) == (Mode.BOT, 2, None)
    (notice,) = of_type(decision, SendNotice)
    assert notice.kind is NoticeKind.BACK_TO_BOT


def test_every_human_action_restarts_the_inactivity_clock() -> None:
    convo = Convo()
    convo.take_over()
    convo.advance(minutes=20).agent_sends()
    convo.at(30 * 60)
    assert convo.fire(TimerKind.HUMAN_INACTIVITY).ignored is IgnoreReason.TIMER_NOT_DUE
    assert timer_due(convo.state, convo.policy, TimerKind.HUMAN_INACTIVITY) == T0 + timedelta(
        minutes=50
    )
    convo.at(45 * 60).take_over("agent-2")  # a new agent claims it
    assert timer_due(convo.state, convo.policy, TimerKind.HUMAN_INACTIVITY) == T0 + timedelta(
        minutes=75
    )


def test_customer_messages_do_not_keep_a_silent_human_holding() -> None:
    convo = Convo()
    convo.take_over()
    for minute in (10, 20, 29):
        convo.at(minute * 60).customer("alô?")
    convo.fire_when_due(TimerKind.HUMAN_INACTIVITY)
    assert convo.now == T0 + timedelta(minutes=30)
    assert convo.state.mode is Mode.BOT


def test_unassigned_handoff_counts_inactivity_from_the_handoff() -> None:
    convo = Convo()
    convo.customer("oi")
    convo.at(5).bot_hands_off()
    assert timer_due(convo.state, convo.policy, TimerKind.HUMAN_INACTIVITY) == T0 + timedelta(
        minutes=30, seconds=5
    )


# --- ghost fallback --------------------------------------------------------------------


def test_ghost_fallback_sends_one_busy_notice_per_handoff() -> None:
    convo = Convo()
    convo.take_over()
    convo.advance(minutes=1).customer("oi?")
    decision = convo.fire_when_due(TimerKind.GHOST_FALLBACK)
    assert convo.now == T0 + timedelta(minutes=16)
    (busy,) = of_type(decision, SendNotice)
    assert busy.kind is NoticeKind.BUSY
    assert busy.text.startswith("Nossos atendentes estão ocupados")
    assert convo.state.ghost_fallback_done
    assert CancelTimer(kind=TimerKind.GHOST_FALLBACK) in decision.effects

    convo.advance(minutes=1).agent_sends()
    convo.advance(minutes=1).customer("e aí?")
    assert timer_due(convo.state, convo.policy, TimerKind.GHOST_FALLBACK) is None
    assert (
        convo.advance(minutes=20).fire(TimerKind.GHOST_FALLBACK).ignored
        is IgnoreReason.TIMER_NOT_ARMED
    )


def test_a_new_handoff_gets_its_own_busy_notice() -> None:
    convo = Convo()
    convo.take_over()
    convo.customer("oi?")
    convo.fire_when_due(TimerKind.GHOST_FALLBACK)
    convo.release()
    convo.advance(minutes=1).echo("oi, sou eu")
    convo.advance(minutes=1).customer("oi!")
    (busy,) = of_type(convo.fire_when_due(TimerKind.GHOST_FALLBACK), SendNotice)
    assert busy.kind is NoticeKind.BUSY
    assert busy.idempotency_key == "notice:42:3:busy"


def test_ghost_fallback_also_covers_the_owner_on_the_phone() -> None:
    convo = Convo()
    convo.echo()
    convo.advance(minutes=5).customer("você está aí?")
    (busy,) = of_type(convo.fire_when_due(TimerKind.GHOST_FALLBACK), SendNotice)
    assert busy.kind is NoticeKind.BUSY
    assert convo.state.mode is Mode.PAUSED  # the busy notice is not a mode change


def test_a_human_answer_before_the_delay_prevents_the_busy_notice() -> None:
    convo = Convo()
    convo.echo()
    convo.advance(minutes=1).customer("oi?")
    due = timer_due(convo.state, convo.policy, TimerKind.GHOST_FALLBACK)
    assert due is not None
    convo.advance(minutes=10).echo("já respondo")
    convo.now = due
    stale = convo.send(TimerFired(kind=TimerKind.GHOST_FALLBACK, due_at=due))
    assert stale.ignored is IgnoreReason.TIMER_NOT_ARMED


def test_ghost_fallback_is_skipped_when_the_window_is_closed() -> None:
    convo = Convo()
    convo.customer("oi")  # opens the window until T0 + 24 h
    convo.fire_when_due(TimerKind.DEBOUNCE)
    convo.at(23 * 3600 + 55 * 60).take_over()  # the bot never answered: customer waiting
    decision = convo.fire_when_due(TimerKind.GHOST_FALLBACK)
    assert convo.now == T0 + timedelta(hours=24, minutes=10)
    assert of_type(decision, SendNotice) == []
    assert of_type(decision, SkipNotice) == [
        SkipNotice(kind=NoticeKind.BUSY, reason=SkipReason.CUSTOMER_WINDOW_CLOSED)
    ]
    assert convo.state.ghost_fallback_done  # decided once: the timer does not come back
    assert timer_due(convo.state, convo.policy, TimerKind.GHOST_FALLBACK) is None


def test_ghost_fallback_with_notices_disabled_is_recorded() -> None:
    convo = Convo(Policy(notice_texts={NoticeKind.BUSY: ""}))
    convo.take_over()
    convo.customer("oi?")
    decision = convo.fire_when_due(TimerKind.GHOST_FALLBACK)
    assert of_type(decision, SkipNotice) == [
        SkipNotice(kind=NoticeKind.BUSY, reason=SkipReason.DISABLED)
    ]


def test_ghost_delay_is_configurable() -> None:
    convo = Convo(Policy(ghost_fallback_delay=timedelta(minutes=5)))
    convo.take_over()
    convo.customer("oi?")
    assert timer_due(convo.state, convo.policy, TimerKind.GHOST_FALLBACK) == T0 + timedelta(
        minutes=5
    )


# --- stale timers and the timer table --------------------------------------------------


@pytest.mark.parametrize("kind", list(TimerKind))
def test_timers_of_a_fresh_conversation_are_not_armed(kind: TimerKind) -> None:
    convo = Convo()
    decision = convo.advance(days=1).fire(kind)
    assert decision.ignored is IgnoreReason.TIMER_NOT_ARMED
    assert decision.effects == ()
    assert not decision.changed


def test_debounce_timer_after_a_takeover_is_a_no_op() -> None:
    convo = Convo()
    convo.customer("oi")
    due = timer_due(convo.state, convo.policy, TimerKind.DEBOUNCE)
    assert due is not None
    convo.advance(seconds=0.5).take_over()
    convo.now = due
    assert (
        convo.send(TimerFired(kind=TimerKind.DEBOUNCE, due_at=due)).ignored
        is IgnoreReason.TIMER_NOT_ARMED
    )


def test_inactivity_timer_after_release_is_a_no_op() -> None:
    convo = Convo()
    convo.take_over()
    convo.release()
    assert (
        convo.advance(hours=1).fire(TimerKind.HUMAN_INACTIVITY).ignored
        is IgnoreReason.TIMER_NOT_ARMED
    )
    assert convo.state.mode is Mode.BOT


def test_next_timers_lists_what_is_armed() -> None:
    convo = Convo()
    assert next_timers(convo.state, convo.policy) == ()
    convo.customer("oi")
    assert next_timers(convo.state, convo.policy) == (
        Timer(kind=TimerKind.DEBOUNCE, due_at=T0 + timedelta(seconds=1)),
    )
    convo.echo()
    convo.advance(minutes=1).customer("oi?")
    assert next_timers(convo.state, convo.policy) == (
        Timer(kind=TimerKind.PAUSE_EXPIRY, due_at=T0 + timedelta(hours=2)),
        Timer(kind=TimerKind.GHOST_FALLBACK, due_at=T0 + timedelta(minutes=16)),
    )
    convo.agent_sends()
    assert next_timers(convo.state, convo.policy) == (
        Timer(kind=TimerKind.HUMAN_INACTIVITY, due_at=convo.now + timedelta(minutes=30)),
    )
