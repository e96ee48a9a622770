"""One attempt at one send: fence, claim (idempotency), call the Graph API, record the outcome.

A send for an offboarded number (`Store.number_disabled`, cached for a few seconds) is claimed,
then recorded failed (`number_offboarded`) and announced once, with no Graph API call: its token
is no longer ours to use.

The worker decides when an attempt may start (rate window, pair limit, order) and what to do
with its result (settle, retry, dead-letter); this module only does the attempt, so every
outcome is a value the worker can act on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from baton.broker import Broker
from baton.handoff import may_send_bot_reply, may_send_external_bot_message, with_bot_prefix
from baton.messages import Message, MessageSent, ReplyFenced, SendFailed, SendText
from baton.offboarding import OffboardedNumbers
from baton.settings import NumbersConfig
from baton.store import Store
from baton.store.outbox_records import ClaimStatus
from baton.store.records import NewOutbound
from baton.types import Author, Wamid
from baton.whatsapp.client import GraphClient
from baton.whatsapp.errors import (
    ErrorClass,
    GraphApiError,
    GraphError,
    GraphTransportError,
    failure_reason,
)
from services.outbox import metrics

log = structlog.get_logger()

_RECORD_ATTEMPTS = 5  # recording a send Meta accepted: worth insisting, a retry would duplicate it
NUMBER_OFFBOARDED = "number_offboarded"  # the failure reason of a send for a disabled number


@dataclass(frozen=True)
class Call:
    """When a Graph API call ran (monotonic clock): the send window's anchor."""

    started: float
    ended: float


@dataclass(frozen=True)
class Sent:
    wamid: Wamid
    call: Call


@dataclass(frozen=True)
class Skipped:
    """Nothing to send: fenced (a human holds the conversation), already done, or refused
    because the number was offboarded (recorded failed and announced)."""

    outcome: str  # "fenced", "duplicate" or "offboarded"


@dataclass(frozen=True)
class Busy:
    """Another attempt is open (maybe still talking to Meta): ask again after `wait` seconds."""

    wait: float


@dataclass(frozen=True)
class Failed:
    """Meta refused it for good; recorded as failed and announced."""

    code: int | None
    call: Call


@dataclass(frozen=True)
class Retry:
    """A retryable failure; `call` is None when it failed before reaching Meta."""

    error_class: ErrorClass
    code: int | None
    reason: str
    call: Call | None


@dataclass(frozen=True)
class Ready:
    """Claimed (an attempt is open): call as soon as a send slot is free."""


Prepared = Ready | Skipped | Busy | Retry
Attempt = Sent | Skipped | Busy | Failed | Retry


class Outbox:
    """Sends one request at a time on behalf of the worker (see module docstring)."""

    def __init__(
        self,
        store: Store,
        broker: Broker,
        graph: GraphClient,
        numbers: NumbersConfig,
        *,
        abandon_after_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        offboarded: OffboardedNumbers | None = None,
    ) -> None:
        self._store = store
        self._broker = broker
        self._graph = graph
        self._numbers = numbers
        self._abandon_after = abandon_after_seconds
        self._clock = clock
        self._offboarded = offboarded if offboarded is not None else OffboardedNumbers(store)

    async def prepare(self, send: SendText) -> Prepared:
        """Fence and claim, before a send slot is taken (so the slot waits on no store write).

        Never raises for a store failure: returns Retry.
        """
        try:
            # Checked here, with the fence, so sends already queued when the number was
            # offboarded are stopped too.
            offboarded = await self._offboarded.disabled(send.phone_number_id)
            if (
                not offboarded
                and send.author is Author.BOT
                and (reason := await self._fence_reason(send))
            ):
                await self._fenced(send, reason)
                return Skipped("fenced")
            claim = await self._store.claim_outbound(
                NewOutbound(
                    idempotency_key=send.idempotency_key,
                    conversation_id=send.conversation_id,
                    phone_number_id=send.phone_number_id,
                    author=send.author,
                    body=send.body or (f"[{send.media.kind}]" if send.media else ""),
                    epoch=send.epoch,
                    agent_id=send.agent_id,
                    type=send.media.kind if send.media else "text",
                ),
                abandon_after_seconds=self._abandon_after,
            )
        except Exception as exc:  # before the call: retrying can never duplicate anything
            log.warning("outbox.store_unavailable", error=repr(exc))
            return Retry(ErrorClass.TRANSIENT, None, f"before the call: {exc!r}", None)
        if claim.status in (ClaimStatus.SENT, ClaimStatus.FAILED):
            return Skipped("duplicate")
        if claim.status is ClaimStatus.BUSY:
            return Busy(claim.busy_seconds)
        if offboarded:
            # Claimed first, so a redelivery finds it failed (a duplicate) and announces nothing.
            return await self._refuse_offboarded(send)
        if claim.in_doubt:
            # The documented window: an earlier attempt never recorded its outcome.
            metrics.IN_DOUBT.labels(cause="unrecorded_attempt").inc()
            log.warning("outbox.resend_in_doubt", attempt=claim.attempt)
        return Ready()

    async def _refuse_offboarded(self, send: SendText) -> Skipped | Retry:
        try:
            await self._store.fail_outbound(
                send.idempotency_key, error_code=None, reason=NUMBER_OFFBOARDED
            )
        except Exception as exc:  # no call was made: retrying can never duplicate anything
            log.warning("outbox.store_unavailable", error=repr(exc))
            await self.abandon(send)
            return Retry(ErrorClass.TRANSIENT, None, f"before the call: {exc!r}", None)
        log.warning(
            "outbox.send_refused_offboarded",
            phone_number_id=send.phone_number_id,
            reason=NUMBER_OFFBOARDED,
        )
        await self._announce_failed(send, None, NUMBER_OFFBOARDED)
        return Skipped("offboarded")

    async def abandon(self, send: SendText) -> None:
        """Close a send's attempt with no outcome: not called now, or failed retryably."""
        try:
            await self._store.release_outbound_attempt(send.idempotency_key)
        except Exception as exc:  # left open, the next attempt waits it out: slower, not wrong
            log.warning("outbox.release_attempt_failed", error=repr(exc))

    async def call(self, send: SendText) -> Sent | Failed | Retry | Skipped:
        """The Graph API call of a prepared send, and its recorded outcome."""
        if send.author is Author.BOT and (fenced := await self._fenced_at_the_slot(send)):
            return fenced
        number = self._numbers.get(send.phone_number_id)
        body = (
            with_bot_prefix(number.bot_prefix, send.body)
            if send.author is Author.BOT
            else send.body
        )
        started = self._clock()
        try:
            if send.media is not None:  # media (issue 18): uploaded to Meta, sent by its id
                result = await self._graph.send_media(
                    send.phone_number_id,
                    send.to,
                    send.media.kind,
                    send.media.media_id,
                    caption=send.media.caption,
                    filename=send.media.filename,
                    reply_to=send.reply_to,
                    biz_opaque_callback_data=f"baton:{send.author}",
                )
            elif send.template is not None:  # past the 24 h window (issue 12)
                result = await self._graph.send_template(
                    send.phone_number_id,
                    send.to,
                    send.template.name,
                    send.template.language,
                    send.template.parameters,
                    biz_opaque_callback_data=f"baton:{send.author}",
                )
            else:
                result = await self._graph.send_text(
                    send.phone_number_id,
                    send.to,
                    body,
                    reply_to=send.reply_to,
                    biz_opaque_callback_data=f"baton:{send.author}",
                )
        except GraphError as exc:
            return await self._failed_call(send, exc, self._call_since(started))
        call = self._call_since(started)
        await self._record_sent(send, result.wamid)
        log.info("outbox.sent", wamid=result.wamid, author=send.author)
        await self._announce(
            MessageSent(
                idempotency_key=send.idempotency_key,
                conversation_id=send.conversation_id,
                phone_number_id=send.phone_number_id,
                wamid=result.wamid,
                author=send.author,
            )
        )
        return Sent(result.wamid, call)

    def _call_since(self, started: float) -> Call:
        call = Call(started, self._clock())
        metrics.SEND_SECONDS.observe(call.ended - call.started)
        return call

    async def _failed_call(self, send: SendText, exc: GraphError, call: Call) -> Failed | Retry:
        code = exc.code if isinstance(exc, GraphApiError) else None
        metrics.GRAPH_ERRORS.labels(error_class=exc.error_class, code=str(code)).inc()
        if exc.error_class is ErrorClass.PERMANENT:
            reason = failure_reason(code, str(exc))
            await self._insist(
                "failure",
                lambda: self._store.fail_outbound(
                    send.idempotency_key, error_code=code, reason=reason
                ),
            )
            log.error("outbox.send_failed", code=code, error_class=exc.error_class)
            await self._announce_failed(send, code, reason)
            return Failed(code, call)
        if isinstance(exc, GraphTransportError) and exc.maybe_delivered:
            # No answer after the request left: Meta may have it, and the retry may duplicate it.
            metrics.IN_DOUBT.labels(cause="no_answer").inc()
        await self.abandon(send)
        return Retry(exc.error_class, code, str(exc), call)

    async def give_up(self, send: SendText, *, code: int | None, reason: str) -> None:
        """Bounded retries are over: mark the send dead-lettered and tell the agents."""
        # Never raises: the delivery is already out of its lane and must still be parked.
        await self._insist(
            "dead_lettered",
            lambda: self._store.give_up_outbound(
                send.idempotency_key, error_code=code, reason=reason
            ),
        )
        await self._announce_failed(send, code, f"dead-lettered: {reason}")

    async def _announce_failed(self, send: SendText, code: int | None, reason: str) -> None:
        await self._announce(
            SendFailed(
                idempotency_key=send.idempotency_key,
                conversation_id=send.conversation_id,
                phone_number_id=send.phone_number_id,
                author=send.author,
                error_code=code,
                reason=reason,
            )
        )

    async def _record_sent(self, send: SendText, wamid: Wamid) -> None:
        sent_at = datetime.now(UTC)
        await self._insist(
            "sent",
            lambda: self._store.complete_outbound(send.idempotency_key, wamid, sent_at),
            wamid=wamid,
        )

    async def _insist(
        self, what: str, record: Callable[[], Awaitable[None]], *, wamid: Wamid | None = None
    ) -> None:
        """Record a send's outcome: retrying the send instead would repeat it (or strand it), so
        on a store outage this tries for a while, then logs and lets the send settle."""
        for attempt in range(1, _RECORD_ATTEMPTS + 1):
            try:
                await record()
                return
            except Exception as exc:
                if attempt == _RECORD_ATTEMPTS:
                    log.error("outbox.record_failed", outcome=what, wamid=wamid, error=repr(exc))
                    return
                await asyncio.sleep(0.2 * 2**attempt)

    async def _fenced(self, send: SendText, reason: str) -> None:
        metrics.FENCED.labels(reason=reason).inc()
        log.info("outbox.reply_fenced", reason=reason, reply_epoch=send.epoch)
        await self._announce(
            ReplyFenced(
                idempotency_key=send.idempotency_key,
                conversation_id=send.conversation_id,
                phone_number_id=send.phone_number_id,
                reply_epoch=send.epoch,
                reason=reason,
            )
        )

    async def _announce(self, event: Message) -> None:
        """Publish an event; a broker hiccup must not turn a done send into a retried one."""
        for attempt in range(1, 4):
            try:
                await self._broker.publish_event(event)
                return
            except Exception as exc:
                if attempt == 3:
                    log.error("outbox.event_not_published", event_type=event.TYPE, error=repr(exc))
                    return
                await asyncio.sleep(0.2 * attempt)

    async def _fenced_at_the_slot(self, send: SendText) -> Skipped | Retry | None:
        """The fence read again right before the call: prepare() read it before the send waited
        for its slot, which a throughput pause can stretch to seconds; a takeover meanwhile
        must still stop the reply. What remains is the store read's own few milliseconds."""
        try:
            reason = await self._fence_reason(send)
            if reason is None:
                return None
            # Claimed in prepare(): closed as failed, so a redelivery is a duplicate, not a send.
            await self._store.fail_outbound(
                send.idempotency_key, error_code=None, reason=f"fenced: {reason}"
            )
        except Exception as exc:  # before the call: retrying can never duplicate anything
            log.warning("outbox.store_unavailable", error=repr(exc))
            await self.abandon(send)
            return Retry(ErrorClass.TRANSIENT, None, f"before the call: {exc!r}", None)
        await self._fenced(send, reason)
        return Skipped("fenced")

    async def _fence_reason(self, send: SendText) -> str | None:
        """Why a bot message must not go out now, or None if it may (the handoff fence)."""
        state = await self._store.load_conversation_state(send.conversation_id)
        if state is None:
            return "unknown_conversation"
        if send.request_id is None and send.agent_id is not None:
            # An external bot through the agent API: its promise is mode and epoch alone.
            allowed, reason = may_send_external_bot_message(state, send.epoch)
        else:
            allowed, reason = may_send_bot_reply(state, send.epoch, send.request_id)
        return None if allowed else reason.value
