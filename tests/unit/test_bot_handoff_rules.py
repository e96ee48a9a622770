from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baton.types import Author
from services.bot.handoff_rules import (
    DEFAULT_HANDOFF_PHRASES,
    FILLERS,
    asks_for_human,
    is_unanswered_reply,
    too_many_failures,
    unanswered_streak,
)
from services.bot.texts import EN, ES, PT_BR
from services.bot.types import Turn

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def asks(text: str) -> bool:
    return asks_for_human([text], DEFAULT_HANDOFF_PHRASES) is not None


@pytest.mark.parametrize(
    "text",
    [
        # pt
        "Quero falar com um atendente",
        "quero falar com atendente, por favor",
        "ATENDENTE",
        "atendente!!",
        "Atendente por favor",
        "quero um humano",
        "Humano",
        "preciso de um atendente agora",
        "Isso não resolve, quero uma pessoa de verdade",
        "tem algum atendente disponível?",
        "atendimento humano",
        "não quero falar com robô",
        "Não quero falar com robo",
        "me transfere pra alguém",
        "posso falar com alguém?",
        # es
        "Quiero hablar con un agente",
        "agente",
        "Necesito hablar con una persona real",
        "¿Puedo hablar con un asesor?",
        "quiero un humano por favor",
        # en
        "Can I talk to a human?",
        "I want to speak to a real person",
        "agent",
        "Agent please",
        "representative",
        "let me speak to someone",
        "I need a live agent",
        "I don't want to talk to a bot",
    ],
)
def test_requests_for_a_person_hand_off(text: str) -> None:
    assert asks(text)


@pytest.mark.parametrize(
    "text",
    [
        "Trabalho com agentes de viagem",
        "o atendente da loja foi muito grosseiro comigo ontem",
        "the agent at the store was rude to me yesterday",
        "human resources",
        "Você é humano?",
        "não quero falar com atendente, só quero saber o preço",
        "I don't want to talk to a human, just tell me the price",
        "no quiero hablar con un agente, solo dime el precio",
        "Quanto custa o frete para São Paulo?",
        "My package has not arrived yet",
        "necesito cambiar la dirección de entrega",
        "agenda",
        "reagente químico",
        "",
    ],
)
def test_ordinary_messages_do_not_hand_off(text: str) -> None:
    assert not asks(text)


def test_returns_the_configured_entry_that_matched() -> None:
    assert asks_for_human(["oi", "Falar com UM atendente"], ["falar com atendente"]) == (
        "falar com atendente"
    )
    assert asks_for_human(["Agent!"], ["Agent"]) == "Agent"


def test_lists_are_configurable() -> None:
    assert asks_for_human(["quero o financeiro"], ["financeiro"]) is not None
    assert asks_for_human(["atendente"], ["financeiro"]) is None
    assert asks_for_human(["atendente"], []) is None


def test_configured_entries_are_accent_and_case_insensitive() -> None:
    assert asks_for_human(["quero falar com o responsavel"], ["Falar com Responsável"])
    assert asks_for_human(["QUERO FALAR COM O RESPONSÁVEL"], ["falar com responsavel"])


@given(st.lists(st.sampled_from(sorted(FILLERS)), max_size=8))
def test_filler_words_alone_never_hand_off(fillers: list[str]) -> None:
    assert not asks(" ".join(fillers))


@given(
    st.lists(st.sampled_from(["por", "favor", "please", "quero", "i", "want", "ya"]), max_size=4),
    st.sampled_from(["atendente", "Atendênte", "HUMANO", "agent", "Agente", "representative"]),
)
def test_a_keyword_among_fillers_hands_off(fillers: list[str], keyword: str) -> None:
    assert asks(" ".join([*fillers, keyword]) + "!")


def turn(author: Author, text: str, minute: int) -> Turn:
    return Turn(author=author, text=text, at=T0 + timedelta(minutes=minute))


MARKERS = (PT_BR.cannot_answer, EN.cannot_answer, ES.cannot_answer)
FALLBACK = f"🤖 {PT_BR.cannot_answer} Anotei sua mensagem: “x”."


def test_streak_counts_fallbacks_and_skips_customer_turns() -> None:
    history = [
        turn(Author.BOT, "Olá! Como posso ajudar?", 0),
        turn(Author.CUSTOMER, "blabla", 1),
        turn(Author.BOT, FALLBACK, 2),
        turn(Author.CUSTOMER, "blublu", 3),
        turn(Author.BOT, FALLBACK, 4),
        turn(Author.CUSTOMER, "hmm", 5),
    ]
    assert unanswered_streak(history, MARKERS) == 2


@pytest.mark.parametrize("breaker", [Author.HUMAN, Author.APP, Author.SYSTEM])
def test_streak_ends_at_anyone_else_speaking(breaker: Author) -> None:
    history = [
        turn(Author.BOT, FALLBACK, 0),
        turn(breaker, "Oi, aqui é a Ana", 1),
        turn(Author.BOT, FALLBACK, 2),
    ]
    assert unanswered_streak(history, MARKERS) == 1


def test_streak_ends_at_an_answer_and_is_zero_without_history() -> None:
    history = [turn(Author.BOT, FALLBACK, 0), turn(Author.BOT, "Custa R$ 10.", 1)]
    assert unanswered_streak(history, MARKERS) == 0
    assert unanswered_streak([], MARKERS) == 0


def test_fallback_recognised_in_any_language_and_despite_a_prefix() -> None:
    assert is_unanswered_reply("[Bot] " + EN.cannot_answer + " Could you…", MARKERS)
    assert is_unanswered_reply(ES.cannot_answer.upper(), MARKERS)
    assert not is_unanswered_reply("Desculpe, não temos esse produto.", MARKERS)


@pytest.mark.parametrize(
    ("streak", "limit", "expected"),
    [(0, 3, False), (1, 3, False), (2, 3, True), (5, 3, True), (0, 1, True), (9, None, False)],
)
def test_too_many_failures(streak: int, limit: int | None, expected: bool) -> None:
    assert too_many_failures(streak, limit) is expected
