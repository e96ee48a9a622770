"""Chatwoot bridge wiring: the mirror (a consumer of `chatwoot.events`) and the callback app.

Off unless a number is bridged (see settings.py): with none, the process only serves its ops
endpoints and consumes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from fastapi import FastAPI

from baton.broker import Broker
from baton.broker.topology import CHATWOOT_EVENTS
from baton.conversations import Conversations
from baton.runtime import add_ops_routes, serve_http
from baton.service import DRAIN_SECONDS
from baton.settings import Settings
from baton.store import open_store
from baton.store.port import Store
from services.chatwoot.callbacks import Callbacks
from services.chatwoot.inboxes import Inboxes
from services.chatwoot.mirror import Mirror
from services.chatwoot.settings import BridgeSettings, bridged_numbers

log = structlog.get_logger()


@dataclass(frozen=True)
class Bridge:
    """Everything the bridge runs, built once (real adapters in `main`, a test's otherwise)."""

    inboxes: Inboxes
    mirror: Mirror
    callbacks: Callbacks
    app: FastAPI


def bootstrap(
    settings: Settings,
    bridge: BridgeSettings,
    *,
    store: Store,
    broker: Broker,
    stop: asyncio.Event,
    ready: Callable[[], Awaitable[bool]],
) -> Bridge:
    """Build the mirror, the callbacks and their HTTP app around the given adapters."""
    numbers = settings.numbers()
    inboxes = Inboxes(bridged_numbers(bridge, numbers), timeout=bridge.timeout_seconds)
    conversations = Conversations(store, broker, numbers)
    mirror = Mirror(
        store,
        conversations,
        inboxes,
        retry_for_seconds=bridge.retry_for_seconds,
        history_limit=bridge.history_limit,
        stop=stop,
    )
    callbacks = Callbacks(store, broker, conversations, inboxes, mirror)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    add_ops_routes(app, ready)
    app.include_router(callbacks.router())
    return Bridge(inboxes, mirror, callbacks, app)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    bridge_settings = BridgeSettings()
    store = await open_store(settings.store_url)
    broker = Broker(settings.amqp_url, name="chatwoot")

    async def ready() -> bool:
        return broker.connected and await store.ping()

    bridge = bootstrap(
        settings, bridge_settings, store=store, broker=broker, stop=stop, ready=ready
    )
    try:
        await broker.connect()
        if bridge.inboxes:
            # One delivery at a time, one active consumer across replicas: Chatwoot sees each
            # conversation's changes in Baton's order.
            await broker.consume(
                CHATWOOT_EVENTS,
                bridge.mirror.on_event,
                prefetch=1,
                max_attempts=settings.max_delivery_attempts,
            )
            log.info("chatwoot.bridging", queue=CHATWOOT_EVENTS.name)
        else:
            log.info("chatwoot.disabled", reason="no number is bridged to a Chatwoot inbox")
        http_stop = asyncio.Event()
        server = asyncio.create_task(
            serve_http(
                bridge.app, host=settings.chatwoot_host, port=settings.chatwoot_port, stop=http_stop
            )
        )
        log.info(
            "chatwoot.listening", url=f"http://{settings.chatwoot_host}:{settings.chatwoot_port}"
        )
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({server, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if server.done():
            server.result()
        await broker.drain(timeout=DRAIN_SECONDS)
        http_stop.set()
        await server
    finally:
        await bridge.inboxes.aclose()
        await broker.close()
        await store.close()
