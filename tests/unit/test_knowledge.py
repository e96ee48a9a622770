"""A number's knowledge: opening hours in its time zone, holidays, masking, the offline answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from baton.knowledge import DayHours, Knowledge, OpeningHours, mask_personal_data, status_at
from baton.knowledge.retrieval import candidate_query, distinct_answers, quote_lexeme
from baton.settings import NumbersConfig
from services.bot.knowledge import hours_answer
from services.bot.offline import respond
from services.bot.policy import BotPolicy

HOURS = OpeningHours.model_validate(
    {
        "timezone": "America/Sao_Paulo",  # UTC-3, no daylight saving since 2019
        "weekly": {
            "mon": "08:00-12:00, 13:00-18:00",
            "tue": "08:00-18:00",
            "wed": "08:00-18:00",
            "thu": "08:00-18:00",
            "fri": "08:00-18:00",
            "sat": "09:00-13:00",
            "sun": "closed",
        },
        "holidays": [{"date": "2026-12-25", "name": "Natal"}],
    }
)


def utc(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def test_open_is_judged_in_the_business_time_zone() -> None:
    # 2026-12-07 is a Monday; 11:30 UTC is 08:30 in São Paulo.
    status = status_at(HOURS, utc(2026, 12, 7, 11, 30))
    assert status.open_now
    assert status.closes_at is not None and status.closes_at.time() == time(12, 0)
    # 10:30 UTC is 07:30 there: closed, opening at 08:00 the same day.
    early = status_at(HOURS, utc(2026, 12, 7, 10, 30))
    assert not early.open_now
    assert early.next_opening is not None
    assert (early.next_opening.date(), early.next_opening.time()) == (date(2026, 12, 7), time(8))


def test_lunch_break_and_sunday_are_closed() -> None:
    lunch = status_at(HOURS, utc(2026, 12, 7, 15, 30))  # Monday 12:30 local
    assert not lunch.open_now
    assert lunch.next_opening is not None and lunch.next_opening.time() == time(13)
    sunday = status_at(HOURS, utc(2026, 12, 6, 15))  # Sunday noon local
    assert not sunday.open_now
    assert sunday.next_opening is not None and sunday.next_opening.date() == date(2026, 12, 7)


def test_a_holiday_closes_a_working_day() -> None:
    christmas = status_at(HOURS, utc(2026, 12, 25, 14))  # a Friday, 11:00 local
    assert not christmas.open_now
    assert christmas.holiday is not None and christmas.holiday.name == "Natal"
    assert christmas.next_opening is not None
    assert christmas.next_opening.date() == date(2026, 12, 26)  # Saturday 09:00


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("pt-BR", "Hoje estamos fechados (Natal). Abrimos sáb às 09:00."),
        ("en", "We're closed today (Natal). We open Sat at 09:00."),
        ("es", "Hoy estamos cerrados (Natal). Abrimos el sáb a las 09:00."),
    ],
)
def test_the_holiday_answer_in_each_language(language: str, expected: str) -> None:
    answer = hours_answer(HOURS, utc(2026, 12, 25, 14), language)  # type: ignore[arg-type]
    assert answer.startswith(expected)


def test_the_offline_responder_answers_are_you_open_from_the_configured_hours() -> None:
    policy = BotPolicy(language="en", hours=HOURS)
    open_now = respond(["Are you open now?"], policy, now=utc(2026, 12, 8, 13))
    assert open_now.answered
    assert open_now.text is not None
    assert open_now.text.startswith("We're open now, until 18:00.")
    assert "Sun closed" in open_now.text
    pt = BotPolicy(language="pt-BR", hours=HOURS)
    holiday = respond(["que horas vocês abrem hoje?"], pt, now=utc(2026, 12, 25, 12))
    assert holiday.text is not None
    assert holiday.text.startswith("Hoje estamos fechados (Natal). Abrimos sáb às 09:00.")


def test_without_hours_the_question_is_not_answered() -> None:
    assert not respond(
        ["are you open now?"], BotPolicy(language="en"), now=utc(2026, 12, 8, 13)
    ).answered


def test_faq_variants_match_exactly_or_by_most_of_their_words() -> None:
    knowledge = Knowledge.model_validate(
        {"faq": [{"questions": ["valor do frete", "quanto custa a entrega"], "answer": "R$ 10"}]}
    )
    policy = BotPolicy.for_number(NumbersConfig().get("1"), knowledge)
    assert respond(["Qual é o valor do frete pra Campinas?"], policy).text == "R$ 10"
    assert respond(["a entrega custa quanto?"], policy).text == "R$ 10"
    assert respond(["quero trocar um produto"], policy).text != "R$ 10"


def test_the_numbers_file_carries_the_knowledge(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "numbers.toml"
    path.write_text(
        """
[numbers."111".knowledge]
persona = "Você é a assistente da Padaria Pão Quente."
contact = "(11) 3333-4444"
links = [{ title = "Cardápio", url = "https://example.com/menu" }]
[numbers."111".knowledge.hours]
timezone = "America/Sao_Paulo"
weekly = { mon = "07:00-19:00", sun = "closed" }
holidays = [{ date = "2026-12-25", name = "Natal" }]
[[numbers."111".knowledge.faq]]
questions = ["tem pão de queijo"]
answer = "Temos, saindo a cada hora."
""",
        encoding="utf-8",
    )
    number = NumbersConfig.load(path).get("111")
    policy = BotPolicy.for_number(number)
    assert policy.system_prompt == "Você é a assistente da Padaria Pão Quente."
    assert policy.hours is not None and policy.hours.weekly["mon"] == (
        DayHours(opens=time(7), closes=time(19)),
    )
    prompt = policy.full_system_prompt("handoff_to_human", hours_now="Opening hours: …")
    assert "Cardápio: https://example.com/menu" in prompt
    assert "Contact outside this chat: (11) 3333-4444" in prompt
    assert "tem pão de queijo: Temos, saindo a cada hora." in prompt


@pytest.mark.parametrize(
    "bad",
    [
        {"timezone": "Mars/Olympus"},
        {"weekly": {"mon": "18:00-08:00"}},
        {"weekly": {"mon": "08:00-12:00, 11:00-14:00"}},
        {"weekly": {"mon": "8am to 6pm"}},
    ],
)
def test_bad_hours_are_refused_with_a_reason(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        OpeningHours.model_validate(bad)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("meu email é ana.souza+loja@gmail.com ok", "meu email é [email] ok"),
        ("liga no +55 11 98765-4321", "liga no [phone]"),
        ("(11) 3333-4444 depois das 18h", "[phone] depois das 18h"),
        ("CPF 123.456.789-09", "CPF [document]"),
        ("CNPJ 12.345.678/0001-90", "CNPJ [document]"),
        ("DNI 12345678Z", "DNI [document]"),
        ("pedido 4521 chegou", "pedido 4521 chegou"),
    ],
)
def test_personal_data_is_masked_but_order_numbers_stay(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@given(st.text(alphabet="0123456789 -.()+", min_size=8, max_size=30))
def test_no_run_of_eight_digits_survives_masking(noise: str) -> None:
    masked = mask_personal_data(f"tel {noise} fim")
    digits = "".join(ch if ch.isdigit() else " " for ch in masked).split()
    assert all(len(run) < 8 for run in digits)


def test_rare_words_select_alone_and_common_words_only_two_together() -> None:
    query = candidate_query(
        {"campin": 40, "entreg": 9000, "ped": 30000, "receb": 5000, "vcs": 0}, key="n", rare=300
    )
    assert query is not None
    assert query.narrow == (
        "'n:campin' | ( 'n:receb' & 'n:entreg' ) | ( 'n:receb' & 'n:ped' )"
        " | ( 'n:entreg' & 'n:ped' )"
    )
    # Ranked against every word some pair holds, a word no pair holds left out.
    assert query.wide == "'campin' | 'receb' | 'entreg' | 'ped'"


def test_a_one_word_question_searches_that_word_and_unknown_words_search_nothing() -> None:
    query = candidate_query({"boleto": 50_000}, key="15550001")
    assert query is not None and query.narrow == "'15550001:boleto'"
    assert candidate_query({"xyz": 0}, key="n") is None
    assert candidate_query({}, key="n") is None


def test_only_the_rarest_common_words_are_paired() -> None:
    counts = {f"w{i}": 1000 + i for i in range(10)}
    query = candidate_query(counts, key="n", rare=10, paired=3)
    assert query is not None
    assert query.narrow == "( 'n:w0' & 'n:w1' ) | ( 'n:w0' & 'n:w2' ) | ( 'n:w1' & 'n:w2' )"


def _unquote(operand: str) -> str:
    """PostgreSQL's reading of a quoted tsquery operand: '' and \\x stand for ' and x."""
    assert operand[0] == "'" and operand[-1] == "'"
    out, chars = [], iter(operand[1:-1])
    for char in chars:
        if char == "\\":
            out.append(next(chars))
        elif char == "'":
            assert next(chars) == "'", "a bare quote would end the operand"
            out.append("'")
        else:
            out.append(char)
    return "".join(out)


@given(st.text(min_size=1, max_size=12))
def test_a_lexeme_is_quoted_verbatim(lexeme: str) -> None:
    assert _unquote(quote_lexeme(lexeme)) == lexeme


def test_the_same_reply_to_another_customer_is_shown_once() -> None:
    answers = [
        "Entregamos em Campinas sim, em até 3 dias úteis.",
        "Olívia, Entregamos em Campinas sim, em até 3 dias úteis.",
        "Oi Ana, o pedido 64259 saiu para entrega hoje, código c5fb05.",
        "Nossa loja de Campinas fica na Rua 11 de Maio.",
        "Nando, entregamos em Campinas sim, em até 3 dias úteis.",
    ]
    assert distinct_answers(answers, 5) == [0, 2, 3]
    assert distinct_answers(answers, 2) == [0, 2]
    assert distinct_answers(answers, 0) == []


@given(st.lists(st.text(max_size=30), max_size=12), st.integers(min_value=1, max_value=6))
def test_distinct_answers_keep_the_order_and_the_limit(answers: list[str], limit: int) -> None:
    kept = distinct_answers(answers, limit)
    assert kept == sorted(kept) and len(kept) <= limit
    assert not answers or kept[:1] == [0]  # the best answer is always shown
