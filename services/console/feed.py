"""The broker side of `/events`: one exclusive, auto-delete queue per console process.

Bound to the conversation events of `baton.events` (what agents see, nothing internal to other
services); deliveries are auto-acknowledged (a live view, not
a work queue: what a process misses while down, clients refetch) and handed to the hub. The
queue is bounded and drops its oldest messages if the process falls behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    ExchangeType,
)

from baton.backoff import RECONNECT, wait_or_stop
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
    """Consumes conversation events for this process and publishes them to the hub.

    Its connection is supervised like every consumer's: when the connection or the channel is
    lost, it reconnects with the one backoff policy, declares its queue again and resumes.
    Events published while it was away are missed (clients refetch, or replay by
    `Last-Event-ID`); `consuming` says whether it listens right now.
    """

    def __init__(self, url: str, hub: EventHub) -> None:
        self._url = url
        self._hub = hub
        # A client-chosen name: a reconnect redeclares it under the same name.
        self.queue_name = f"console.events.{socket.gethostname()}.{uuid.uuid4().hex[:8]}"
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._stop = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._timeout = 10.0

    @property
    def connected(self) -> bool:
        return self.consuming

    @property
    def consuming(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def start(self, *, timeout: float = 10.0) -> None:
        """Connect, declare the queue and its binding, start consuming; then stay subscribed."""
        self._timeout = timeout
        await self._subscribe()
        log.info("console.feed_consuming", queue=self.queue_name)
        self._supervisor = asyncio.create_task(self._supervise(), name="console-feed")

    async def _subscribe(self) -> None:
        try:
            connection = await aio_pika.connect(
                self._url,
                timeout=self._timeout,
                client_properties={"connection_name": "console-feed"},
            )
        except (OSError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
            raise BrokerUnavailable(f"cannot connect to the broker: {exc!r}") from exc
        try:
            channel = await connection.channel()
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
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        self._connection, self._channel = connection, channel

    async def _supervise(self) -> None:
        while not self._stop.is_set():
            channel, connection = self._channel, self._connection
            while channel is not None and not channel.is_closed and not self._stop.is_set():
                await wait_or_stop(self._stop, 0.5)
            if self._stop.is_set():
                return
            log.warning("console.feed_lost", queue=self.queue_name)
            if connection is not None and not connection.is_closed:
                with contextlib.suppress(Exception):
                    await connection.close()
            attempt = 0
            while not self._stop.is_set():
                attempt += 1
                if await wait_or_stop(self._stop, RECONNECT.delay(attempt)):
                    return
                try:
                    await self._subscribe()
                except Exception as exc:
                    log.warning("console.feed_resubscribe_failed", attempt=attempt, error=repr(exc))
                    continue
                log.info("console.feed_resubscribed", queue=self.queue_name, attempts=attempt)
                break

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._hub.publish(message.type or message.routing_key or "unknown", message.body)

    async def close(self) -> None:
        self._stop.set()
        if self._supervisor is not None:
            await self._supervisor
            self._supervisor = None
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()
        self._connection = None
        self._channel = None
