"""The intake: every send request arrives in `outbox.intake` and is forwarded, one at a time and
in arrival order, to its business number's queue.

The intake queue has a single active consumer across all replicas, so requests of one
conversation reach their number's queue in the order they were published. A request is acked
only after the broker confirmed its forward; a crash in between forwards it twice, and the
number's worker drops the second by its idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable

import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pydantic import ValidationError

from baton.broker import COMMANDS, Broker
from baton.broker.topology import OUTBOX_INTAKE, outbox_number_queue
from baton.messages import SendText
from services.outbox import metrics
from services.outbox.settle import Settler, channel_open

log = structlog.get_logger()

# A phone_number_id becomes part of a queue name and a routing key.
_PHONE_NUMBER_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_RETRY_CAP_SECONDS = 5.0


class Intake:
    def __init__(
        self,
        broker: Broker,
        settler: Settler,
        ensure_number: Callable[[str], Awaitable[None]],
        *,
        prefetch: int = 256,
    ) -> None:
        self._broker = broker
        self._settler = settler
        self._ensure_number = ensure_number
        self._prefetch = prefetch
        self._channel: AbstractChannel | None = None
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self, connection: AbstractConnection) -> None:
        self._stopping = asyncio.Event()
        self._inbox = asyncio.Queue()
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await channel.get_queue(OUTBOX_INTAKE.name, ensure=False)
        self._channel = channel
        self._task = asyncio.create_task(self._loop(self._inbox), name="outbox:intake")
        await queue.consume(self._enqueue)

    async def stop(self) -> None:
        """Finish the request being forwarded, then close (the rest goes back to the queue)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._channel = None

    async def _enqueue(self, message: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(message)

    async def _loop(self, inbox: asyncio.Queue[AbstractIncomingMessage]) -> None:
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            while True:
                getting = asyncio.create_task(inbox.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getting
                    return
                message = getting.result()
                if not channel_open(message):
                    continue  # the broker has it back already
                await self._forward(message)
        finally:
            stopping.cancel()

    async def _forward(self, message: AbstractIncomingMessage) -> None:
        try:
            if message.type != SendText.TYPE:
                raise ValueError(f"outbox does not handle {message.type!r}")
            send = SendText.model_validate_json(message.body)
            if not _PHONE_NUMBER_ID.match(send.phone_number_id):
                raise ValueError(f"unusable phone_number_id {send.phone_number_id!r}")
        except (ValidationError, ValueError) as exc:
            await self._settler.dead_letter(
                message, queue=OUTBOX_INTAKE.name, reason=f"{type(exc).__name__}: {exc}", attempts=0
            )
            metrics.FORWARDED.labels(outcome="dead_lettered").inc()
            return
        delay = 0.1
        while True:
            try:
                await self._ensure_number(send.phone_number_id)
                await self._broker.publish_raw(
                    COMMANDS,
                    outbox_number_queue(send.phone_number_id).name,
                    message.body,
                    type=SendText.TYPE,
                    version=int(str((message.headers or {}).get("version", 1))),
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                )
                break
            except Exception as exc:
                # Blocking the intake is right: skipping ahead would break the order.
                log.warning("outbox.forward_failed", error=repr(exc), retry_in=delay)
                if self._stopping.is_set() or not channel_open(message):
                    return  # unsettled: the broker gives it back
                await asyncio.sleep(delay)
                delay = min(_RETRY_CAP_SECONDS, delay * 2)
        await self._settler.ack(message)
        metrics.FORWARDED.labels(outcome="forwarded").inc()
