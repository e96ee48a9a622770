"""Mode transitions of `decide`: echoes and owner commands, agents, bot handoff, hand-back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from baton.handoff import (
    AgentEventKind,
    AskBot,
    CancelBotRequest,
    CancelReason,
    CancelTimer,
    ConversationState,
    Decision,
    EmitEvent,
    HistoryMessageImported,
    IgnoreReason,
    NoticeKind,
    Policy,
    ScheduleTimer,
    SendNotice,
    SkipNotice,
    SkipReason,
    TimerKind,
    decide,
    new_conversation,
    next_timers,
)
from baton.types import Mode
from tests.unit.test_handoff_support import T0, Convo, notices, of_type


def mode_changes(decision: Decision) -> list[EmitEvent]:
    return [e for e in of_type(decision, EmitEvent) if e.kind is AgentEventKind.MODE_CHANGED]


def timer_kinds(convo: Convo) -> set[TimerKind]:
    return {timer.kind for timer in next_timers(convo.state, convo.policy)}


def flushed(convo: Convo) -> AskBot:
    (ask,) = of_type(convo.fire_when_due(TimerKind.DEBOUNCE), AskBot)
    return ask


# --- owner echoes (Coexistence) --------------------------------------------------------


def test_an_echo_of_our_own_api_send_is_not_a_takeover() -> None:
    convo = Convo()
    decision = convo.echo("Olá! Sou o assistente.", from_api=True)
    assert decision.ignored is IgnoreReason.API_ECHO
    assert convo.state == new_conversation(42, "900000000000001", "5511999990000")


def test_an_owner_echo_pauses_the_bot_for_the_pause_window() -> None:
    convo = Convo()
    convo.customer("oi")
    ask = flushed(convo)
    decision = convo.advance(seconds=2).echo("Oi! Aqui é a Ana, já te ajudo")
    state = convo.state
    assert state.mode is Mode.PAUSED
    assert state.epoch == 1
    assert state.paused_until == convo.now + timedelta(hours=2)
    assert state.last_human_at == convo.now
    assert state.waiting_since is None  # the owner just answered
    # The reply being generated loses its fence, and no notice: the owner's message is one.
    assert (
        CancelBotRequest(request_id=ask.request_id, reason=CancelReason.MODE_CHANGED)
        in decision.effects
    )
    assert notices(decision) == []
    assert ScheduleTimer(kind=TimerKind.PAUSE_EXPIRY, due_at=state.paused_until) in decision.effects
    (changed,) = mode_changes(decision)
    assert changed.payload["cause"] == "owner_echo"
    assert changed.payload["from"] == "bot"
    assert changed.payload["to"] == "paused"


def test_a_conversation_whose_first_message_is_an_echo_starts_paused() -> None:
    convo = Convo()
    convo.echo("Olá, tudo bem? Aqui é da loja")
    assert convo.state.mode is Mode.PAUSED
    assert convo.state.paused_until == T0 + timedelta(hours=2)
    decision = convo.advance(minutes=5).customer("oi! tudo sim")
    assert of_type(decision, AskBot) == []
    assert convo.state.buffer == ()


def test_each_echo_extends_the_pause() -> None:
    convo = Convo()
    convo.echo()
    convo.advance(minutes=30).echo("mais uma coisa")
    assert convo.state.paused_until == T0 + timedelta(minutes=30, hours=2)
    assert convo.state.epoch == 1  # still paused: no mode change, no new epoch


def test_an_echo_never_shortens_a_pause() -> None:
    convo = Convo()
    convo.echo("#pause 5h")
    assert convo.state.paused_until == T0 + timedelta(hours=5)
    decision = convo.advance(minutes=10).echo("Oi, estou aqui")
    assert convo.state.paused_until == T0 + timedelta(hours=5)
    assert of_type(decision, ScheduleTimer) == []


def test_pause_command_sets_the_pause_to_now_plus_its_duration() -> None:
    convo = Convo()
    decision = convo.at(60).echo("#pause 3h")
    assert convo.state.mode is Mode.PAUSED
    assert convo.state.paused_until == T0 + timedelta(seconds=60, hours=3)
    (changed,) = mode_changes(decision)
    assert changed.payload["cause"] == "owner_pause"


def test_pause_command_is_the_owners_intent_even_if_shorter() -> None:
    convo = Convo()
    convo.echo("#pause 1d")
    convo.advance(minutes=1).echo("#pause 30m")
    assert convo.state.paused_until == convo.now + timedelta(minutes=30)


def test_bare_pause_uses_the_pause_window_and_long_pauses_are_capped() -> None:
    convo = Convo(Policy(pause_window=timedelta(hours=4), max_pause=timedelta(days=7)))
    convo.echo("#pause")
    assert convo.state.paused_until == T0 + timedelta(hours=4)
    convo.echo("#pause 999999d")
    assert convo.state.paused_until == T0 + timedelta(days=7)


def test_pause_command_is_not_a_reply_so_the_customer_keeps_waiting() -> None:
    convo = Convo()
    convo.customer("oi")
    convo.advance(seconds=0.5).echo("#pause 1h")
    assert convo.state.mode is Mode.PAUSED
    assert convo.state.waiting_since == convo.now
    assert convo.state.last_human_at is None


@pytest.mark.parametrize("command", ["#bot", "#resume", "#BOT"])
def test_resume_command_returns_to_bot_at_once(command: str) -> None:
    convo = Convo()
    convo.echo()
    decision = convo.advance(minutes=3).echo(command)
    assert convo.state.mode is Mode.BOT
    assert convo.state.epoch == 2
    assert convo.state.paused_until is None
    assert CancelTimer(kind=TimerKind.PAUSE_EXPIRY) in decision.effects
    (changed,) = mode_changes(decision)
    assert changed.payload["cause"] == "owner_resume"
    convo.advance(seconds=1).customer("oi?")
    assert [m.text for m in flushed(convo).messages] == ["oi?"]


def test_resume_command_in_bot_mode_changes_no_mode() -> None:
    convo = Convo()
    decision = convo.echo("#bot")
    assert convo.state.mode is Mode.BOT
    assert convo.state.epoch == 0
    assert mode_changes(decision) == []


def test_resume_command_overrides_an_agent() -> None:
    convo = Convo()
    convo.take_over("agent-1")
    convo.echo("#resume")
    assert convo.state.mode is Mode.BOT
    assert convo.state.assignee is None


def test_a_command_with_extra_words_is_conversation() -> None:
    convo = Convo()
    convo.echo("#bot please")
    assert convo.state.mode is Mode.PAUSED


def test_a_media_echo_with_a_command_caption_is_conversation() -> None:
    convo = Convo()
    convo.echo("#bot", type="image")
    assert convo.state.mode is Mode.PAUSED


@pytest.mark.parametrize("kind", ["reaction", "revoke"])
def test_an_owner_reaction_or_deletion_is_not_a_takeover(kind: str) -> None:
    convo = Convo()
    convo.customer("oi")
    decision = convo.advance(seconds=0.5).echo("", type=kind)
    assert convo.state.mode is Mode.BOT
    assert [m.text for m in convo.state.buffer] == ["oi"]
    assert mode_changes(decision) == []


def test_an_owner_echo_while_an_agent_holds_gives_it_to_the_owner() -> None:
    convo = Convo()
    convo.take_over("agent-1")
    convo.advance(minutes=1).echo("deixa comigo")
    assert convo.state.mode is Mode.PAUSED
    assert convo.state.assignee is None
    assert convo.state.epoch == 2


# --- agents ----------------------------------------------------------------------------


def test_agent_takeover_fences_the_reply_in_flight_and_tells_the_customer() -> None:
    convo = Convo()
    convo.customer("quero falar com alguém")
    ask = flushed(convo)
    decision = convo.advance(seconds=1).take_over("agent-7")
    state = convo.state
    assert (state.mode, state.epoch, state.assignee) == (Mode.HUMAN, 1, "agent-7")
    assert state.waiting_since == convo.now  # the bot never answered that message
    assert (
        CancelBotRequest(request_id=ask.request_id, reason=CancelReason.MODE_CHANGED)
        in decision.effects
    )
    (notice,) = of_type(decision, SendNotice)
    assert notice.kind is NoticeKind.TAKEOVER
    assert notice.text == "Um atendente humano vai continuar esta conversa com você."
    assert notice.idempotency_key == "notice:42:1:takeover"
    assert state.takeover_notice_sent
    (changed,) = mode_changes(decision)
    assert changed.payload == {
        "from": "bot",
        "to": "human",
        "epoch": 1,
        "cause": "agent_takeover",
        "actor": "agent-7",
        "assignee": "agent-7",
        "reason": None,
        "summary": None,
        "paused_until": None,
    }


def test_takeover_of_an_idle_conversation_leaves_nobody_waiting() -> None:
    convo = Convo()
    convo.customer("oi")
    ask = flushed(convo)
    convo.advance(seconds=2).bot_replies(ask.request_id)
    convo.advance(minutes=1).take_over()
    assert convo.state.waiting_since is None


def test_takeover_notice_is_skipped_outside_the_customer_window() -> None:
    convo = Convo()
    convo.customer("oi")
    convo.advance(hours=25)
    decision = convo.take_over()
    assert of_type(decision, SkipNotice) == [
        SkipNotice(kind=NoticeKind.TAKEOVER, reason=SkipReason.CUSTOMER_WINDOW_CLOSED)
    ]
    assert not convo.state.takeover_notice_sent
    # The customer never heard of the takeover, so nothing to say when the bot is back.
    released = convo.release()
    assert notices(released) == []


def test_a_never_opened_window_means_no_notice() -> None:
    convo = Convo()
    decision = convo.take_over()
    assert of_type(decision, SkipNotice) == [
        SkipNotice(kind=NoticeKind.TAKEOVER, reason=SkipReason.CUSTOMER_WINDOW_CLOSED)
    ]


def test_disabled_notices_are_recorded_as_skipped() -> None:
    convo = Convo(Policy(notices_enabled=False))
    convo.customer("oi")
    decision = convo.take_over()
    assert of_type(decision, SkipNotice) == [
        SkipNotice(kind=NoticeKind.TAKEOVER, reason=SkipReason.DISABLED)
    ]
    assert of_type(decision, SendNotice) == []


def test_notices_use_the_numbers_language() -> None:
    convo = Convo(Policy.model_validate({"language": "en"}))
    convo.customer("hi")
    (notice,) = of_type(convo.take_over(), SendNotice)
    assert notice.text == "A human agent will continue this conversation with you."


def test_agent_release_returns_to_bot_and_says_so() -> None:
    convo = Convo()
    convo.customer("oi")
    convo.take_over("agent-1")
    decision = convo.advance(minutes=5).release("agent-1")
    state = convo.state
    assert (state.mode, state.epoch, state.assignee) == (Mode.BOT, 2, None)
    assert not state.takeover_notice_sent
    (notice,) = of_type(decision, SendNotice)
    assert notice.kind is NoticeKind.BACK_TO_BOT
    assert notice.idempotency_key == "notice:42:2:back_to_bot"
    assert CancelTimer(kind=TimerKind.HUMAN_INACTIVITY) in decision.effects


def test_release_when_the_bot_already_holds_it_is_ignored() -> None:
    convo = Convo()
    decision = convo.release()
    assert decision.ignored is IgnoreReason.ALREADY_BOT
    assert not decision.changed


def test_takeover_by_the_same_agent_is_ignored_and_another_agent_reassigns() -> None:
    convo = Convo()
    convo.take_over("agent-1")
    assert convo.take_over("agent-1").ignored is IgnoreReason.ALREADY_ASSIGNED
    decision = convo.advance(minutes=1).take_over("agent-2")
    assert convo.state.assignee == "agent-2"
    assert convo.state.epoch == 1  # same mode, same epoch
    (event,) = of_type(decision, EmitEvent)
    assert event.kind is AgentEventKind.ASSIGNEE_CHANGED
    assert event.payload == {
        "assignee": "agent-2",
        "previous": "agent-1",
        "actor": "agent-2",
        "cause": "takeover",
    }


def test_an_agent_writing_in_bot_mode_takes_over_without_a_notice() -> None:
    convo = Convo()
    convo.customer("oi")
    decision = convo.advance(seconds=0.5).agent_sends("agent-3")
    state = convo.state
    assert (state.mode, state.assignee, state.epoch) == (Mode.HUMAN, "agent-3", 1)
    assert state.waiting_since is None
    assert state.buffer == ()
    assert notices(decision) == []
    assert CancelTimer(kind=TimerKind.DEBOUNCE) in decision.effects


def test_an_agent_writing_while_paused_takes_over_from_the_owner() -> None:
    convo = Convo()
    convo.echo()
    convo.advance(minutes=1).agent_sends("agent-3")
    assert (convo.state.mode, convo.state.assignee, convo.state.paused_until) == (
        Mode.HUMAN,
        "agent-3",
        None,
    )


def test_agent_message_answers_the_waiting_customer() -> None:
    convo = Convo()
    convo.take_over("agent-1")
    convo.advance(minutes=1).customer("alô?")
    assert convo.state.waiting_since == convo.now
    decision = convo.advance(minutes=2).agent_sends("agent-1")
    assert convo.state.waiting_since is None
    assert convo.state.last_human_at == convo.now
    assert CancelTimer(kind=TimerKind.GHOST_FALLBACK) in decision.effects


def test_the_first_agent_to_answer_an_unassigned_handoff_claims_it() -> None:
    convo = Convo()
    convo.customer("oi")
    convo.bot_hands_off()
    decision = convo.advance(minutes=1).agent_sends("agent-9")
    assert convo.state.assignee == "agent-9"
    (event,) = of_type(decision, EmitEvent)
    assert event.kind is AgentEventKind.ASSIGNEE_CHANGED


# --- the bot asks for a human ----------------------------------------------------------


def test_bot_handoff_goes_to_an_unassigned_waiting_human() -> None:
    convo = Convo()
    convo.customer("quero cancelar meu pedido")
    flushed(convo)
    decision = convo.advance(seconds=3).bot_hands_off("cancellation")
    state = convo.state
    assert (state.mode, state.epoch, state.assignee) == (Mode.HUMAN, 1, None)
    assert state.waiting_since == convo.now
    assert (state.handoff_reason, state.handoff_summary) == ("cancellation", "order #123")
    assert state.pending_bot_request is None
    (notice,) = of_type(decision, SendNotice)
    assert notice.kind is NoticeKind.TAKEOVER
    (changed,) = mode_changes(decision)
    assert (changed.payload["cause"], changed.payload["reason"], changed.payload["summary"]) == (
        "bot_handoff",
        "cancellation",
        "order #123",
    )


def test_bot_handoff_under_an_old_epoch_is_ignored() -> None:
    convo = Convo()
    convo.take_over()
    convo.release()
    decision = convo.bot_hands_off(epoch=0)
    assert decision.ignored is IgnoreReason.STALE_EPOCH
    assert convo.state.mode is Mode.BOT


def test_bot_handoff_while_a_human_holds_it_is_ignored() -> None:
    convo = Convo()
    convo.take_over()
    assert convo.bot_hands_off().ignored is IgnoreReason.NOT_BOT_MODE


def test_handoff_details_are_cleared_when_the_bot_is_back() -> None:
    convo = Convo()
    convo.customer("oi")
    convo.bot_hands_off()
    convo.release()
    state = convo.state
    assert (state.handoff_reason, state.handoff_summary, state.waiting_since) == (None, None, None)
    assert not state.ghost_fallback_done


# --- customers while a human holds it, and the hand-back -------------------------------


def test_customer_messages_while_a_human_holds_it_never_reach_the_bot() -> None:
    convo = Convo()
    convo.take_over()
    first = convo.advance(minutes=1).customer("oi?")
    convo.advance(seconds=0.5).customer("alguém?")
    assert convo.state.buffer == ()
    assert convo.state.waiting_since == T0 + timedelta(minutes=1)  # the first one
    assert timer_kinds(convo) == {TimerKind.HUMAN_INACTIVITY, TimerKind.GHOST_FALLBACK}
    (waiting,) = of_type(first, EmitEvent)
    assert waiting.kind is AgentEventKind.CUSTOMER_WAITING
    assert waiting.payload["wamid"] == "wamid.C1"
    assert waiting.payload["mode"] == "human"


def test_after_hand_back_the_bot_answers_only_newer_messages() -> None:
    convo = Convo()
    convo.take_over()
    convo.advance(minutes=1).customer("meu pedido atrasou")
    handled_at = convo.now
    convo.advance(minutes=5).release()

    # A message written before the hand-back, delivered late, belongs to the human stretch.
    late = convo.advance(seconds=1).customer(
        "(enviada antes)", ts=handled_at - timedelta(seconds=5)
    )
    assert convo.state.buffer == ()
    assert of_type(late, ScheduleTimer) == []

    convo.customer("e agora, robô?")
    assert [m.text for m in flushed(convo).messages] == ["e agora, robô?"]


def test_messages_the_bot_owed_at_takeover_are_never_sent_to_it_later() -> None:
    convo = Convo()
    convo.customer("primeira", ts=T0)
    convo.advance(seconds=0.2).take_over()
    convo.advance(minutes=2).release()
    assert convo.state.answered_through == T0
    late = convo.customer("atrasada", ts=T0 - timedelta(seconds=1))
    assert late.changed and convo.state.buffer == ()


def test_same_second_message_after_hand_back_is_answered() -> None:
    # WhatsApp timestamps have 1 s resolution: a new message in the same second is not old.
    convo = Convo()
    convo.take_over()
    stamp = T0 + timedelta(seconds=10)
    convo.at(10).customer("a", ts=stamp)
    convo.at(10.4).release()
    convo.at(10.8).customer("b", ts=stamp)
    assert [m.text for m in convo.state.buffer] == ["b"]


# --- things that never change the mode -------------------------------------------------


@pytest.mark.parametrize("setup", ["bot", "human", "paused"])
def test_history_imports_never_change_anything(setup: str) -> None:
    convo = Convo()
    if setup == "human":
        convo.take_over()
    elif setup == "paused":
        convo.echo()
    before = convo.state
    for from_business in (False, True):
        decision = convo.send(
            HistoryMessageImported(
                wamid="wamid.H1", timestamp=T0 - timedelta(days=30), from_business=from_business
            )
        )
        assert decision.ignored is IgnoreReason.HISTORY_IMPORT
        assert convo.state == before


@pytest.mark.parametrize("kind", ["reaction", "revoke", "system"])
def test_non_conversational_customer_messages_never_leave_anyone_waiting(kind: str) -> None:
    convo = Convo()
    convo.take_over()
    decision = convo.customer("", type=kind)
    assert convo.state.waiting_since is None
    assert of_type(decision, EmitEvent) == []
    assert convo.state.customer_window_expires_at == T0 + timedelta(hours=24)


# --- bookkeeping -----------------------------------------------------------------------


def test_version_counts_state_changes_only() -> None:
    convo = Convo()
    assert convo.customer("oi").state.version == 1
    assert convo.customer("oi", wamid="wamid.C1").state.version == 1  # duplicate: ignored
    assert convo.fire(TimerKind.PAUSE_EXPIRY).state.version == 1  # not armed: ignored
    convo.advance(seconds=0.2).customer("tudo bem?")
    assert convo.state.version == 2


def test_the_window_follows_customer_messages_only() -> None:
    convo = Convo()
    convo.customer("oi", ts=T0 - timedelta(seconds=3))
    assert convo.state.customer_window_expires_at == T0 - timedelta(seconds=3) + timedelta(hours=24)
    convo.advance(hours=1).echo("resposta do dono")
    convo.agent_sends()
    assert convo.state.customer_window_expires_at == T0 - timedelta(seconds=3) + timedelta(hours=24)
    # A timestamp from the future (clock skew) opens the window from `now` only.
    convo.customer("do futuro", ts=convo.now + timedelta(minutes=10))
    assert convo.state.customer_window_expires_at == convo.now + timedelta(hours=24)


def test_state_survives_a_json_round_trip() -> None:
    convo = Convo()
    convo.customer("oi")
    flushed(convo)
    convo.advance(seconds=1).customer("?")
    convo.take_over()
    convo.customer("alô")
    for state in (convo.state, Convo().state):
        assert ConversationState.model_validate_json(state.model_dump_json()) == state


def test_decide_refuses_a_naive_clock() -> None:
    state = new_conversation(1, "pn", "wa")
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(
            state, HistoryMessageImported(wamid="w", timestamp=T0), datetime(2025, 1, 1), Policy()
        )


def test_state_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ConversationState(
            conversation_id=1, phone_number_id="p", wa_id="w", paused_until=datetime(2025, 1, 1)
        )
    assert ConversationState(
        conversation_id=1,
        phone_number_id="p",
        wa_id="w",
        paused_until=datetime(2025, 1, 1, tzinfo=UTC),
    ).paused_until
