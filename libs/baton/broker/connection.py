"""One broker connection per process: declares the topology, publishes with confirms, consumes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustConnection,
    DeliveryMode,
    ExchangeType,
)

from baton.broker.consumer import Consumer, Delivery
from baton.broker.topology import (
    COMMANDS,
    DLX,
    EVENTS,
    QUEUES,
    UNROUTED,
    WEBHOOKS,
    QueueSpec,
    dead_letter_queue,
)
from baton.messages import Message, new_id

log = structlog.get_logger()

_PERSISTENT = DeliveryMode.PERSISTENT.value


class BrokerUnavailable(Exception):
    """No connection to the broker right now."""


class PublishFailed(Exception):
    """The broker did not confirm a publish (nack, unroutable, timeout or lost channel)."""


class Broker:
    """A robust aio-pika connection; publishing waits for the broker's confirm, always."""

    def __init__(self, url: str, *, name: str) -> None:
        self._url = url
        self._name = name
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._consumers: list[Consumer] = []

    @property
    def connected(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def connect(self, *, timeout: float = 10.0) -> None:
        """Connect once; raises BrokerUnavailable if the broker cannot be reached."""
        try:
            self._connection = await aio_pika.connect_robust(
                self._url,
                timeout=timeout,
                client_properties={"connection_name": self._name},
            )
        except (OSError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
            raise BrokerUnavailable(f"cannot connect to the broker: {exc!r}") from exc
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await self._declare_exchanges()
        log.info("broker.connected", connection=self._name)

    async def connect_in_background(self, *, retry_every: float = 1.0) -> asyncio.Task[None]:
        """Keep trying to connect until it works; ingest serves 503 meanwhile."""

        async def _loop() -> None:
            while True:
                try:
                    await self.connect(timeout=retry_every * 5)
                    return
                except BrokerUnavailable as exc:
                    log.warning("broker.unreachable", error=str(exc))
                    await asyncio.sleep(retry_every)

        return asyncio.create_task(_loop(), name="broker-connect")

    async def _declare_exchanges(self) -> None:
        channel = self._require_channel()
        unrouted = await channel.declare_exchange(UNROUTED, ExchangeType.FANOUT, durable=True)
        webhooks = await channel.declare_exchange(
            WEBHOOKS, ExchangeType.TOPIC, durable=True, arguments={"alternate-exchange": UNROUTED}
        )
        commands = await channel.declare_exchange(COMMANDS, ExchangeType.TOPIC, durable=True)
        events = await channel.declare_exchange(EVENTS, ExchangeType.TOPIC, durable=True)
        dlx = await channel.declare_exchange(DLX, ExchangeType.DIRECT, durable=True)
        self._exchanges = {
            UNROUTED: unrouted,
            WEBHOOKS: webhooks,
            COMMANDS: commands,
            EVENTS: events,
            DLX: dlx,
        }

    async def declare_queue(self, spec: QueueSpec) -> None:
        """Declare a durable quorum queue, its bindings and its dead-letter queue."""
        channel = self._require_channel()
        dlq = await channel.declare_queue(
            dead_letter_queue(spec.name), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq.bind(self._exchanges[DLX], routing_key=spec.name)
        queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments())
        for key in spec.bindings:
            await queue.bind(self._exchanges[spec.exchange], routing_key=key)

    async def declare_topology(self) -> None:
        """Declare every queue of the system, so any publish has somewhere to land."""
        for spec in QUEUES.values():
            await self.declare_queue(spec)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        message: Message,
        *,
        correlation_id: str | None = None,
        timeout: float = 5.0,
        mandatory: bool = True,
    ) -> None:
        """Publish a persistent message and return only once the broker confirmed it."""
        await self.publish_raw(
            exchange,
            routing_key,
            message.model_dump_json().encode(),
            type=message.TYPE,
            version=message.VERSION,
            correlation_id=correlation_id,
            timeout=timeout,
            mandatory=mandatory,
        )

    async def publish_command(self, command: Message, *, correlation_id: str | None = None) -> None:
        """Publish a command; routed by its TYPE, and unroutable is an error."""
        await self.publish(COMMANDS, command.TYPE, command, correlation_id=correlation_id)

    async def publish_event(self, event: Message, *, correlation_id: str | None = None) -> None:
        """Publish an event; routed by its TYPE, and fine if nobody listens yet."""
        await self.publish(
            EVENTS, event.TYPE, event, correlation_id=correlation_id, mandatory=False
        )

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        type: str,
        version: int = 1,
        message_id: str | None = None,
        correlation_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        timeout: float = 5.0,
        mandatory: bool = True,
    ) -> None:
        if not self.connected:
            raise BrokerUnavailable("not connected to the broker")
        # Straight to aiormq with pamqp properties: the same frames aio_pika.Message and
        # Exchange.publish produced, for about 7 µs less CPU per publish.
        properties = aiormq.spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=_PERSISTENT,
            priority=0,  # aio_pika.Message always sent it
            message_id=message_id or new_id(),
            correlation_id=correlation_id,
            message_type=type,
            timestamp=datetime.now(UTC),
            headers={"version": version, **(headers or {})},
        )
        name = self._exchanges[exchange].name  # KeyError for an exchange never declared
        try:
            channel = await self._require_channel().get_underlay_channel()
            # wait=False: release the channel lock once the frames are in the connection's
            # (bounded) write queue, not after the socket write. basic_publish still returns only
            # when the broker confirmed the message, and raises on a nack, return or timeout.
            await cast(aiormq.Channel, channel).basic_publish(
                body,
                exchange=name,
                routing_key=routing_key,
                properties=properties,
                mandatory=mandatory,
                timeout=timeout,
                wait=False,
            )
        except (TimeoutError, aiormq.exceptions.AMQPError, RuntimeError, OSError) as exc:
            # A lost confirm does not prove the broker dropped the message; the caller treats it
            # as "not confirmed" (ingest answers 503, Meta retries, consumers dedupe).
            raise PublishFailed(
                f"publish to {exchange}/{routing_key} not confirmed: {exc!r}"
            ) from exc

    async def consume(
        self,
        spec: QueueSpec,
        handler: Callable[[Delivery], Awaitable[None]],
        *,
        prefetch: int,
        max_attempts: int,
    ) -> Consumer:
        """Declare `spec` and consume it with the settling wrapper on a dedicated channel."""
        await self.declare_queue(spec)
        connection = self._require_connection()
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(spec.name, ensure=False)
        dlx = await channel.get_exchange(DLX, ensure=False)
        consumer = Consumer(queue, dlx, handler, max_attempts=max_attempts)
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def drain(self, *, timeout: float) -> None:
        """Stop taking deliveries and let in-flight handlers finish and settle."""
        await asyncio.gather(*(c.stop(timeout=timeout) for c in self._consumers))

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()
        self._connection = None
        self._channel = None

    def _require_channel(self) -> AbstractChannel:
        if self._channel is None:
            raise BrokerUnavailable("not connected to the broker")
        return self._channel

    def _require_connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BrokerUnavailable("not connected to the broker")
        return self._connection
