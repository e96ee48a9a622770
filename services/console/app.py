"""Console wiring: the agent API app, its broker feed for `/events`, and the process's main."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog
from fastapi import FastAPI

from baton.broker import Broker
from baton.conversations import Conversations
from baton.runtime import ReadinessCheck, add_ops_routes, serve_http, store_reasons
from baton.settings import Settings
from baton.store import open_store
from services.console import (
    accounts,
    events,
    knowledge,
    limits,
    media,
    onboarding,
    routes,
    workflow_routes,
)
from services.console.agents import Directory, load_directory
from services.console.context import Console
from services.console.desk import routes as desk_routes
from services.console.eventlog import CONSOLE_EVENT_LOG, EventAppender, EventLogWriter
from services.console.feed import EventFeed
from services.console.hub import EventHub, EventLog
from services.console.mcp_server import http as mcp_http
from services.console.workflow import Workflow, run_sweeper

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
    for refused in limits.REFUSED_INPUT:  # fuzzing found these
        app.add_exception_handler(refused, limits.out_of_range_response)
    add_ops_routes(app, ready, liveness_grace=console.settings.liveness_grace_seconds)
    # Before routes: its multipart send shares the JSON send's path (it matches multipart only).
    app.include_router(media.router)  # files of messages, uploads, sending files (issue 18)
    app.include_router(routes.router)
    app.include_router(events.router)
    app.include_router(onboarding.router)  # Coexistence onboarding (the history area's routes)
    app.include_router(knowledge.router)  # the bot's knowledge of each number
    app.include_router(desk_routes.router)  # the agent desk at `/` (issue 11)
    app.include_router(workflow_routes.router)  # presence, assignment, transfer, notes, resolve
    mcp_http.mount(app, console, directory)  # MCP at /mcp (run by `mcp_http.running` in main)
    return app


async def main(settings: Settings, stop: asyncio.Event) -> None:
    directory = load_directory(settings)  # refuses to start without usable agents
    log.info("console.principals", principals=directory.ids())
    store = await open_store(settings.store_url)
    await accounts.prepare(store, settings)  # desk accounts; refuses the dev password in prod
    broker = Broker(settings.amqp_url, name="console")
    hub = hub_from_settings(settings, store)
    feed = EventFeed(settings.amqp_url, hub)
    hub_stop = asyncio.Event()
    following: asyncio.Task[None] | None = None
    try:
        await broker.connect()
        # Agents' sends must find the outbox's queue even if the outbox has not started yet.
        await broker.declare_topology()
        await start_event_log(settings, broker, store, hub)
        following = asyncio.create_task(hub.run(hub_stop), name="console-event-log")
        await feed.start()
        conversations = Conversations(store, broker, settings.numbers())
        console = Console(settings, store, broker, conversations, hub)

        async def ready() -> list[str]:
            reasons = broker.not_ready_reasons()
            if not feed.consuming:
                reasons.append(f"not consuming {feed.queue_name}")
            if not hub.following:
                reasons.append("not following the event log")
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
            # Stale presences and auto-assignment (issue 12); exact across replicas.
            sweeper = asyncio.create_task(
                run_sweeper(Workflow(console, directory), settings.console_assign_seconds, stop)
            )
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({server, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            sweeper.cancel()  # a sweep cut short is harmless: every step is a compare-and-set
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            # Event streams never end by themselves: end them, then let requests in flight finish.
            hub.close()
            http_stop.set()
            await server
    finally:
        hub_stop.set()
        if following is not None:
            await following
        await feed.close()
        await broker.close()
        await store.close()


def hub_from_settings(settings: Settings, store: EventLog) -> EventHub:
    """The SSE hub over the shared event log, as configured."""
    return EventHub(
        store,
        replay=settings.console_replay_events,
        client_buffer=settings.console_client_buffer,
        poll_seconds=settings.console_event_poll_seconds,
        retention=timedelta(seconds=settings.console_event_retention_seconds),
        retention_events=settings.console_event_retention_events,
    )


async def start_event_log(
    settings: Settings, broker: Broker, store: EventAppender, hub: EventHub
) -> None:
    """Write events into the shared log (one active writer across replicas), and follow it."""
    writer = EventLogWriter(store)
    await broker.consume(
        CONSOLE_EVENT_LOG,
        writer.on_event,
        prefetch=settings.consumer_prefetch,
        max_attempts=settings.max_delivery_attempts,
    )
    await hub.start()
