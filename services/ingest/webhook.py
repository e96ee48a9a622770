"""POST /webhook as a bare ASGI callable: verify, split, publish with a confirm, answer.

This is ingest's hot path, so it skips Starlette's middleware and routing stack (a fifth to a
quarter of its CPU per webhook, see bench/RESULTS.md); the responses are byte for byte what the
Starlette route sent.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import orjson
import structlog
from starlette.types import Receive, Scope, Send

from baton.broker import WEBHOOKS, Broker, BrokerUnavailable, PublishFailed
from baton.messages import WebhookChange
from baton.whatsapp.signature import verify
from services.ingest import metrics
from services.ingest.changes import MalformedWebhook, OutgoingChange, split

log = structlog.get_logger()

SIGNATURE_HEADER = b"x-hub-signature-256"
_CONTENT_LENGTH = b"content-length"
_OK_HEADERS = [(_CONTENT_LENGTH, b"0")]
_TEXT = (b"content-type", b"text/plain; charset=utf-8")


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


class WebhookReceiver:
    """The ASGI app for `POST /webhook`; answers 200 only once every change's publish is confirmed."""

    def __init__(
        self, broker: Broker, *, app_secret: str, max_body_bytes: int, publish_timeout: float
    ) -> None:
        self._broker = broker
        self._app_secret = app_secret
        self._max_body_bytes = max_body_bytes
        self._timeout = publish_timeout
        self._accepted = metrics.WEBHOOK_REQUESTS.labels(outcome="accepted")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared: bytes | None = None
        signature: bytes | None = None
        for name, value in scope["headers"]:  # names arrive lowercased (ASGI)
            if name == _CONTENT_LENGTH and declared is None:
                declared = value
            elif name == SIGNATURE_HEADER and signature is None:
                signature = value
        try:
            if declared is not None and declared.isdigit() and int(declared) > self._max_body_bytes:
                raise _BodyTooLarge
            raw = await _read_body(receive, self._max_body_bytes)
        except _BodyTooLarge:
            return await _refuse(send, 413, "too_large")
        except _ClientGone:
            return  # nobody left to answer; Meta retries what it did not see acknowledged
        if signature is None:
            return await _refuse(send, 401, "missing_signature")
        if not verify(raw, signature.decode("latin-1"), self._app_secret):
            return await _refuse(send, 401, "bad_signature")
        try:
            changes = split(orjson.loads(raw), datetime.now(UTC))
        except orjson.JSONDecodeError:
            return await _refuse(send, 400, "invalid_json")
        except MalformedWebhook as exc:
            log.warning("webhook.malformed", error=str(exc))
            return await _refuse(send, 400, "malformed")
        started = time.perf_counter()
        try:
            if len(changes) == 1:  # the usual case; gather would cost a task per change
                await self._publish(changes[0])
            else:
                await asyncio.gather(*(self._publish(change) for change in changes))
        except (BrokerUnavailable, PublishFailed) as exc:
            # Meta retries anything but a 200, so a 503 here loses nothing.
            log.error("webhook.not_confirmed", error=str(exc), changes=len(changes))
            return await _refuse(send, 503, "broker_unavailable")
        metrics.PUBLISH_CONFIRM_SECONDS.observe(time.perf_counter() - started)
        for change in changes:
            metrics.published(change.routing_key).inc()
        self._accepted.inc()
        await send({"type": "http.response.start", "status": 200, "headers": _OK_HEADERS})
        await send({"type": "http.response.body", "body": b""})

    async def _publish(self, change: OutgoingChange) -> None:
        headers = {"phone_number_id": change.phone_number_id} if change.phone_number_id else {}
        await self._broker.publish_raw(
            WEBHOOKS,
            change.routing_key,
            change.body,
            type=WebhookChange.TYPE,
            version=WebhookChange.VERSION,
            message_id=change.message_id,
            headers=headers,
            timeout=self._timeout,
        )


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes without buffering them."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)  # one chunk (the usual case) is returned as is, not copied


async def _refuse(send: Send, status: int, outcome: str) -> None:
    metrics.WEBHOOK_REQUESTS.labels(outcome=outcome).inc()
    body = outcome.replace("_", " ").encode()
    headers = [(_CONTENT_LENGTH, str(len(body)).encode()), _TEXT]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
