"""History wiring: the webhook consumer (import, contacts, offboarding) and the sync driver."""

from __future__ import annotations

import asyncio
import gc
from datetime import timedelta

import structlog

from baton.broker import Broker
from baton.broker.topology import HISTORY_WEBHOOKS
from baton.runtime import store_reasons
from baton.service import serve_consumers
from baton.settings import Settings
from baton.store import open_store
from baton.whatsapp import GraphClient
from services.history.driver import DriverSettings, SyncDriver
from services.history.handlers import History
from services.history.sync import RetryPolicy

log = structlog.get_logger()


def driver_settings(settings: Settings) -> DriverSettings:
    return DriverSettings(
        at_risk=timedelta(seconds=settings.history_sync_at_risk_seconds),
        lease_seconds=settings.history_sync_lease_seconds,
        poll_seconds=settings.history_sync_poll_seconds,
        retry=RetryPolicy(
            base_seconds=settings.history_sync_retry_base_seconds,
            cap_seconds=settings.history_sync_retry_cap_seconds,
        ),
    )


# A history chunk parses into tens of thousands of short-lived, acyclic dicts and lists; with
# the default threshold (700 allocations) the cyclic collector runs hundreds of times per chunk
# and rescans what survives. A larger young generation cut history's CPU per message by ~20 %
# in bench/history.py; memory stays bounded by the chunks in flight.
GC_THRESHOLD = (20_000, 10, 10)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    gc.freeze()  # what start-up created lives as long as the process: never rescan it
    gc.set_threshold(*GC_THRESHOLD)
    if settings.history_sync_lease_seconds <= settings.graph_timeout_seconds:
        log.warning(
            "history.lease_shorter_than_timeout",
            lease=settings.history_sync_lease_seconds,
            timeout=settings.graph_timeout_seconds,
        )
    store = await open_store(settings.store_url)
    broker = Broker(settings.amqp_url, name="history")
    await broker.connect()
    graph = GraphClient.from_settings(settings)
    history = History(store, batch_size=settings.history_batch_size, publish=broker.publish_command)
    driver = SyncDriver(store, graph, driver_settings(settings))

    async def ready() -> list[str]:
        return await store_reasons(store.ping)  # the broker's part is serve_consumers'

    try:
        await serve_consumers(
            # Few chunks in flight: each may be megabytes, and memory must stay bounded.
            settings.model_copy(update={"consumer_prefetch": settings.history_prefetch}),
            stop,
            broker=broker,
            subscriptions=[(HISTORY_WEBHOOKS, history.on_webhook)],
            ready=ready,
            background=[driver.run],
        )
    finally:
        await broker.close()
        await graph.aclose()
        await store.close()
