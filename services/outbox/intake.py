"""The intake: every send request arrives in `outbox.intake` and is forwarded to its business
number's queue, in arrival order per conversation.

The intake queue has a single active consumer across all replicas, so it sees every request in
the order it was published. A conversation's next request is forwarded only once the broker
confirmed its previous one (a failed forward then holds the rest of that conversation back, so
its order survives any broker error); forwards of different conversations overlap, since a
confirm round trip one at a time would cap the whole outbox (~1,300 forwards/s here, see
bench/RESULTS.md). A request is acked only after its forward was confirmed; a crash in between
forwards it twice, and the number's worker drops the second by its idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable

import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pydantic import ValidationError

from baton import tracing
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
        # Per conversation, the forward the next one must wait for (the lane's tail).
        self._tails: dict[tuple[str, int], asyncio.Task[bool]] = {}
        self._forwards: set[asyncio.Task[bool]] = set()
        self._numbers: dict[str, asyncio.Lock] = {}
        self._on_lost: Callable[[], object] | None = None

    async def start(self, connection: AbstractConnection) -> None:
        self._stopping = asyncio.Event()
        self._inbox = asyncio.Queue()
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await channel.get_queue(OUTBOX_INTAKE.name, ensure=False)
        self._channel = channel
        channel.close_callbacks.add(lambda *_: self._channel_lost())
        self._task = asyncio.create_task(self._loop(self._inbox), name="outbox:intake")
        await queue.consume(self._enqueue)

    @property
    def consuming(self) -> bool:
        return self._channel is not None and not self._channel.is_closed

    def on_channel_lost(self, callback: Callable[[], object]) -> None:
        """Call `callback` when the intake's channel closes other than by `stop`."""
        self._on_lost = callback

    def _channel_lost(self) -> None:
        if not self._stopping.is_set() and self._on_lost is not None:
            self._on_lost()

    async def stop(self) -> None:
        """Finish the request being forwarded, then close (the rest goes back to the queue)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._forwards:
            await asyncio.wait(self._forwards)
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
                await self._dispatch(message)
        finally:
            stopping.cancel()

    async def _dispatch(self, message: AbstractIncomingMessage) -> None:
        """Dead-letter a malformed request at once; chain a valid one behind its conversation."""
        send = await self._parse(message)
        if send is None:
            return
        lane = (send.phone_number_id, send.conversation_id)
        forward = asyncio.create_task(self._forward_after(self._tails.get(lane), message, send))
        self._tails[lane] = forward
        self._forwards.add(forward)

        def done(task: asyncio.Task[bool]) -> None:
            self._forwards.discard(task)
            if self._tails.get(lane) is task:
                del self._tails[lane]

        forward.add_done_callback(done)

    async def _parse(self, message: AbstractIncomingMessage) -> SendText | None:
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
            return None
        return send

    async def _forward_after(
        self, previous: asyncio.Task[bool] | None, message: AbstractIncomingMessage, send: SendText
    ) -> bool:
        """Forward once the conversation's previous request was; False leaves it unsettled."""
        if previous is not None:
            await asyncio.wait({previous})
            if previous.cancelled() or previous.exception() is not None or not previous.result():
                return False  # the previous one goes back to the queue: so must this one
        with (
            structlog.contextvars.bound_contextvars(
                conversation_id=send.conversation_id,
                message_id=message.message_id,
                idempotency_key=send.idempotency_key,
                phone_number_id=send.phone_number_id,
            ),
            tracing.consuming(OUTBOX_INTAKE.name, message.headers, message_id=message.message_id),
        ):
            return await self._forward(message, send)

    async def _forward(self, message: AbstractIncomingMessage, send: SendText) -> bool:
        delay = 0.1
        while True:
            try:
                # One first meeting per number, however many of its conversations arrive at once.
                async with self._numbers.setdefault(send.phone_number_id, asyncio.Lock()):
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
                # Blocking the conversation is right: skipping ahead would break its order.
                log.warning("outbox.forward_failed", error=repr(exc), retry_in=delay)
                if self._stopping.is_set() or not channel_open(message):
                    return False  # unsettled: the broker gives it back
                await asyncio.sleep(delay)
                delay = min(_RETRY_CAP_SECONDS, delay * 2)
        await self._settler.ack(message, queue=OUTBOX_INTAKE.name)
        metrics.FORWARDED.labels(outcome="forwarded").inc()
        return True
