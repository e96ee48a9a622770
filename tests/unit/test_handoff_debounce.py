"""Debounce (one burst, one AskBot), supersede, and the outbox fence on bot replies."""

from __future__ import annotations

from datetime import timedelta

from baton.handoff import (
    AskBot,
    CancelBotRequest,
    CancelReason,
    CancelTimer,
    FenceReason,
    IgnoreReason,
    Policy,
    ScheduleTimer,
    TimerKind,
    is_bot_reply_current,
    may_send_bot_reply,
    may_send_external_bot_message,
    timer_due,
)
from baton.handoff.state import ANSWERED_REQUESTS_KEPT
from baton.types import Mode
from tests.unit.test_handoff_support import T0, Convo, of_type


def asked(convo: Convo) -> AskBot:
    """Flush the burst when due and return its one AskBot."""
    decision = convo.fire_when_due(TimerKind.DEBOUNCE)
    (ask,) = of_type(decision, AskBot)
    return ask


def test_a_customer_message_is_buffered_not_sent() -> None:
    convo = Convo()
    decision = convo.customer("oi")
    assert of_type(decision, AskBot) == []
    assert [m.wamid for m in convo.state.buffer] == ["wamid.C1"]
    assert of_type(decision, ScheduleTimer) == [
        ScheduleTimer(kind=TimerKind.DEBOUNCE, due_at=T0 + timedelta(seconds=1))
    ]


def test_the_flush_sends_one_askbot_with_the_whole_burst_in_order() -> None:
    convo = Convo()
    convo.customer("oi")
    convo.advance(seconds=0.3).customer("tudo bem?")
    convo.advance(seconds=0.3).customer("quero trocar um produto")
    decision = convo.fire_when_due(TimerKind.DEBOUNCE)
    (ask,) = of_type(decision, AskBot)
    assert [m.text for m in ask.messages] == ["oi", "tudo bem?", "quero trocar um produto"]
    assert ask.epoch == convo.state.epoch == 0
    assert convo.now == T0 + timedelta(seconds=1.6)
    assert convo.state.buffer == ()
    assert convo.state.pending_bot_request is not None
    assert convo.state.pending_bot_request.request_id == ask.request_id
    assert CancelTimer(kind=TimerKind.DEBOUNCE) in decision.effects


def test_quiet_window_slides_until_the_cap() -> None:
    convo = Convo()
    dues = []
    for step in range(10):  # t = 0, 0.5, ..., 4.5
        convo.at(step * 0.5).customer(f"parte {step}")
        dues.append(convo.state.flush_due_at)
    expected = [T0 + timedelta(seconds=min(step * 0.5 + 1, 5)) for step in range(10)]
    assert dues == expected
    early = convo.at(4.99).fire(TimerKind.DEBOUNCE)
    assert early.ignored is IgnoreReason.TIMER_NOT_DUE
    assert of_type(early, AskBot) == []
    ask = asked(convo)
    assert convo.now == T0 + timedelta(seconds=5)
    assert len(ask.messages) == 10


def test_a_quiet_customer_is_answered_after_the_quiet_window() -> None:
    convo = Convo()
    convo.customer("oi")
    convo.at(0.5).customer("preciso de ajuda")
    assert convo.state.flush_due_at == T0 + timedelta(seconds=1.5)


def test_one_burst_one_request_even_if_the_timer_fires_twice() -> None:
    convo = Convo()
    convo.customer("oi")
    first = convo.fire_when_due(TimerKind.DEBOUNCE)
    again = convo.fire(TimerKind.DEBOUNCE)
    assert len(of_type(first, AskBot)) == 1
    assert again.ignored is IgnoreReason.TIMER_NOT_ARMED
    assert again.effects == ()
    assert again.state == first.state


def test_buffer_is_kept_in_whatsapp_timestamp_order() -> None:
    convo = Convo()
    convo.at(2).customer("segunda", ts=T0 + timedelta(seconds=1))
    convo.customer("primeira", ts=T0)
    convo.customer("terceira", ts=T0 + timedelta(seconds=1))  # same second: arrival order
    assert [m.text for m in asked(convo).messages] == ["primeira", "segunda", "terceira"]


def test_a_message_already_in_the_lane_is_ignored() -> None:
    convo = Convo()
    convo.customer("oi", wamid="wamid.X")
    again = convo.customer("oi", wamid="wamid.X")
    assert again.ignored is IgnoreReason.DUPLICATE_MESSAGE
    asked(convo)
    in_flight = convo.customer("oi", wamid="wamid.X")
    assert in_flight.ignored is IgnoreReason.DUPLICATE_MESSAGE


def test_reactions_keep_the_window_open_but_never_reach_the_bot() -> None:
    convo = Convo()
    decision = convo.customer("👍", type="reaction")
    assert convo.state.buffer == ()
    assert timer_due(convo.state, convo.policy, TimerKind.DEBOUNCE) is None
    assert of_type(decision, ScheduleTimer) == []
    assert convo.state.customer_window_expires_at == T0 + timedelta(hours=24)
    assert convo.state.last_customer_at == T0


def test_superseded_request_is_fenced_and_the_next_one_covers_everything() -> None:
    convo = Convo()
    convo.customer("oi")
    first = asked(convo)
    assert is_bot_reply_current(convo.state, first.request_id, first.epoch)

    decision = convo.advance(seconds=2).customer("e o meu pedido?")
    assert of_type(decision, CancelBotRequest) == [
        CancelBotRequest(request_id=first.request_id, reason=CancelReason.SUPERSEDED)
    ]
    assert convo.state.pending_bot_request is None
    assert may_send_bot_reply(convo.state, first.epoch, first.request_id) == (
        False,
        FenceReason.SUPERSEDED,
    )
    late = convo.bot_replies(first.request_id, epoch=first.epoch)
    assert late.ignored is IgnoreReason.STALE_REPLY

    second = asked(convo)
    assert [m.text for m in second.messages] == ["oi", "e o meu pedido?"]
    assert second.request_id != first.request_id
    assert second.epoch == first.epoch  # supersede is not a mode change
    assert is_bot_reply_current(convo.state, second.request_id, second.epoch)
    assert not is_bot_reply_current(convo.state, first.request_id, first.epoch)


def test_an_answered_reply_still_queued_in_outbox_survives_the_next_flush() -> None:
    # Pair pacing or a throughput pause can keep the answer to the first question in outbox
    # until after the next burst is flushed; it answers what the next request no longer holds.
    convo = Convo()
    convo.customer("qual o horário?")
    first = asked(convo)
    convo.advance(seconds=1).bot_replies(first.request_id)
    convo.advance(seconds=2).customer("e aos sábados?")
    second = asked(convo)
    assert [m.text for m in second.messages] == ["e aos sábados?"]
    assert is_bot_reply_current(convo.state, first.request_id, first.epoch)
    assert is_bot_reply_current(convo.state, second.request_id, second.epoch)

    convo.advance(seconds=1).customer("e domingo?")  # supersedes the second, not the first
    assert may_send_bot_reply(convo.state, second.epoch, second.request_id) == (
        False,
        FenceReason.SUPERSEDED,
    )
    assert is_bot_reply_current(convo.state, first.request_id, first.epoch)

    convo.take_over()
    assert may_send_bot_reply(convo.state, first.epoch, first.request_id) == (
        False,
        FenceReason.NOT_BOT_MODE,
    )
    assert convo.state.answered_request_ids == ()


def test_only_the_last_answered_requests_stay_sendable() -> None:
    convo = Convo()
    asks = []
    for turn in range(ANSWERED_REQUESTS_KEPT + 2):
        convo.advance(seconds=10).customer(f"pergunta {turn}")
        ask = asked(convo)
        convo.advance(seconds=1).bot_replies(ask.request_id)
        asks.append(ask)
    sendable = [a for a in asks if is_bot_reply_current(convo.state, a.request_id, a.epoch)]
    assert sendable == asks[-(ANSWERED_REQUESTS_KEPT + 1) :]


def test_external_bots_are_fenced_by_mode_and_epoch() -> None:
    convo = Convo()
    epoch = convo.state.epoch
    assert may_send_external_bot_message(convo.state, epoch) == (True, FenceReason.CURRENT)
    assert may_send_external_bot_message(convo.state, None) == (False, FenceReason.MISSING_FENCE)
    assert may_send_external_bot_message(convo.state, epoch + 1) == (
        False,
        FenceReason.STALE_EPOCH,
    )
    convo.take_over()
    assert may_send_external_bot_message(convo.state, convo.state.epoch) == (
        False,
        FenceReason.NOT_BOT_MODE,
    )
    convo.release()
    assert may_send_external_bot_message(convo.state, epoch) == (False, FenceReason.STALE_EPOCH)


def test_supersede_restarts_the_debounce_window_from_the_new_message() -> None:
    convo = Convo()
    convo.customer("oi")
    asked(convo)
    convo.advance(seconds=10).customer("?")
    assert convo.state.first_buffered_at == convo.now
    assert convo.state.flush_due_at == convo.now + timedelta(seconds=1)


def test_after_the_reply_the_next_message_starts_a_new_burst() -> None:
    convo = Convo()
    convo.customer("oi")
    first = asked(convo)
    replied = convo.advance(seconds=3).bot_replies(first.request_id)
    assert replied.changed
    assert convo.state.pending_bot_request is None
    assert convo.state.last_bot_at == convo.now
    # Replies still on their way to outbox pass the fence after the router saw BotReplied.
    assert is_bot_reply_current(convo.state, first.request_id, first.epoch)

    decision = convo.advance(seconds=5).customer("obrigado")
    assert of_type(decision, CancelBotRequest) == []
    assert [m.text for m in asked(convo).messages] == ["obrigado"]


def test_an_empty_reply_still_answers_the_burst() -> None:
    convo = Convo()
    convo.customer("ok")
    first = asked(convo)
    convo.advance(seconds=2).bot_replies(first.request_id, count=0)
    assert convo.state.pending_bot_request is None
    assert convo.state.last_bot_at is None
    convo.advance(seconds=5).customer("?")
    assert [m.text for m in asked(convo).messages] == ["?"]


def test_reply_with_wrong_epoch_or_unknown_request_is_ignored() -> None:
    convo = Convo()
    convo.customer("oi")
    first = asked(convo)
    assert (
        convo.bot_replies(first.request_id, epoch=first.epoch + 1).ignored
        is IgnoreReason.STALE_REPLY
    )
    assert convo.bot_replies("42-0-99").ignored is IgnoreReason.STALE_REPLY
    assert convo.state.pending_bot_request is not None


def test_request_ids_are_deterministic_and_unique() -> None:
    convo = Convo()
    ids = []
    for _ in range(3):
        convo.advance(seconds=10).customer("oi")
        ids.append(asked(convo).request_id)
    assert ids == ["42-0-1", "42-0-2", "42-0-3"]


def test_fence_reasons() -> None:
    convo = Convo()
    convo.customer("oi")
    ask = asked(convo)
    state = convo.state
    assert may_send_bot_reply(state, ask.epoch, ask.request_id) == (True, FenceReason.CURRENT)
    assert may_send_bot_reply(state, None, ask.request_id) == (False, FenceReason.MISSING_FENCE)
    assert may_send_bot_reply(state, ask.epoch, None) == (False, FenceReason.MISSING_FENCE)
    assert may_send_bot_reply(state, ask.epoch - 1, ask.request_id) == (
        False,
        FenceReason.STALE_EPOCH,
    )
    assert may_send_bot_reply(state, ask.epoch, "other") == (False, FenceReason.SUPERSEDED)

    convo.take_over()
    assert convo.state.mode is Mode.HUMAN
    assert may_send_bot_reply(convo.state, ask.epoch, ask.request_id) == (
        False,
        FenceReason.NOT_BOT_MODE,
    )
    convo.release()
    # Back in bot mode, but the old request was made under an older epoch.
    assert may_send_bot_reply(convo.state, ask.epoch, ask.request_id) == (
        False,
        FenceReason.STALE_EPOCH,
    )
    assert not is_bot_reply_current(convo.state, ask.request_id, convo.state.epoch)


def test_custom_debounce_settings() -> None:
    convo = Convo(
        Policy(debounce_quiet=timedelta(milliseconds=500), debounce_cap=timedelta(seconds=2))
    )
    for step in range(5):  # t = 0, 0.4, 0.8, 1.2, 1.6
        convo.at(step * 0.4).customer(str(step))
    assert convo.state.flush_due_at == T0 + timedelta(seconds=2)
