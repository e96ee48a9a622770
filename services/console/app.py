"""Console wiring: the agent API app, its broker feed for `/events`, and the process's main."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import FastAPI

from baton.broker import Broker
from baton.conversations import Conversations
from baton.runtime import ReadinessCheck, add_ops_routes, serve_http, store_reasons
from baton.settings import Settings
from baton.store import open_store
from services.console import events, knowledge, onboarding, routes
from services.console.agents import Directory, load_directory
from services.console.context import Console
from services.console.feed import EventFeed
from services.console.hub import EventHub
from services.console.mcp_server import http as mcp_http

log = structlog.get_logger()


def create_app(console: Console, directory: Directory, ready: ReadinessCheck) -> FastAPI:
    """The agent API around already-built handles (real in `main`, or a test's)."""
    app = FastAPI(
        title="Baton console",
        summary="Agents' window on WhatsApp conversations shared with the bot.",
        description=(routes.__doc__ or "")
        + "\nEvery call needs `Authorization: Bearer <token>` (401 without a valid one).",
        version="1",
    )
    app.state.console = console
    app.state.directory = directory
    app.add_exception_handler(routes.ConflictError, routes.conflict_response)
    add_ops_routes(app, ready, liveness_grace=console.settings.liveness_grace_seconds)
    app.include_router(routes.router)
    app.include_router(events.router)
    app.include_router(onboarding.router)  # Coexistence onboarding (the history area's routes)
    app.include_router(knowledge.router)  # the bot's knowledge of each number
    mcp_http.mount(app, console, directory)  # MCP at /mcp (run by `mcp_http.running` in main)
    return app


async def main(settings: Settings, stop: asyncio.Event) -> None:
    directory = load_directory(settings)  # refuses to start without usable agents
    log.info("console.principals", principals=directory.ids())
    store = await open_store(settings.store_url)
    broker = Broker(settings.amqp_url, name="console")
    hub = EventHub(
        replay=settings.console_replay_events, client_buffer=settings.console_client_buffer
    )
    feed = EventFeed(settings.amqp_url, hub)
    try:
        await broker.connect()
        # Agents' sends must find the outbox's queue even if the outbox has not started yet.
        await broker.declare_topology()
        await feed.start()
        conversations = Conversations(store, broker, settings.numbers())
        console = Console(settings, store, broker, conversations, hub)

        async def ready() -> list[str]:
            reasons = broker.not_ready_reasons()
            if not feed.consuming:
                reasons.append(f"not consuming {feed.queue_name}")
            return reasons + await store_reasons(store.ping)

        app = create_app(console, directory, ready)
        http_stop = asyncio.Event()
        # uvicorn runs with lifespan off: the MCP session manager's task group is started here.
        async with mcp_http.running(app):
            server = asyncio.create_task(
                serve_http(
                    app, host=settings.console_host, port=settings.console_port, stop=http_stop
                )
            )
            log.info(
                "console.listening", url=f"http://{settings.console_host}:{settings.console_port}"
            )
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({server, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            # Event streams never end by themselves: end them, then let requests in flight finish.
            hub.close()
            http_stop.set()
            await server
    finally:
        await feed.close()
        await broker.close()
        await store.close()
