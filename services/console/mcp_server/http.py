"""MCP over Streamable HTTP at `/mcp`, inside the console app, with the API's bearer tokens.

The SDK's session manager serves the protocol; in front of it one ASGI wrapper authenticates
every request against the console's `Directory` exactly like the API (401 and nothing runs
without a valid token) and leaves the `Principal` in the request's scope, where the tools
find it. Stateless mode: every request stands alone (no server-held session), so any console
replica can answer any request behind a plain load balancer.

The session manager needs a running task group: the console runs uvicorn with lifespan off,
so `main` wraps serving in `async with running(app):`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from fastapi import FastAPI
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from services.console import metrics
from services.console.agents import Directory, Principal
from services.console.context import Console
from services.console.mcp_server.tools import build_server

log = structlog.get_logger()

PATH = "/mcp"
_PRINCIPAL = "baton.principal"  # key in the ASGI scope's `state`


def _principal_of(ctx: Context[Any, Any]) -> Principal:
    request = ctx.request_context.request
    principal = (
        request.scope.get("state", {}).get(_PRINCIPAL) if isinstance(request, Request) else None
    )
    if not isinstance(principal, Principal):
        # Unreachable behind `_Authenticated`; refuse rather than act as nobody.
        raise PermissionError("no authenticated principal on this request")
    return principal


class _Authenticated:
    """ASGI: a valid bearer token or 401; the principal goes into `scope["state"]`."""

    def __init__(self, directory: Directory, server: MCPServer[Any]) -> None:
        self._directory = directory
        self._server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = self._authenticate(scope)
        if principal is None:
            await _unauthorized(send)
            return
        scope.setdefault("state", {})[_PRINCIPAL] = principal
        structlog.contextvars.bind_contextvars(principal=principal.id, via="mcp")
        await self._server.session_manager.handle_request(scope, receive, send)

    def _authenticate(self, scope: Scope) -> Principal | None:
        headers = dict(scope.get("headers", []))
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.casefold() != "bearer" or not token.strip():
            metrics.AUTH_FAILURES.labels(reason="missing").inc()
            return None
        principal = self._directory.authenticate(token.strip())
        if principal is None:
            metrics.AUTH_FAILURES.labels(reason="unknown_token").inc()
        return principal


async def _unauthorized(send: Send) -> None:
    body = orjson.dumps({"detail": "a valid bearer token is required"})
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def mount(app: FastAPI, console: Console, directory: Directory) -> None:
    """Serve MCP at `/mcp` in `app` (run it with `running(app)`)."""
    server = build_server(console, directory, _principal_of)
    # Builds the session manager; the Starlette app it returns is not used (we route to it).
    server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        # DNS-rebinding protection guards token-less local servers; every request here needs
        # a bearer token a rebinding page cannot have, and behind an ingress the Host differs.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    app.state.mcp = server
    app.router.routes.append(
        Route(PATH, endpoint=_Authenticated(directory, server), methods=["GET", "POST", "DELETE"])
    )


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """Run the MCP session manager of `app` (if mounted) while serving."""
    server = getattr(app.state, "mcp", None)
    if not isinstance(server, MCPServer):
        yield
        return
    async with server.session_manager.run():
        yield
