"""Tracing's seams with the in-memory exporter: HTTP in, two broker hops, HTTP out, one trace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from baton import tracing
from baton.broker import COMMANDS, Broker, Delivery, Poison, QueueSpec
from baton.messages import SendText
from baton.runtime import serve_http
from baton.types import Author
from tests.conftest import unique
from tests.e2e.conftest import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


@contextlib.asynccontextmanager
async def _serving(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve_http(app, host="127.0.0.1", port=port, stop=stop))
    url = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        async with httpx.AsyncClient() as client:
            try:
                return (await client.get(f"{url}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

    try:
        await eventually(up, timeout=10, what="the test server")
        yield url
    finally:
        stop.set()
        await task


def _spec() -> QueueSpec:
    name = unique("test.trace")
    return QueueSpec(name, COMMANDS, (name,))


def _message(body: str) -> bytes:
    return (
        SendText(
            idempotency_key=unique("k"),
            conversation_id=1,
            phone_number_id="900",
            to="5511",
            body=body,
            author=Author.SYSTEM,
        )
        .model_dump_json()
        .encode()
    )


async def test_one_request_is_one_trace_across_broker_hops_and_http_calls(
    broker: Broker, spans: InMemorySpanExporter
) -> None:
    first, second = _spec(), _spec()
    seen_traceparent: list[str] = []

    # The far end of the outgoing call (Graph's place): records the traceparent it was sent.
    graph = FastAPI()
    graph.get("/healthz")(lambda: {})

    @graph.post("/v1/{number}/messages")
    async def graph_send(number: str, request: Request) -> dict[str, str]:
        seen_traceparent.append(request.headers.get("traceparent", ""))
        return {"ok": number}

    async with _serving(graph) as graph_url:
        http = httpx.AsyncClient(transport=tracing.http_transport("graph"))

        async def hop_one(delivery: Delivery) -> None:
            await broker.publish_raw(COMMANDS, second.name, delivery.body, type=delivery.type)

        async def hop_two(delivery: Delivery) -> None:
            response = await http.post(f"{graph_url}/v1/900/messages", content=b"{}")
            response.raise_for_status()

        await broker.consume(first, hop_one, prefetch=10, max_attempts=3)
        await broker.consume(second, hop_two, prefetch=10, max_attempts=3)

        # The edge (ingest's place): an HTTP request that publishes the first message.
        edge = FastAPI()
        edge.get("/healthz")(lambda: {})

        @edge.post("/in/{what}")
        async def take_in(what: str) -> dict[str, str]:
            await broker.publish_raw(COMMANDS, first.name, _message(what), type="outbox.send_text")
            return {"taken": what}

        async with _serving(edge) as edge_url, httpx.AsyncClient() as client:
            assert (await client.post(f"{edge_url}/in/hello")).status_code == 200
            await eventually(lambda: _done(seen_traceparent), timeout=20, what="the far call")
        await http.aclose()

    finished = await eventually(lambda: _all_ended(spans, 7), what="every span ended")
    traces = {s.context.trace_id for s in finished if s.context is not None}
    assert len(traces) == 1, [(s.name, s.context) for s in finished]
    by_kind = {kind: [s for s in finished if s.kind is kind] for kind in SpanKind}
    # Both servers, both publishes, both deliveries, the outgoing call: nothing else.
    assert sorted(s.name for s in by_kind[SpanKind.SERVER]) == [
        "POST /in/{what}",
        "POST /v1/{number}/messages",
    ]
    assert len(by_kind[SpanKind.PRODUCER]) == 2
    assert sorted(s.name for s in by_kind[SpanKind.CONSUMER]) == sorted(
        [f"process {first.name}", f"process {second.name}"]
    )
    assert [s.name for s in by_kind[SpanKind.CLIENT]] == ["POST graph"]
    # The chain, parent by parent, from the far server back to the edge's request.
    parents = {s.context.span_id: s for s in finished if s.context is not None}
    chain: list[str] = []
    current: ReadableSpan | None = next(
        s for s in finished if s.name == "POST /v1/{number}/messages"
    )
    while current is not None:
        chain.append(current.name)
        current = parents.get(current.parent.span_id) if current.parent is not None else None
    assert chain == [
        "POST /v1/{number}/messages",
        "POST graph",
        f"process {second.name}",
        "publish baton.commands",
        f"process {first.name}",
        "publish baton.commands",
        "POST /in/{what}",
    ]
    assert seen_traceparent[0].split("-")[1] == format(traces.pop(), "032x")


async def _done(seen: list[str]) -> bool:
    return bool(seen)


async def _all_ended(spans: InMemorySpanExporter, count: int) -> list[ReadableSpan] | None:
    finished = list(spans.get_finished_spans())
    return finished if len(finished) >= count else None


async def test_off_by_default_every_seam_is_a_no_op() -> None:
    assert not tracing.enabled()
    assert not tracing.configure("svc", {})
    assert not tracing.configure("svc", {"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.configure(
        "svc", {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}
    )
    assert tracing.http_transport("graph") is None
    app = FastAPI()
    assert tracing.asgi(app) is app
    headers: dict[str, object] = {}
    noop = tracing.publishing(headers, exchange="x", routing_key="y", message_id="z")
    assert noop is tracing.consuming(
        "q", {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    )
    with noop:
        assert tracing.trace_id() is None
    assert headers == {}


def test_which_exporters_the_environment_asks_for() -> None:
    assert tracing.wanted({}) == []
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp"}) == ["otlp"]
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp, console"}) == ["otlp", "console"]
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == ["otlp"]
    assert (
        tracing.wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}) == []
    )
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "TRUE"}) == []


async def test_a_dead_lettered_delivery_is_a_failed_consumer_span(
    broker: Broker, spans: InMemorySpanExporter
) -> None:
    spec = _spec()

    async def refuse(delivery: Delivery) -> None:
        raise Poison("never processable")

    await broker.consume(spec, refuse, prefetch=10, max_attempts=3)
    await broker.publish_raw(COMMANDS, spec.name, _message("bad"), type="outbox.send_text")

    async def consumed() -> list[ReadableSpan] | None:
        found = [s for s in spans.get_finished_spans() if s.name == f"process {spec.name}"]
        return found or None

    [span] = await eventually(consumed, what="the consumer span")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "Poison: never processable"
    assert [e.name for e in span.events] == ["exception"]
