"""`python -m services.console mcp --stdio`: the MCP server for a desktop client, over stdio.

The client starts this process and speaks MCP on its stdin/stdout (logs go to stderr). The
caller is the one principal whose token is in `BATON_MCP_TOKEN` (an agent's or a bot's,
configured like the console's: `BATON_AGENT_TOKENS`, `BATON_BOT_TOKENS`, `BATON_AGENTS_FILE`);
without a valid one the process refuses to start. It talks to the same store and broker as the
console and runs the same tools, so its changes go through the same handoff core and audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

import structlog
from mcp.server.mcpserver import Context

from baton.broker import Broker
from baton.conversations import Conversations
from baton.settings import Settings
from baton.store import open_store
from services.console.agents import Directory, Principal, load_directory
from services.console.context import Console
from services.console.hub import EventHub
from services.console.mcp_server.tools import build_server

log = structlog.get_logger()

TOKEN_VARIABLE = "BATON_MCP_TOKEN"


def principal_from_environment(directory: Directory) -> Principal:
    """The principal whose token is in BATON_MCP_TOKEN; exits with a message otherwise."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        sys.exit(f"{TOKEN_VARIABLE} is not set: put an agent's or a bot's console token in it")
    principal = directory.authenticate(token)
    if principal is None:
        sys.exit(f"{TOKEN_VARIABLE} is not a token the console knows")
    return principal


async def main(settings: Settings, stop: asyncio.Event) -> None:
    directory = load_directory(settings)
    principal = principal_from_environment(directory)
    structlog.contextvars.bind_contextvars(principal=principal.id, via="mcp")
    store = await open_store(settings.store_url)
    broker = Broker(settings.amqp_url, name="console-mcp")
    try:
        await broker.connect()
        # Sends must find the outbox's queue even if the outbox has not started yet.
        await broker.declare_topology()
        conversations = Conversations(store, broker, settings.numbers())
        # No event feed here: the hub only completes the context the tools share.
        hub = EventHub(store, replay=1, client_buffer=1)
        console = Console(settings, store, broker, conversations, hub)

        def principal_of(_: Context[Any, Any]) -> Principal:
            return principal

        server = build_server(console, directory, principal_of)
        log.info("console.mcp_stdio_ready", principal=principal.id)
        serving = asyncio.create_task(server.run_stdio_async(), name="mcp-stdio")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if serving.done():
            serving.result()  # stdin closed: the client went away
        else:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
    finally:
        await broker.close()
        await store.close()
