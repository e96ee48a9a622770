"""A consumer that owns its channel and comes back by itself after losing it.

aio-pika's robust connection restores only what it saw declared through itself, and not a
queue fetched with `get_queue(ensure=False)`: after a broker restart the connection came back
and the consumers did not. So each subscription is supervised explicitly: open a channel on
the broker's current connection, set its prefetch, declare its queue, consume, then wait for
the channel (or the connection under it) to close; back off with the one policy and do it all
again. `consuming` says whether it is subscribed right now: readiness reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue

from baton import metrics
from baton.backoff import RECONNECT, Backoff, wait_or_stop
from baton.broker.consumer import Consumer, Delivery

log = structlog.get_logger()

Handler = Callable[[Delivery], Awaitable[None]]
# What to subscribe on a fresh channel: returns the queue to consume and the dead-letter exchange.
Declare = Callable[[AbstractChannel], Awaitable[tuple[AbstractQueue, AbstractExchange]]]


class ConnectionSource(Protocol):
    """Where a subscription gets its connection from (the process's `Broker`)."""

    async def wait_connection(self) -> AbstractConnection: ...


class SupervisedConsumer:
    """Consume one queue for as long as it runs, re-subscribing whenever the channel is lost."""

    def __init__(
        self,
        source: ConnectionSource,
        queue_name: str,
        declare: Declare,
        handler: Handler,
        *,
        prefetch: int,
        max_attempts: int,
        backoff: Backoff = RECONNECT,
    ) -> None:
        self.queue_name = queue_name
        self._source = source
        self._declare = declare
        self._handler = handler
        self._prefetch = prefetch
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._channel: AbstractChannel | None = None
        self._current: Consumer | None = None
        # Earlier subscriptions whose handlers may still be running (their settle will fail).
        self._previous: list[Consumer] = []
        self._subscribed = asyncio.Event()
        self.resubscriptions = 0

    @property
    def consuming(self) -> bool:
        return (
            self._current is not None and self._channel is not None and not self._channel.is_closed
        )

    async def start(self) -> None:
        """Subscribe once (errors propagate: a bad declaration fails start-up), then supervise."""
        channel, consumer = await self._subscribe()
        self._task = asyncio.create_task(
            self._supervise(channel, consumer), name=f"consume:{self.queue_name}"
        )

    async def stop(self, *, timeout: float) -> None:
        """Stop taking deliveries, let in-flight handlers settle, then close the channel.

        Closing the channel hands every unacknowledged delivery back to the broker at once: a
        delivery a handler forgot to settle is redelivered, never silently held.
        """
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        consumers = [*self._previous, *([self._current] if self._current else [])]
        await asyncio.gather(*(c.stop(timeout=timeout) for c in consumers))
        self._previous.clear()
        channel, self._channel = self._channel, None
        self._current = None
        metrics.CONSUMER_UP.labels(queue=self.queue_name).set(0)
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):  # lost already: nothing left to hand back
                await channel.close()

    async def halt(self) -> None:
        """Stop supervising at once (the connection is closing); in-flight handlers are left."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        metrics.CONSUMER_UP.labels(queue=self.queue_name).set(0)

    async def _subscribe(self) -> tuple[AbstractChannel, Consumer]:
        connection = await self._source.wait_connection()
        channel = await connection.channel(publisher_confirms=True)
        try:
            await channel.set_qos(prefetch_count=self._prefetch)
            queue, dead_letters = await self._declare(channel)
            consumer = Consumer(queue, dead_letters, self._handler, max_attempts=self._max_attempts)
            # The broker cancels a subscription by itself when the queue is deleted or its
            # quorum leader moves away; the channel stays open, so closing it is how that
            # subscription is declared lost.
            underlay = await channel.get_underlay_channel()
            underlay.on_consumer_cancel_callbacks.add(_closer(channel, self.queue_name))
            await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await channel.close()
            raise
        self._channel = channel
        self._current = consumer
        metrics.CONSUMER_UP.labels(queue=self.queue_name).set(1)
        return channel, consumer

    async def _supervise(self, channel: AbstractChannel, consumer: Consumer) -> None:
        attempt = 0
        while True:
            await _wait_closed(channel, self._stop)
            if self._stop.is_set():
                return
            metrics.CONSUMER_UP.labels(queue=self.queue_name).set(0)
            log.warning("consumer.channel_lost", queue=self.queue_name)
            self._previous = [c for c in self._previous if c.busy] + [consumer]
            self._current = None
            while True:
                attempt += 1
                if await wait_or_stop(self._stop, self._backoff.delay(attempt)):
                    return
                try:
                    subscribing = asyncio.create_task(self._subscribe())
                    stopping = asyncio.create_task(self._stop.wait())
                    await asyncio.wait({subscribing, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    stopping.cancel()
                    if not subscribing.done():
                        subscribing.cancel()
                        with contextlib.suppress(BaseException):
                            await subscribing
                        return
                    channel, consumer = subscribing.result()
                except Exception as exc:
                    log.warning(
                        "consumer.resubscribe_failed",
                        queue=self.queue_name,
                        attempt=attempt,
                        error=repr(exc),
                    )
                    continue
                break
            self.resubscriptions += 1
            metrics.CONSUMER_RESUBSCRIBED.labels(queue=self.queue_name).inc()
            log.info("consumer.resubscribed", queue=self.queue_name, attempts=attempt)
            attempt = 0


def _closer(channel: AbstractChannel, queue: str) -> Callable[[object], Awaitable[None]]:
    async def close() -> None:
        with contextlib.suppress(Exception):
            await channel.close()

    async def on_cancel(_frame: object) -> None:
        log.warning("consumer.cancelled_by_broker", queue=queue)
        # Not awaited here: this runs inside the channel's frame reader, which the close needs.
        task = asyncio.create_task(close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    return on_cancel


_closing: set[asyncio.Task[None]] = set()


async def _wait_closed(channel: AbstractChannel, stop: asyncio.Event) -> None:
    """Return when the channel closed (or its connection did), or on `stop`."""
    closed = asyncio.Event()

    def on_close(*_: object) -> None:
        closed.set()

    channel.close_callbacks.add(on_close)
    try:
        while not stop.is_set() and not channel.is_closed:
            # The callback is the fast path; the poll covers a close that raced the add.
            waiters = [asyncio.create_task(closed.wait()), asyncio.create_task(stop.wait())]
            try:
                await asyncio.wait(waiters, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
    finally:
        with contextlib.suppress(Exception):
            channel.close_callbacks.discard(on_close)
