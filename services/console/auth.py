"""Authentication: `require_agent` (people) and `require_principal` (agents or bots).

Bearer tokens for API clients and bots; the desk's session cookie (services/console/sessions.py)
for agents in a browser.

No anonymous access: a missing or unknown token is 401; an authenticated caller acting on what
it may not (a bot taking over, a number outside its scope) is 403.

Other routers mounted in the console app use these as dependencies:

    @router.post("/onboarding")
    async def onboard(agent: Annotated[Principal, Depends(require_agent)]) -> ...
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Cookie, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from baton.types import PhoneNumberId
from services.console import metrics, sessions
from services.console.agents import Directory, Kind, Principal
from services.console.context import console_of

log = structlog.get_logger()

_bearer = HTTPBearer(auto_error=False, description="An agent's or an external bot's token.")


def directory_of(request: Request) -> Directory:
    directory = getattr(request.app.state, "directory", None)
    if not isinstance(directory, Directory):
        raise RuntimeError("the console app has no agent directory (app.state.directory)")
    return directory


def _unauthorized(reason: str) -> HTTPException:
    metrics.AUTH_FAILURES.labels(reason=reason).inc()
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="a valid bearer token is required",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def require_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session_token: Annotated[
        str | None,
        Cookie(alias=sessions.SESSION_COOKIE, include_in_schema=False),
    ] = None,
) -> Principal:
    """The authenticated caller, agent or bot (401 otherwise).

    A bearer token, or the desk's session cookie; a write with the cookie also needs the
    session's CSRF token in `X-CSRF-Token` and no foreign `Origin` (403 otherwise).
    """
    if credentials is not None:
        principal = directory_of(request).authenticate(credentials.credentials)
        if principal is None:
            raise _unauthorized("unknown_token")
    elif session_token is not None:
        principal = await _session_principal(request, session_token)
    else:
        raise _unauthorized("missing")
    structlog.contextvars.bind_contextvars(principal=principal.id)
    return principal


async def _session_principal(request: Request, token: str) -> Principal:
    console = console_of(request)
    session = await sessions.lookup(console.store, console.settings, token)
    if session is None:
        raise _unauthorized("session_expired")
    if request.method not in sessions.SAFE_METHODS and not (
        sessions.same_origin(request)
        and sessions.same_token(session.csrf_token, request.headers.get(sessions.CSRF_HEADER))
    ):
        metrics.CSRF_REFUSED.inc()
        raise forbidden("a write from the desk needs its CSRF token")
    request.state.desk_session = session
    return sessions.principal_of(session, directory_of(request))


async def require_agent(principal: Annotated[Principal, Depends(require_principal)]) -> Principal:
    """The authenticated agent (a person); 401 without a valid token, 403 for a bot."""
    if principal.kind is not Kind.AGENT:
        raise forbidden("only agents may do this")
    return principal


def forbidden(detail: str) -> HTTPException:
    metrics.FORBIDDEN.inc()
    return HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=detail)


def check_number(principal: Principal, phone_number_id: PhoneNumberId) -> None:
    """403 unless the caller may see this business number."""
    if not principal.may_see(phone_number_id):
        raise forbidden("this business number is outside your scope")


AnyPrincipal = Annotated[Principal, Depends(require_principal)]
Agent = Annotated[Principal, Depends(require_agent)]
