"""The desk's decisions made on the server: languages, allowed actions, badges, expiry, throttle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from baton.settings import Settings
from baton.store.account_records import AgentAccount, DeskSession
from baton.store.console_records import ConversationSummary
from baton.types import Mode
from services.console import accounts, sessions
from services.console.agents import Directory, Kind, Principal
from services.console.desk import i18n, views
from services.console.desk.routes import _safe_next

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def summary(mode: Mode, assignee: str | None = None) -> ConversationSummary:
    return ConversationSummary(
        id=1,
        phone_number_id="900000000000001",
        wa_id="5511999990000",
        customer_name="Ana",
        mode=mode,
        epoch=1,
        assignee=assignee,
        waiting_since=None,
        paused_until=NOW + timedelta(hours=2) if mode is Mode.PAUSED else None,
        handoff_reason=None,
        handoff_summary=None,
        last_activity_at=NOW,
        last_message=None,
    )


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, None, "pt-BR"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "es-AR;q=0.8, fr;q=0.9", "es"),
        (None, "fr-FR, de", "pt-BR"),
        (None, "pt-PT", "pt-BR"),
        (None, "en;q=0.2, es;q=0.7", "es"),
        ("en", "es", "en"),
        ("xx", "es", "es"),
    ],
)
def test_the_language_is_the_choice_then_the_browser_then_pt_br(
    cookie: str | None, header: str | None, expected: str
) -> None:
    assert i18n.negotiate(cookie, header) == expected


def test_every_text_exists_in_every_language_with_the_same_placeholders() -> None:
    english = i18n.catalog("en")
    for lang in i18n.LANGUAGES:
        words = i18n.catalog(lang)
        assert words.keys() == english.keys()
        for key, text in words.items():
            assert text.strip(), (lang, key)
            assert sorted(_placeholders(text)) == sorted(_placeholders(english[key])), (lang, key)
    # The English accessible names outside checks rely on.
    assert [english[k] for k in ("sign_in", "take_over", "return_to_bot", "send")] == [
        "Sign in",
        "Take over",
        "Return to bot",
        "Send",
    ]
    assert [english[k] for k in ("agent", "password", "message")] == [
        "Agent",
        "Password",
        "Message",
    ]


def _placeholders(text: str) -> list[str]:
    return [part.split("}")[0] for part in text.split("{")[1:]]


def test_a_conversation_in_the_bot_may_be_taken_over_but_not_returned_or_written() -> None:
    actions = views.actions(summary(Mode.BOT), "alice", window_is_open=True)
    assert actions.take_over.allowed
    assert actions.release == views.Allowed(False, views.Because("bot_answers"))
    assert actions.send == views.Allowed(False, views.Because("take_over_to_reply"))


def test_the_holder_may_return_it_and_write_others_see_who_holds_it() -> None:
    held = summary(Mode.HUMAN, "alice")
    mine = views.actions(held, "alice", window_is_open=True)
    assert (mine.take_over.allowed, mine.release.allowed, mine.send.allowed) == (False, True, True)
    assert mine.take_over.reason == views.Because("you_hold")
    theirs = views.actions(held, "bob", window_is_open=True)
    holds = views.Because("holds", agent="alice")
    assert theirs == views.Actions(
        views.Allowed(False, holds),
        views.Allowed(False, holds),
        views.Allowed(False, holds),
        views.Allowed(False, holds),
    )
    assert mine.resolve.allowed
    # An admin may resolve (and transfer) what another agent holds, but not write in it.
    admin = views.actions(held, "root", window_is_open=True, admin=True)
    assert (admin.resolve.allowed, admin.send.allowed) == (True, False)


def test_the_queue_and_the_owners_pause_may_be_taken_or_returned_by_anyone() -> None:
    for state in (summary(Mode.HUMAN), summary(Mode.PAUSED)):
        actions = views.actions(state, "bob", window_is_open=True)
        assert (actions.take_over.allowed, actions.release.allowed) == (True, True)
        assert not actions.send.allowed
        assert not actions.resolve.allowed


def test_a_closed_window_is_said_before_the_agent_types() -> None:
    held = summary(Mode.HUMAN, "alice")
    assert views.actions(held, "alice", window_is_open=False).send == views.Allowed(
        False, views.Because("window_closed")
    )
    assert not views.window_open(None, NOW)
    assert views.window_open(NOW - timedelta(hours=23, minutes=59), NOW)
    assert not views.window_open(NOW - timedelta(hours=24), NOW)


def test_badges_name_the_holder() -> None:
    assert views.badge(summary(Mode.BOT), "a").kind == "bot"
    assert views.badge(summary(Mode.HUMAN), "a").kind == "queue"
    assert views.badge(summary(Mode.HUMAN, "a"), "a").kind == "you"
    assert views.badge(summary(Mode.HUMAN, "b"), "a") == views.Badge("agent", "", agent="b")
    paused = views.badge(summary(Mode.PAUSED), "a")
    assert (paused.kind, paused.until) == ("paused", NOW + timedelta(hours=2))


def test_durations_are_short() -> None:
    assert views.duration(NOW - timedelta(seconds=5), NOW) == "5 s"
    assert views.duration(NOW - timedelta(minutes=12, seconds=3), NOW) == "12 min"
    assert views.duration(NOW - timedelta(hours=3, minutes=4), NOW) == "3 h 04"
    assert views.duration(NOW - timedelta(days=2, hours=1), NOW) == "2 d"


def _session(created: datetime, seen: datetime) -> DeskSession:
    return DeskSession(
        token_hash=b"x",
        csrf_token="c",
        created_at=created,
        last_seen_at=seen,
        expires_at=seen + timedelta(hours=2),
        account=AgentAccount(agent_id="alice", password_hash="h"),
    )


def test_a_session_slides_while_used_but_never_past_its_maximum() -> None:
    settings = Settings(desk_session_idle_seconds=3600, desk_session_max_seconds=8 * 3600)
    assert (
        sessions.renewed_expiry(_session(NOW, NOW), NOW + timedelta(seconds=30), settings) is None
    )
    later = NOW + timedelta(minutes=10)
    assert sessions.renewed_expiry(_session(NOW, NOW), later, settings) == later + timedelta(
        hours=1
    )
    late = NOW + timedelta(hours=7, minutes=30)
    capped = sessions.renewed_expiry(_session(NOW, NOW + timedelta(hours=7)), late, settings)
    assert capped == NOW + timedelta(hours=8)


def test_failed_sign_ins_are_throttled_per_agent_and_per_address() -> None:
    settings = Settings(desk_failures_per_agent=3, desk_failures_per_address=10)
    keys = sessions.throttle_keys("Alice", "10.0.0.1")
    assert keys == ("agent:alice", "address:10.0.0.1")
    assert not sessions.throttled({keys[0]: 2, keys[1]: 9}, keys, settings)
    assert sessions.throttled({keys[0]: 3, keys[1]: 0}, keys, settings)
    assert sessions.throttled({keys[0]: 0, keys[1]: 10}, keys, settings)


def test_cookies_are_secure_outside_local() -> None:
    assert not sessions.secure_cookies(Settings())
    assert sessions.secure_cookies(
        Settings(
            environment="production",
            app_secret=SecretStr("s" * 20),
            verify_token=SecretStr("v" * 20),
            access_token=SecretStr("a" * 20),
        )
    )
    assert sessions.secure_cookies(Settings(desk_secure_cookies=True))


def test_a_session_acts_as_the_configured_agent_scoped_to_its_account() -> None:
    directory = Directory([(Principal(id="alice", kind=Kind.AGENT), SecretStr("t" * 20))])
    scoped = AgentAccount(agent_id="alice", password_hash="h", numbers=frozenset({"9001"}))
    session = _session(NOW, NOW).model_copy(update={"account": scoped})
    assert sessions.principal_of(session, directory) == Principal(
        id="alice", kind=Kind.AGENT, numbers=frozenset({"9001"})
    )
    other = session.model_copy(update={"account": AgentAccount(agent_id="zoe", password_hash="h")})
    assert sessions.principal_of(other, directory) == Principal(id="zoe", kind=Kind.AGENT)


def test_passwords_are_argon2_and_the_dev_password_is_refused_in_production() -> None:
    encoded = accounts.hash_password("correct horse battery")
    assert encoded.startswith("$argon2id$")
    assert accounts.password_matches(encoded, "correct horse battery")
    assert not accounts.password_matches(encoded, "wrong horse battery")
    assert not accounts.password_matches(None, "correct horse battery")
    assert not accounts.password_matches("not a hash", "x")
    with pytest.raises(accounts.AccountError, match="at least"):
        accounts.hash_password("short")
    with pytest.raises(accounts.AccountError, match="development password"):
        accounts.hash_password(accounts.DEV_PASSWORD, environment="production")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/c/12?view=mine", "/c/12?view=mine"),
        ("//evil.test/", "/"),
        ("https://evil.test", "/"),
        (None, "/"),
        ("/\\evil", "/"),
    ],
)
def test_after_sign_in_only_paths_on_this_site(target: str | None, expected: str) -> None:
    assert _safe_next(target) == expected
