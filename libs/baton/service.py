"""The shell every consuming service shares: subscribe, serve ops endpoints, drain on stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import structlog

from baton.broker import Broker, Delivery, QueueSpec
from baton.runtime import ops_app, serve_http
from baton.settings import Settings

log = structlog.get_logger()

Handler = Callable[[Delivery], Awaitable[None]]

# In-flight handlers get this long to finish and settle after SIGTERM (Kubernetes' grace period
# must be longer).
DRAIN_SECONDS = 25.0


async def serve_consumers(
    settings: Settings,
    stop: asyncio.Event,
    *,
    broker: Broker,
    subscriptions: Sequence[tuple[QueueSpec, Handler]],
    ready: Callable[[], Awaitable[bool]],
    background: Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = (),
) -> None:
    """Consume until `stop`, then stop taking deliveries and let in-flight ones settle."""
    await broker.declare_topology()
    for spec, handler in subscriptions:
        await broker.consume(
            spec,
            handler,
            prefetch=settings.consumer_prefetch,
            max_attempts=settings.max_delivery_attempts,
        )
        log.info("service.consuming", queue=spec.name)
    tasks = [asyncio.create_task(job(stop)) for job in background]
    ops_stop = asyncio.Event()
    ops = asyncio.create_task(
        serve_http(
            ops_app(ready), host=settings.ops_host, port=settings.metrics_port, stop=ops_stop
        )
    )
    try:
        await stop.wait()
    finally:
        await broker.drain(timeout=DRAIN_SECONDS)
        for task in tasks:
            await task  # background jobs watch `stop` themselves
        ops_stop.set()
        await ops
