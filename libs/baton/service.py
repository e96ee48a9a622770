"""The shell every consuming service shares: subscribe, serve ops endpoints, drain on stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import structlog

from baton.broker import Broker, Delivery, QueueSpec
from baton.runtime import ReadinessCheck, ops_app, serve_http
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
    ready: ReadinessCheck,
    background: Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = (),
) -> None:
    """Consume until `stop`, then stop taking deliveries and let in-flight ones settle.

    The whole topology is declared before anything is consumed or reported ready. Readiness is
    the broker's (connected, every subscription live), the background jobs' (still running) and
    the service's own `ready` (its store, ...), each failing one named in `/readyz`.
    """
    await broker.declare_topology()
    for spec, handler in subscriptions:
        await broker.consume(
            spec,
            handler,
            prefetch=settings.consumer_prefetch,
            max_attempts=settings.max_delivery_attempts,
        )
        log.info("service.consuming", queue=spec.name)
    tasks = {
        getattr(job, "__qualname__", repr(job)): asyncio.create_task(job(stop))
        for job in background
    }

    async def readiness() -> list[str]:
        reasons = broker.not_ready_reasons()
        if not broker.topology_declared:
            reasons.append("topology not declared")
        reasons += [f"{name} stopped" for name, task in tasks.items() if task.done()]
        own = await ready()
        if isinstance(own, bool):
            reasons += [] if own else ["not ready"]
        else:
            reasons += own
        return reasons

    ops_stop = asyncio.Event()
    ops = asyncio.create_task(
        serve_http(
            ops_app(readiness, liveness_grace=settings.liveness_grace_seconds),
            host=settings.ops_host,
            port=settings.metrics_port,
            stop=ops_stop,
        )
    )
    try:
        await stop.wait()
    finally:
        await broker.drain(timeout=DRAIN_SECONDS)
        for task in tasks.values():
            await task  # background jobs watch `stop` themselves
        ops_stop.set()
        await ops
