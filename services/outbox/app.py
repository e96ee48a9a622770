"""Outbox wiring: store, broker, Graph API client, the replica runtime and its ops endpoints."""

from __future__ import annotations

import asyncio
from typing import Any

from baton.broker import Broker
from baton.runtime import ops_app, serve_http, store_reasons
from baton.settings import Settings
from baton.store import open_store
from baton.whatsapp.client import GraphClient
from services.outbox.handlers import Outbox
from services.outbox.runtime import OutboxRuntime, RuntimeConfig

# An attempt with no recorded outcome counts as abandoned (its replica crashed) this long after
# the Graph API timeout; only then is the send tried again.
_ABANDON_MARGIN_SECONDS = 5.0


async def main(settings: Settings, stop: asyncio.Event) -> None:
    numbers = settings.numbers()
    store = await open_store(settings.store_url)
    broker = Broker(settings.amqp_url, name="outbox")
    await broker.connect()
    graph = GraphClient.from_settings(settings)
    outbox = Outbox(
        store,
        broker,
        graph,
        numbers,
        abandon_after_seconds=settings.graph_timeout_seconds + _ABANDON_MARGIN_SECONDS,
    )
    runtime = OutboxRuntime(
        RuntimeConfig.from_settings(settings),
        store=store,
        broker=broker,
        outbox=outbox,
        numbers=numbers,
    )

    async def ready() -> list[str]:
        reasons = broker.not_ready_reasons() + runtime.not_ready_reasons()
        if not broker.topology_declared:
            reasons.append("topology not declared")
        return reasons + await store_reasons(store.ping)

    app = ops_app(ready, liveness_grace=settings.liveness_grace_seconds)

    @app.get("/outbox/numbers", include_in_schema=False)
    async def numbers_view() -> dict[str, Any]:
        return runtime.snapshot()

    ops_stop = asyncio.Event()
    ops = asyncio.create_task(
        serve_http(app, host=settings.ops_host, port=settings.metrics_port, stop=ops_stop)
    )
    try:
        await runtime.run(stop)
    finally:
        ops_stop.set()
        await ops
        await graph.aclose()
        await broker.close()
        await store.close()
