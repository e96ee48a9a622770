"""Owner commands, durations, per-number policy and notice texts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from baton.handoff import (
    DEFAULT_TEXTS,
    Language,
    NoticeKind,
    PauseBot,
    Policy,
    ResumeBot,
    language_from_code,
    notice_text,
    parse_duration,
    parse_owner_command,
    with_bot_prefix,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("3h", timedelta(hours=3)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d 12h", timedelta(days=1, hours=12)),
        ("2H", timedelta(hours=2)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "  ", "3", "h", "3x", "0m", "0h0m", "30m1h", "1h1h", "-3h", "1.5h", "٣h"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(d=st.integers(0, 400), h=st.integers(0, 99), m=st.integers(0, 999), s=st.integers(0, 99999))
def test_parse_duration_round_trips_any_combination(d: int, h: int, m: int, s: int) -> None:
    text = "".join(f"{n}{unit}" for n, unit in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if n)
    expected = timedelta(days=d, hours=h, minutes=m, seconds=s)
    if not text:
        with pytest.raises(ValueError, match="duration"):
            parse_duration(text)
    else:
        assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#bot", ResumeBot()),
        ("#resume", ResumeBot()),
        ("  #BOT \n", ResumeBot()),
        ("#Resume", ResumeBot()),
        ("#pause", PauseBot(duration=None)),
        ("#pause 3h", PauseBot(duration=timedelta(hours=3))),
        ("#PAUSE 1h30m", PauseBot(duration=timedelta(hours=1, minutes=30))),
        ("#pause 1h 30m", PauseBot(duration=timedelta(hours=1, minutes=30))),
        ("#pause 90s", PauseBot(duration=timedelta(seconds=90))),
    ],
)
def test_owner_commands(text: str, expected: ResumeBot | PauseBot) -> None:
    assert parse_owner_command(text, Policy()) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "oi",
        "#bottle",
        "#bot please",
        "ok #bot",
        "#pause soon",
        "#pause 0m",
        "#paused",
        "bot",
        "#",
    ],
)
def test_not_owner_commands(text: str) -> None:
    assert parse_owner_command(text, Policy()) is None


def test_command_words_are_configurable() -> None:
    policy = Policy(resume_words=("#robo",), pause_words=("#pausa", "#espera"))
    assert parse_owner_command("#robo", policy) == ResumeBot()
    assert parse_owner_command("#espera 2h", policy) == PauseBot(duration=timedelta(hours=2))
    assert parse_owner_command("#bot", policy) is None
    assert parse_owner_command("#pause 2h", policy) is None


@pytest.mark.parametrize(
    "settings",
    [
        {"debounce_quiet": timedelta(0)},
        {"debounce_quiet": timedelta(seconds=2), "debounce_cap": timedelta(seconds=1)},
        {"pause_window": timedelta(seconds=-1)},
        {"max_pause": timedelta(hours=1)},
        {"human_inactivity_timeout": timedelta(0)},
        {"ghost_fallback_delay": timedelta(0)},
        {"resume_words": ()},
        {"pause_words": ("#pause now",)},
        {"resume_words": ("#bot",), "pause_words": ("#BOT",)},
        {"resume_words": ("",)},
        {"unknown_setting": 1},
    ],
)
def test_policy_refuses_inconsistent_settings(settings: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Policy.model_validate(settings)


def test_policy_defaults_match_the_product() -> None:
    policy = Policy()
    assert policy.debounce_quiet == timedelta(seconds=1)
    assert policy.debounce_cap == timedelta(seconds=5)
    assert policy.pause_window == timedelta(hours=2)
    assert policy.human_inactivity_timeout == timedelta(minutes=30)
    assert policy.ghost_fallback_delay == timedelta(minutes=15)
    assert policy.language is Language.PT_BR
    assert policy.notices_enabled


def test_policy_parses_stored_settings() -> None:
    policy = Policy.model_validate(
        {
            "debounce_quiet": 0.5,
            "pause_window": "PT3H",
            "language": "es",
            "notice_texts": {"busy": "Ya vamos"},
        }
    )
    assert policy.debounce_quiet == timedelta(milliseconds=500)
    assert policy.pause_window == timedelta(hours=3)
    assert notice_text(policy, NoticeKind.BUSY) == "Ya vamos"
    assert (
        notice_text(policy, NoticeKind.TAKEOVER) == DEFAULT_TEXTS[Language.ES][NoticeKind.TAKEOVER]
    )


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("pt-BR", Language.PT_BR),
        ("pt_BR", Language.PT_BR),
        ("pt", Language.PT_BR),
        ("en", Language.EN),
        ("en-US", Language.EN),
        ("es-MX", Language.ES),
        ("ES", Language.ES),
        ("fr", Language.PT_BR),
        ("", Language.PT_BR),
        (None, Language.PT_BR),
    ],
)
def test_language_from_code(code: str | None, language: Language) -> None:
    assert language_from_code(code) is language


def test_every_language_ships_every_notice() -> None:
    for language in Language:
        for kind in NoticeKind:
            assert DEFAULT_TEXTS[language][kind].strip()
    assert "atendente" in DEFAULT_TEXTS[Language.PT_BR][NoticeKind.TAKEOVER]
    assert "agent" in DEFAULT_TEXTS[Language.EN][NoticeKind.TAKEOVER]
    assert "agente" in DEFAULT_TEXTS[Language.ES][NoticeKind.TAKEOVER]


def test_notice_text_picks_language_override_or_disabled() -> None:
    assert (
        notice_text(Policy(language=Language.EN), NoticeKind.BUSY)
        == DEFAULT_TEXTS[Language.EN][NoticeKind.BUSY]
    )
    override = Policy(notice_texts={NoticeKind.TAKEOVER: "  Já já te atendo  "})
    assert notice_text(override, NoticeKind.TAKEOVER) == "Já já te atendo"
    assert (
        notice_text(Policy(notice_texts={NoticeKind.BACK_TO_BOT: ""}), NoticeKind.BACK_TO_BOT) == ""
    )
    assert notice_text(Policy(notices_enabled=False), NoticeKind.TAKEOVER) == ""


@pytest.mark.parametrize(
    ("prefix", "text", "expected"),
    [
        ("", "Olá!", "Olá!"),
        ("   ", "Olá!", "Olá!"),
        ("🤖", "Olá!", "🤖 Olá!"),
        ("*Assistente*\n", "Olá!", "*Assistente*\nOlá!"),
        ("🤖", "🤖 Olá!", "🤖 Olá!"),
    ],
)
def test_bot_prefix(prefix: str, text: str, expected: str) -> None:
    assert with_bot_prefix(prefix, text) == expected
