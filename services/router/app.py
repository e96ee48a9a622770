"""Router wiring: store + broker in, the conversation shell, handlers and the timer sweeper."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from baton.broker import Broker
from baton.broker.topology import ROUTER_COMMANDS, ROUTER_WEBHOOKS
from baton.conversations import Clock, Conversations
from baton.messages import utcnow
from baton.runtime import store_reasons
from baton.service import serve_consumers
from baton.settings import Settings
from baton.store import Store, open_store
from services.router.handlers import Router
from services.router.metrics import RouterMetrics
from services.router.sweeper import Sweeper


@dataclass(frozen=True)
class RouterApp:
    conversations: Conversations
    router: Router
    sweeper: Sweeper


def bootstrap(
    settings: Settings, store: Store, broker: Broker, *, clock: Clock = utcnow
) -> RouterApp:
    """Build the router from its adapters (real ones in `main`, test doubles elsewhere)."""
    sweeper_interval = settings.router_sweep_seconds
    conversations = Conversations(
        store,
        broker,
        settings.numbers(),
        clock,
        observers=[RouterMetrics()],
        timer_lease=timedelta(seconds=settings.router_timer_lease_seconds),
        relay_lease=timedelta(seconds=settings.router_relay_lease_seconds),
    )
    sweeper = Sweeper(
        conversations,
        interval=sweeper_interval,
        store=store,
        stats_interval=settings.router_stats_seconds,
    )
    conversations.add_observer(sweeper)
    return RouterApp(conversations, Router(store, broker, conversations), sweeper)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    store = await open_store(settings.store_url)
    # A burst must not pay for opening connections and first preparations.
    await store.warm_up()
    broker = Broker(settings.amqp_url, name="router")
    await broker.connect()
    app = bootstrap(settings, store, broker)

    async def ready() -> list[str]:
        return await store_reasons(store.ping)  # the broker's part is serve_consumers'

    try:
        await serve_consumers(
            settings,
            stop,
            broker=broker,
            subscriptions=[
                (ROUTER_WEBHOOKS, app.router.on_webhook),
                (ROUTER_COMMANDS, app.router.on_command),
            ],
            ready=ready,
            background=[app.sweeper.run],
        )
    finally:
        await broker.close()
        await store.close()
