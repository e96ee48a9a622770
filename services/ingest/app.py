"""The ingest HTTP app: Meta's webhook in, confirmed broker messages out."""

from __future__ import annotations

import asyncio
import hmac
import time
from datetime import UTC, datetime

import orjson
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse

from baton.broker import WEBHOOKS, Broker, BrokerUnavailable, PublishFailed
from baton.messages import WebhookChange
from baton.runtime import add_ops_routes, serve_http
from baton.settings import Settings
from baton.whatsapp.signature import verify
from services.ingest import metrics
from services.ingest.changes import MalformedWebhook, OutgoingChange, split

log = structlog.get_logger()

SIGNATURE_HEADER = "x-hub-signature-256"


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes without buffering them."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: Settings, broker: Broker) -> FastAPI:
    """Build the ingest app around an already-constructed broker (real or test)."""
    app = FastAPI(title="Baton ingest", docs_url=None, redoc_url=None)
    app_secret = settings.app_secret.get_secret_value()
    verify_token = settings.verify_token.get_secret_value().encode()
    timeout = settings.publish_timeout_seconds

    async def ready() -> bool:
        return broker.connected

    add_ops_routes(app, ready)

    @app.get("/webhook", response_class=PlainTextResponse)
    async def verify_subscription(request: Request) -> Response:
        params = request.query_params
        token = params.get("hub.verify_token", "").encode()
        if params.get("hub.mode") == "subscribe" and hmac.compare_digest(token, verify_token):
            metrics.VERIFICATIONS.labels(outcome="verified").inc()
            return PlainTextResponse(params.get("hub.challenge", ""))
        metrics.VERIFICATIONS.labels(outcome="refused").inc()
        return PlainTextResponse("verification refused", status_code=403)

    async def receive(request: Request) -> Response:
        try:
            raw = await _read_body(request, settings.ingest_max_body_bytes)
        except BodyTooLarge:
            return _refuse(413, "too_large")
        signature = request.headers.get(SIGNATURE_HEADER)
        if signature is None:
            return _refuse(401, "missing_signature")
        if not verify(raw, signature, app_secret):
            return _refuse(401, "bad_signature")
        try:
            changes = split(orjson.loads(raw), datetime.now(UTC))
        except orjson.JSONDecodeError:
            return _refuse(400, "invalid_json")
        except MalformedWebhook as exc:
            log.warning("webhook.malformed", error=str(exc))
            return _refuse(400, "malformed")
        started = time.perf_counter()
        try:
            await asyncio.gather(*(_publish(broker, change, timeout) for change in changes))
        except (BrokerUnavailable, PublishFailed) as exc:
            # Meta retries anything but a 200, so a 503 here loses nothing.
            log.error("webhook.not_confirmed", error=str(exc), changes=len(changes))
            return _refuse(503, "broker_unavailable")
        metrics.PUBLISH_CONFIRM_SECONDS.observe(time.perf_counter() - started)
        for change in changes:
            metrics.CHANGES_PUBLISHED.labels(field=metrics.field_label(change.routing_key)).inc()
        accepted.inc()
        return Response(status_code=200)

    # A plain Starlette route: the hot path skips FastAPI's per-request dependency solving
    # (about a tenth of ingest's CPU at peak); there is nothing to inject here anyway.
    app.add_route("/webhook", receive, methods=["POST"], include_in_schema=False)
    accepted = metrics.WEBHOOK_REQUESTS.labels(outcome="accepted")
    return app


async def _publish(broker: Broker, change: OutgoingChange, timeout: float) -> None:
    headers = {"phone_number_id": change.phone_number_id} if change.phone_number_id else {}
    await broker.publish_raw(
        WEBHOOKS,
        change.routing_key,
        change.body,
        type=WebhookChange.TYPE,
        version=WebhookChange.VERSION,
        message_id=change.message_id,
        headers=headers,
        timeout=timeout,
    )


def _refuse(status: int, outcome: str) -> Response:
    metrics.WEBHOOK_REQUESTS.labels(outcome=outcome).inc()
    return PlainTextResponse(outcome.replace("_", " "), status_code=status)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    broker = Broker(settings.amqp_url, name="ingest")
    # Ingest starts even when the broker is down: it answers 503 (and /readyz says so) until the
    # broker is back, so Meta keeps its webhooks and retries.
    connecting = await broker.connect_in_background()
    app = create_app(settings, broker)
    log.info(
        "ingest.listening", url=f"http://{settings.ingest_host}:{settings.ingest_port}/webhook"
    )
    try:
        await serve_http(app, host=settings.ingest_host, port=settings.ingest_port, stop=stop)
    finally:
        connecting.cancel()
        await broker.close()
