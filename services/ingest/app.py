"""The ingest HTTP app: Meta's webhook in, confirmed broker messages out."""

from __future__ import annotations

import asyncio
import hmac

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from baton.broker import Broker
from baton.runtime import add_ops_routes, serve_http
from baton.settings import Settings
from services.ingest import metrics
from services.ingest.webhook import WebhookReceiver

log = structlog.get_logger()

WEBHOOK_PATH = "/webhook"


class IngestApp:
    """`POST /webhook` goes straight to the receiver; everything else to the FastAPI app."""

    def __init__(self, receiver: ASGIApp, rest: FastAPI) -> None:
        self._receiver = receiver
        self._rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == WEBHOOK_PATH:
            await self._receiver(scope, receive, send)
        else:
            await self._rest(scope, receive, send)


def create_app(settings: Settings, broker: Broker) -> IngestApp:
    """Build the ingest app around an already-constructed broker (real or test)."""
    rest = FastAPI(title="Baton ingest", docs_url=None, redoc_url=None)
    verify_token = settings.verify_token.get_secret_value().encode()

    async def ready() -> list[str]:
        # Ready only once every queue and binding exists: before that, a webhook routed to a
        # queue not yet declared would be refused (NO_ROUTE) and answered 503.
        reasons = broker.not_ready_reasons()
        if not broker.topology_declared:
            reasons.append("topology not declared")
        return reasons

    add_ops_routes(rest, ready, liveness_grace=settings.liveness_grace_seconds)

    @rest.get(WEBHOOK_PATH, response_class=PlainTextResponse)
    async def verify_subscription(request: Request) -> Response:
        params = request.query_params
        token = params.get("hub.verify_token", "").encode()
        if params.get("hub.mode") == "subscribe" and hmac.compare_digest(token, verify_token):
            metrics.VERIFICATIONS.labels(outcome="verified").inc()
            return PlainTextResponse(params.get("hub.challenge", ""))
        metrics.VERIFICATIONS.labels(outcome="refused").inc()
        return PlainTextResponse("verification refused", status_code=403)

    receiver = WebhookReceiver(
        broker,
        app_secret=settings.app_secret.get_secret_value(),
        max_body_bytes=settings.ingest_max_body_bytes,
        publish_timeout=settings.publish_timeout_seconds,
    )
    return IngestApp(receiver, rest)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    broker = Broker(settings.amqp_url, name="ingest")
    # Ingest starts even when the broker is down: it answers 503 (and /readyz says so) until the
    # broker is back, so Meta keeps its webhooks and retries.
    connecting = await broker.connect_in_background(topology=True)
    app = create_app(settings, broker)
    log.info(
        "ingest.listening",
        url=f"http://{settings.ingest_host}:{settings.ingest_port}{WEBHOOK_PATH}",
    )
    try:
        await serve_http(app, host=settings.ingest_host, port=settings.ingest_port, stop=stop)
    finally:
        connecting.cancel()
        await broker.close()
