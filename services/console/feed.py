"""The broker side of `/events`: one exclusive, auto-delete queue per console process.

Bound to the conversation events of `baton.events` (what agents see, nothing internal to other
services); deliveries are auto-acknowledged (a live view, not
a work queue: what a process misses while down, clients refetch) and handed to the hub. The
queue is bounded and drops its oldest messages if the process falls behind.
"""

from __future__ import annotations

import socket
import uuid

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection, ExchangeType

from baton.broker import EVENTS, BrokerUnavailable
from baton.messages import MessageSent, ReplyFenced, SendFailed
from services.console.hub import EventHub

log = structlog.get_logger()

BINDINGS = (
    "event.conversation.#",  # the handoff shell and the router: modes, messages, statuses
    MessageSent.TYPE,
    SendFailed.TYPE,
    ReplyFenced.TYPE,
)
MAX_QUEUED = 10_000


class EventFeed:
    """Consumes conversation events for this process and publishes them to the hub."""

    def __init__(self, url: str, hub: EventHub) -> None:
        self._url = url
        self._hub = hub
        # A client-chosen name: a robust reconnect may redeclare it (`amq.gen-*` it may not).
        self.queue_name = f"console.events.{socket.gethostname()}.{uuid.uuid4().hex[:8]}"
        self._connection: AbstractRobustConnection | None = None

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def start(self, *, timeout: float = 10.0) -> None:
        """Connect, declare the queue and its binding, start consuming."""
        try:
            self._connection = await aio_pika.connect_robust(
                self._url, timeout=timeout, client_properties={"connection_name": "console-feed"}
            )
        except (OSError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
            raise BrokerUnavailable(f"cannot connect to the broker: {exc!r}") from exc
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(EVENTS, ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(
            self.queue_name,
            exclusive=True,
            auto_delete=True,
            arguments={"x-max-length": MAX_QUEUED, "x-overflow": "drop-head"},
        )
        for key in BINDINGS:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message, no_ack=True)
        log.info("console.feed_consuming", queue=self.queue_name)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._hub.publish(message.type or message.routing_key or "unknown", message.body)

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()
        self._connection = None
