"""The desk's pages: sign-in, the inbox, a conversation; and the fragments its script refreshes.

Everything an agent does (take over, return to bot, send) goes through the agent API with the
session cookie and its CSRF token; these routes only draw. Pages need a session (bearer tokens
are for API clients): without one they redirect to the sign-in page.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Form, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from baton.store.account_records import DeskSession, InboxQuery, InboxView
from baton.store.console_records import ConversationSummary
from baton.types import ConversationId, PhoneNumberId
from services.console import accounts, cursor, metrics, sessions
from services.console.agents import Principal
from services.console.auth import directory_of
from services.console.context import Console, console_of
from services.console.desk import assets, i18n, views

log = structlog.get_logger()

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATES.globals.update(
    asset=assets.url, tick=views.tick, duration=views.duration, badge=views.badge
)
# The desk loads nothing from anywhere else, runs no inline script, and is never framed.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:;"
        " media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none';"
        " form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _now() -> datetime:
    return datetime.now(UTC)


def _lang(request: Request) -> str:
    return i18n.negotiate(
        request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language")
    )


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    lang = _lang(request)

    def t(key: str, **params: object) -> str:
        try:
            return i18n.t(lang, key, **params)
        except KeyError:  # a status or author this desk has no words for yet
            return key.partition("_")[2] or key

    html = _TEMPLATES.get_template(name).render(
        t=t,
        lang=lang,
        languages=i18n.LANGUAGES,
        language_names=i18n.NAMES,
        catalog=i18n.catalog(lang),
        now=_now(),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=_PAGE_HEADERS)


async def _signed_in(request: Request) -> tuple[DeskSession, Principal] | None:
    token = request.cookies.get(sessions.SESSION_COOKIE)
    if not token:
        return None
    console = console_of(request)
    session = await sessions.lookup(console.store, console.settings, token)
    if session is None:
        return None
    structlog.contextvars.bind_contextvars(principal=session.account.agent_id)
    return session, sessions.principal_of(session, directory_of(request))


def _to_sign_in(request: Request) -> RedirectResponse:
    expired = sessions.SESSION_COOKIE in request.cookies
    target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    response = RedirectResponse(
        f"/login?next={target}" + ("&expired=1" if expired else ""),
        status_code=status.HTTP_303_SEE_OTHER,
    )
    if expired:
        sessions.clear_cookie(response, console_of(request).settings)
    return response


def _safe_next(target: str | None) -> str:
    # Only a path on this site: never an open redirect to another one.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


# --- sign in and out ---------------------------------------------------------------------


def _sign_in_page(
    request: Request, *, error: str | None, status_code: int = 200, agent: str = ""
) -> HTMLResponse:
    form_token = secrets.token_urlsafe(24)
    notice = None
    if request.query_params.get("expired"):
        notice = "expired"
    elif request.query_params.get("signed_out"):
        notice = "signed_out"
    response = _render(
        request,
        "login.html",
        status_code,
        error=error,
        notice=notice,
        form_token=form_token,
        agent=agent,
        next=_safe_next(request.query_params.get("next")),
    )
    response.set_cookie(
        sessions.LOGIN_COOKIE,
        form_token,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=sessions.secure_cookies(console_of(request).settings),
    )
    return response


@router.get("/login")
async def sign_in_form(request: Request) -> Response:
    if await _signed_in(request) is not None:
        return RedirectResponse(
            _safe_next(request.query_params.get("next")), status.HTTP_303_SEE_OTHER
        )
    return _sign_in_page(request, error=None)


@router.post("/login")
async def sign_in(
    request: Request,
    agent: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    console = console_of(request)
    settings = console.settings
    agent = agent.strip()
    if not sessions.same_origin(request) or not sessions.same_token(
        request.cookies.get(sessions.LOGIN_COOKIE, ""), csrf_token or None
    ):
        metrics.SIGN_INS.labels(outcome="refused").inc()
        return _sign_in_page(request, error="form_expired", status_code=403, agent=agent)
    address = sessions.client_address(request, settings)
    keys = sessions.throttle_keys(agent, address)
    if await sessions.check_throttle(console.store, settings, keys):
        metrics.SIGN_INS.labels(outcome="throttled").inc()
        log.warning("desk.sign_in_throttled", agent=agent)
        response = _sign_in_page(request, error="throttled", status_code=429, agent=agent)
        response.headers["Retry-After"] = str(int(settings.desk_failure_window_seconds))
        return response
    account = await console.store.account(agent) if agent else None
    usable = account is not None and not account.disabled
    # Verified even for an unknown or disabled agent: the answer takes the same time.
    known_hash = account.password_hash if usable and account is not None else None
    matches = await accounts.verify(known_hash, password)
    if not matches or account is None:
        await sessions.record_failure(console.store, settings, keys)
        metrics.SIGN_INS.labels(outcome="refused").inc()
        log.info("desk.sign_in_refused", agent=agent)
        return _sign_in_page(request, error="wrong_password", status_code=401, agent=agent)
    await console.store.clear_sign_in_failures(keys[0])
    started = await sessions.start(console.store, settings, account.agent_id, address)
    metrics.SIGN_INS.labels(outcome="ok").inc()
    log.info("desk.signed_in", agent=account.agent_id)
    signed_in = RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    sessions.set_cookie(signed_in, settings, started)
    signed_in.delete_cookie(sessions.LOGIN_COOKIE, path="/login")
    return signed_in


@router.post("/logout")
async def sign_out(
    request: Request, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    who = await _signed_in(request)
    if who is not None:
        session, _ = who
        if not (
            sessions.same_origin(request) and sessions.same_token(session.csrf_token, csrf_token)
        ):
            metrics.CSRF_REFUSED.inc()
            raise HTTPException(status.HTTP_403_FORBIDDEN, "a sign-out needs its CSRF token")
        await console_of(request).store.delete_session(session.token_hash)
        log.info("desk.signed_out", agent=session.account.agent_id)
    response = RedirectResponse("/login?signed_out=1", status_code=status.HTTP_303_SEE_OTHER)
    sessions.clear_cookie(response, console_of(request).settings)
    return response


@router.get("/desk/lang/{lang}")
async def choose_language(lang: str, next: str = "/") -> Response:
    if lang not in i18n.LANGUAGES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such language")
    response = RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        i18n.LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="lax", httponly=True
    )
    return response


@router.get("/desk/session")
async def session_alive(request: Request) -> Response:
    """204 while the session lives, 401 after (the page's script then goes to sign in)."""
    if await _signed_in(request) is None:
        return Response(status_code=status.HTTP_401_UNAUTHORIZED)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/desk/static/{name}")
async def static_file(name: str, request: Request) -> Response:
    return assets.serve(name, request)


# --- the inbox and conversations -----------------------------------------------------------


def _view(raw: str | None) -> InboxView:
    try:
        return InboxView(raw) if raw else InboxView.WAITING
    except ValueError:
        return InboxView.WAITING


async def _inbox_context(
    console: Console,
    principal: Principal,
    view: InboxView,
    number: PhoneNumberId | None,
    search: str | None,
    current: ConversationId | None,
) -> dict[str, Any]:
    if number is not None and not principal.may_see(number):
        number = None
    scope = (
        (number,)
        if number is not None
        else tuple(sorted(principal.numbers))
        if principal.numbers is not None
        else None
    )
    items = await console.store.desk_inbox(
        InboxQuery(view=view, agent_id=principal.id, phone_number_ids=scope, search=search)
    )
    counts = await console.store.desk_counts(principal.id, scope)
    numbers = (
        sorted(principal.numbers)
        if principal.numbers is not None
        else await console.store.desk_numbers()
    )
    return {
        "me": principal.id,
        "view": view.value,
        "views": [v.value for v in InboxView],
        "number": number or "",
        "numbers": numbers,
        "q": search or "",
        "items": items,
        "counts": counts,
        "current": current,
        "query": _query_string(view, number, search),
    }


def _query_string(view: InboxView, number: str | None, search: str | None) -> str:
    parts = [f"view={view.value}"]
    if number:
        parts.append(f"number={quote(number)}")
    if search:
        parts.append(f"q={quote(search)}")
    return "&".join(parts)


async def _conversation(
    console: Console, principal: Principal, cid: ConversationId
) -> ConversationSummary:
    summary = await console.store.conversation_summary(cid)
    if summary is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such conversation")
    if not principal.may_see(summary.phone_number_id):
        metrics.FORBIDDEN.inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, "outside your business numbers")
    return summary


async def _panel_context(
    console: Console, principal: Principal, summary: ConversationSummary
) -> dict[str, Any]:
    extras = await console.store.conversation_extras(summary.id)
    now = _now()
    window_is_open = views.window_open(extras.last_customer_at, now)
    return {
        "c": summary,
        "me": principal.id,
        "actions": views.actions(
            summary,
            principal.id,
            window_is_open=window_is_open,
            admin=bool(getattr(principal, "admin", False)),
        ),
        "window_open": window_is_open,
        "window_closes": views.window_closes(extras.last_customer_at),
        "newest_id": extras.newest_message_id,
    }


async def _messages_context(
    console: Console, cid: ConversationId, before: str | None
) -> dict[str, Any]:
    position = None
    if before is not None:
        at, row_id = cursor.decode(before)
        if at is None:
            raise cursor.BadCursor
        position = (at, row_id)
    page = await console.store.message_page(cid, limit=PAGE_SIZE, before=position)
    first = page.items[0] if page.items else None
    return {
        "messages": page.items,
        "older": (
            cursor.encode(first.sent_at, first.id) if page.has_more and first is not None else None
        ),
        "cid": cid,
    }


@router.get("/")
async def inbox_page(
    request: Request,
    view: str | None = None,
    number: Annotated[str | None, Query(max_length=40)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    who = await _signed_in(request)
    if who is None:
        return _to_sign_in(request)
    session, principal = who
    context = await _inbox_context(
        console_of(request), principal, _view(view), number or None, q or None, None
    )
    return _render(request, "desk.html", csrf=session.csrf_token, c=None, **context)


@router.get("/c/{conversation_id}")
async def conversation_page(
    request: Request,
    conversation_id: ConversationId,
    view: str | None = None,
    number: Annotated[str | None, Query(max_length=40)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    who = await _signed_in(request)
    if who is None:
        return _to_sign_in(request)
    session, principal = who
    console = console_of(request)
    summary = await _conversation(console, principal, conversation_id)
    panel = await _panel_context(console, principal, summary)
    if panel["newest_id"] is not None:
        await console.store.mark_read(principal.id, conversation_id, panel["newest_id"])
    context = await _inbox_context(
        console, principal, _view(view), number or None, q or None, conversation_id
    )
    messages = await _messages_context(console, conversation_id, None)
    page = {**context, **panel, **messages}
    return _render(request, "desk.html", csrf=session.csrf_token, **page)


@router.get("/desk/inbox")
async def inbox_fragment(
    request: Request,
    view: str | None = None,
    number: Annotated[str | None, Query(max_length=40)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    current: ConversationId | None = None,
) -> Response:
    who = await _signed_in(request)
    if who is None:
        return Response(status_code=status.HTTP_401_UNAUTHORIZED)
    context = await _inbox_context(
        console_of(request), who[1], _view(view), number or None, q or None, current
    )
    return _render(request, "_inbox.html", **context)


@router.get("/desk/c/{conversation_id}/panel")
async def panel_fragment(request: Request, conversation_id: ConversationId) -> Response:
    who = await _signed_in(request)
    if who is None:
        return Response(status_code=status.HTTP_401_UNAUTHORIZED)
    console = console_of(request)
    summary = await _conversation(console, who[1], conversation_id)
    return _render(request, "_panel.html", **await _panel_context(console, who[1], summary))


@router.get("/desk/c/{conversation_id}/messages")
async def messages_fragment(
    request: Request,
    conversation_id: ConversationId,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    who = await _signed_in(request)
    if who is None:
        return Response(status_code=status.HTTP_401_UNAUTHORIZED)
    console = console_of(request)
    await _conversation(console, who[1], conversation_id)
    context = await _messages_context(console, conversation_id, before)
    return _render(request, "_messages.html", me=who[1].id, **context)


@router.post("/desk/c/{conversation_id}/read", status_code=status.HTTP_204_NO_CONTENT)
async def mark_read(
    request: Request, conversation_id: ConversationId, through: int = Query(ge=1)
) -> Response:
    """The agent saw the conversation up to message `through` (its unread count drops)."""
    who = await _signed_in(request)
    if who is None:
        return Response(status_code=status.HTTP_401_UNAUTHORIZED)
    session, principal = who
    if not (
        sessions.same_origin(request)
        and sessions.same_token(session.csrf_token, request.headers.get(sessions.CSRF_HEADER))
    ):
        metrics.CSRF_REFUSED.inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, "needs the CSRF token")
    console = console_of(request)
    await _conversation(console, principal, conversation_id)
    await console.store.mark_read(principal.id, conversation_id, through)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
