"""OpenTelemetry traces across the services, off unless the standard `OTEL_*` variables ask.

One customer message is one trace: ingest's HTTP server span, a PRODUCER span per publish (its
W3C `traceparent` travels in the AMQP headers), a CONSUMER span per delivery in every service,
and CLIENT spans for the calls to the LLM and the Graph API.

Off (the default) means no SDK: no TracerProvider is installed, nothing is imported beyond the
API, and every seam below checks one module flag and skips its work, so the hot paths pay a
branch (`bench/RESULTS.md`, "Tracing"). On: `OTEL_TRACES_EXPORTER=otlp` (or an OTLP endpoint
variable) with the OTLP/HTTP exporter, unless `OTEL_SDK_DISABLED=true`; the provider is this
module's own, not the global one (see `configure`).
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Coroutine, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = structlog.get_logger()

_T = TypeVar("_T")

# None: tracing is off, and every function here returns at once.
_tracer: Tracer | None = None
_provider: TracerProvider | None = None

# Probes and scrapes are not requests anybody wants to follow.
_UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_EXPORTERS = frozenset({"otlp", "console"})
# What every seam gets when tracing is off: one shared context manager that does nothing.
_NOOP: AbstractContextManager[None] = nullcontext()


def wanted(env: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for (empty: tracing stays off)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = [e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    named = [e for e in named if e]
    if not named and (
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        return ["otlp"]  # an endpoint alone means "send them there"
    return [e for e in named if e != "none"]


def configure(service: str, env: Mapping[str, str] = os.environ) -> bool:
    """Install the SDK if the environment turns tracing on; True if it did."""
    exporters = wanted(env)
    if not exporters:
        return False
    # Imported only when on: the SDK and the exporter cost start-up time nobody uses otherwise.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    name = env.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    for exporter_name in exporters:
        exporter: SpanExporter
        if exporter_name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
        elif exporter_name == "console":
            exporter = ConsoleSpanExporter()
        else:
            log.warning(
                "tracing.unknown_exporter", exporter=exporter_name, known=sorted(_EXPORTERS)
            )
            continue
        provider.add_span_processor(BatchSpanProcessor(exporter))  # reads OTEL_BSP_*
    # Not made the global provider: FastAPI (0.16x) starts its own server spans as soon as one
    # is set, which would double every request's span under ours (one seam, the same in tests).
    use(provider)
    log.info("tracing.on", service_name=name, exporters=exporters)
    return True


def use(provider: TracerProvider) -> None:
    """Trace through `provider` (tests pass one with an in-memory exporter)."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("baton")


def disable() -> None:
    """Back to off: the seams skip their work again (the provider is not shut down)."""
    global _tracer, _provider
    _tracer = _provider = None


def shutdown() -> None:
    """Export what is still buffered (at process exit)."""
    if _provider is not None:
        _provider.shutdown()


def enabled() -> bool:
    return _tracer is not None


def trace_id() -> str | None:
    """The current trace id as 32 hex digits, or None outside a recorded span."""
    if _tracer is None:
        return None
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def add_trace_id(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: `trace_id` on every line logged inside a span."""
    if _tracer is not None and "trace_id" not in event:
        current = trace_id()
        if current is not None:
            event["trace_id"] = current
    return event


# --- AMQP ------------------------------------------------------------------------------


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """AMQP header tables may hand string values back as bytes."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        return [str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_HEADERS = _HeaderGetter()


def publishing(
    headers: dict[str, Any], *, exchange: str, routing_key: str, message_id: str
) -> AbstractContextManager[None]:
    """A PRODUCER span around one publish, its context put in `headers`; a no-op when off."""
    if _tracer is None:
        return _NOOP
    return _publishing(_tracer, headers, exchange, routing_key, message_id)


@contextmanager
def _publishing(
    tracer: Tracer, headers: dict[str, Any], exchange: str, routing_key: str, message_id: str
) -> Iterator[None]:
    with tracer.start_as_current_span(
        f"publish {exchange}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "send",
            "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": routing_key,
            "messaging.message.id": message_id,
        },
    ):
        propagate.inject(headers)
        yield


def consuming(
    queue: str, headers: Mapping[str, Any] | None, *, message_id: str | None = None
) -> AbstractContextManager[None]:
    """A CONSUMER span for one delivery, child of the span that published it; no-op when off."""
    if _tracer is None:
        return _NOOP
    return _consuming(_tracer, queue, headers, message_id)


@contextmanager
def _consuming(
    tracer: Tracer, queue: str, headers: Mapping[str, Any] | None, message_id: str | None
) -> Iterator[None]:
    parent = propagate.extract(headers or {}, getter=_HEADERS)
    attributes: dict[str, str] = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    with tracer.start_as_current_span(
        f"process {queue}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ):
        yield


def failed(exc: BaseException) -> None:
    """Mark the current span failed with `exc` (a delivery retried or dead-lettered)."""
    if _tracer is None:
        return
    current = trace.get_current_span()
    current.record_exception(exc)
    current.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))


def consumed(
    queue: str,
    headers: Mapping[str, Any] | None,
    work: Coroutine[Any, Any, _T],
    *,
    message_id: str | None,
) -> Coroutine[Any, Any, _T]:
    """`work` inside a CONSUMER span for its delivery; `work` itself when off (no wrapper)."""
    if _tracer is None:
        return work

    async def traced() -> _T:
        with consuming(queue, headers, message_id=message_id):
            return await work

    return traced()


def span(name: str, **attributes: str) -> AbstractContextManager[object]:
    """An INTERNAL span (a timer firing, a step worth seeing); a no-op when off."""
    if _tracer is None:
        return _NOOP
    return _tracer.start_as_current_span(name, attributes=attributes)


def carry(ctx: contextvars.Context) -> contextvars.Context:
    """`ctx` with the current trace context in it, for a callback scheduled to run later.

    A debounce flush fires from a timer armed by the delivery that set it: carried, the bot
    request it publishes continues that message's trace instead of starting a new one.
    """
    if _tracer is not None:
        ctx.run(otel_context.attach, otel_context.get_current())
    return ctx


# --- HTTP ------------------------------------------------------------------------------


class _Transport(httpx.AsyncBaseTransport):
    """A CLIENT span per request, its `traceparent` sent along."""

    def __init__(self, inner: httpx.AsyncBaseTransport, peer: str) -> None:
        self._inner = inner
        self._peer = peer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _tracer is None:
            return await self._inner.handle_async_request(request)
        method = request.method
        with _tracer.start_as_current_span(
            f"{method} {self._peer}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "server.address": request.url.host,
                "server.port": request.url.port or (443 if request.url.scheme == "https" else 80),
                "url.path": request.url.path,  # never the query: signed media URLs carry secrets
                "peer.service": self._peer,
            },
        ) as current:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            request.headers.update(carrier)
            response = await self._inner.handle_async_request(request)
            current.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                current.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def http_transport(peer: str) -> httpx.AsyncBaseTransport | None:
    """A transport for an `httpx.AsyncClient` that traces its calls; None (httpx's own) when off."""
    if _tracer is None:
        return None
    return _Transport(httpx.AsyncHTTPTransport(), peer)


class TracingMiddleware:
    """A SERVER span per HTTP request, child of the caller's `traceparent` if it sent one."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = _tracer
        if tracer is None or scope["type"] != "http" or scope["path"] in _UNTRACED_PATHS:
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method: str = scope["method"]
        with tracer.start_as_current_span(
            method,
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        ) as current:

            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status: int = message["status"]
                    current.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        current.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self._app(scope, receive, send_traced)
            finally:
                # FastAPI's router leaves the matched route in the scope: name the span by its
                # template (low cardinality), not by the path.
                route = scope.get("route")
                template = getattr(route, "path", None) or (
                    scope["path"] if scope["path"] == "/webhook" else None
                )
                if template:
                    current.update_name(f"{method} {template}")
                    current.set_attribute("http.route", template)


def asgi(app: ASGIApp) -> ASGIApp:
    """`app` wrapped in server spans when tracing is on; `app` itself when off."""
    return TracingMiddleware(app) if _tracer is not None else app
