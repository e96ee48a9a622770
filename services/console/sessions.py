"""Desk sessions: the cookie a sign-in gives, its CSRF token, expiry, and sign-in throttling.

The cookie holds a random token; the store keeps only its SHA-256. Each session has its own
CSRF token, which the desk sends back in `X-CSRF-Token` (or a form field) on every write:
with SameSite=Strict cookies, a cross-site form never carries the session anyway, and a
same-site script that is not the desk cannot read the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request, Response

from baton.settings import Settings
from baton.store import Store
from baton.store.account_records import DeskSession, NewSession
from services.console.agents import Directory, Kind, Principal

SESSION_COOKIE = "baton_session"
LOGIN_COOKIE = "baton_login"  # the sign-in form's own CSRF token (double submit)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A session's last use is written at most this often: not one UPDATE per request.
RENEW_EVERY = timedelta(seconds=60)


def now() -> datetime:
    return datetime.now(UTC)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def secure_cookies(settings: Settings) -> bool:
    if settings.desk_secure_cookies is not None:
        return settings.desk_secure_cookies
    return settings.environment != "local"


def renewed_expiry(session: DeskSession, at: datetime, settings: Settings) -> datetime | None:
    """The session's new expiry if this use should be recorded (sliding idle, capped), else None."""
    if at - session.last_seen_at < RENEW_EVERY:
        return None
    return min(
        session.created_at + timedelta(seconds=settings.desk_session_max_seconds),
        at + timedelta(seconds=settings.desk_session_idle_seconds),
    )


@dataclass(frozen=True)
class Started:
    token: str
    csrf_token: str
    expires_at: datetime


async def start(store: Store, settings: Settings, agent_id: str, address: str | None) -> Started:
    """A new session for a signed-in agent."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    at = now()
    expires = at + timedelta(
        seconds=min(settings.desk_session_idle_seconds, settings.desk_session_max_seconds)
    )
    await store.create_session(
        NewSession(
            token_hash=token_hash(token),
            agent_id=agent_id,
            csrf_token=csrf,
            created_at=at,
            expires_at=expires,
            address=address,
        )
    )
    return Started(token, csrf, expires)


async def lookup(store: Store, settings: Settings, token: str) -> DeskSession | None:
    """The live session this cookie names (its use recorded), or None (expired, signed out)."""
    at = now()
    session = await store.desk_session(token_hash(token), at)
    if session is None:
        return None
    expiry = renewed_expiry(session, at, settings)
    if expiry is not None:
        await store.renew_session(session.token_hash, at, expiry)
    return session


def set_cookie(response: Response, settings: Settings, started: Started) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        started.token,
        max_age=int(settings.desk_session_max_seconds),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(settings),
    )


def clear_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=secure_cookies(settings)
    )


def principal_of(session: DeskSession, directory: Directory) -> Principal:
    """The caller a session acts as: the configured agent of that id (with its roles), scoped
    to the account's numbers, or a plain agent."""
    account = session.account
    configured = directory.get(account.agent_id)
    if configured is not None and configured.kind is Kind.AGENT:
        return configured.model_copy(update={"numbers": account.numbers})
    return Principal(id=account.agent_id, kind=Kind.AGENT, numbers=account.numbers)


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another origin."""
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and request.method in SAFE_METHODS):
        return True
    host = request.headers.get("host", "")
    return origin.partition("://")[2] == host


def client_address(request: Request, settings: Settings) -> str:
    if settings.desk_trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.client.host if request.client is not None else "unknown"


# --- failed sign-ins ---------------------------------------------------------------------


def throttle_keys(agent_id: str, address: str) -> tuple[str, str]:
    return f"agent:{agent_id.casefold()}", f"address:{address}"


def throttled(failures: dict[str, int], keys: tuple[str, str], settings: Settings) -> bool:
    """Whether a sign-in must be refused before its password is even checked."""
    agent_key, address_key = keys
    return (
        failures.get(agent_key, 0) >= settings.desk_failures_per_agent
        or failures.get(address_key, 0) >= settings.desk_failures_per_address
    )


async def check_throttle(store: Store, settings: Settings, keys: tuple[str, str]) -> bool:
    since = now() - timedelta(seconds=settings.desk_failure_window_seconds)
    return throttled(await store.sign_in_failures(list(keys), since), keys, settings)


async def record_failure(store: Store, settings: Settings, keys: tuple[str, str]) -> None:
    at = now()
    window = timedelta(seconds=settings.desk_failure_window_seconds)
    await store.record_sign_in_failure(list(keys), at, forget_before=at - window)
