"""One customer message is one trace across the real processes (ingest → router → bot → outbox).

Every service exports OTLP/HTTP to a collector fake on loopback (below), which decodes the
protobuf requests; the test follows the webhook's trace id through every service's resource.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from devstack import Ports, ServiceSpec, Stack, plan
from simulator import DEV_APP_SECRET, SentMessage, SimulatorClient
from simulator.webhooks import customer_text, envelope, meta_json, post_webhook
from tests.conftest import unique
from tests.e2e.conftest import RunningStack, free_port, stack_env
from tests.e2e.console_support import AGENT_TOKENS, ALICE_TOKEN, bearer
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

PHONE_NUMBER_ID = "900000000000017"


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str


class Collector:
    """An OTLP/HTTP trace receiver: `POST /v1/traces` (protobuf), spans kept in memory."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector._add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _add(self, request: ExportTraceServiceRequest) -> None:
        exported: list[ExportedSpan] = []
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    exported.append(
                        ExportedSpan(
                            service=service,
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                        )
                    )
        with self._lock:
            self.spans.extend(exported)

    def snapshot(self) -> list[ExportedSpan]:
        with self._lock:
            return list(self.spans)

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def traced_stack(
    amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningStack, Collector]]:
    """The stack with tracing on, each service exporting to the collector fake, and the fake LLM."""
    llm_port = free_port()
    ports = Ports(
        ingest=free_port(),
        simulator=free_port(),
        router=free_port(),
        bot=free_port(),
        outbox=free_port(),
        history=free_port(),
        console=free_port(),
    )
    workdir: Path = tmp_path_factory.mktemp("traced-stack")
    numbers = workdir / "numbers.toml"
    numbers.write_text(
        f'[numbers."{PHONE_NUMBER_ID}"]\ndebounce_quiet_seconds = 0.3\ndebounce_cap_seconds = 2\n'
    )
    with Collector() as collector:
        env = stack_env(
            amqp_url,
            pg_url,
            ports,
            BATON_LLM_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
            BATON_LLM_API_KEY="fake-key",
            BATON_NUMBERS_FILE=str(numbers),
            BATON_AGENT_TOKENS=AGENT_TOKENS,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.port}",
            OTEL_BSP_SCHEDULE_DELAY="100",  # ms: spans reach the collector while the test waits
        )
        env.pop("OTEL_SDK_DISABLED", None)
        env.pop("OTEL_SERVICE_NAME", None)
        llm = ServiceSpec(
            "llm",
            (sys.executable, "-m", "tests.fakes.llm", "--port", str(llm_port)),
            f"http://127.0.0.1:{llm_port}/_control/requests",
        )
        stack = Stack([llm, *plan(env, ports, with_simulator=True)], env, workdir / "logs")
        stack.start()
        try:
            asyncio.run(stack.wait_ready(timeout=60))
            yield RunningStack(stack, ports, env), collector
        finally:
            codes = stack.stop()
            unclean = {
                name: code
                for name, code in codes.items()
                if name not in ("simulator", "llm") and code
            }
            assert not unclean, f"services did not stop cleanly: {unclean}; logs in {workdir}"


@pytest.fixture
async def sim(traced_stack: tuple[RunningStack, Collector]) -> AsyncIterator[SimulatorClient]:
    client = SimulatorClient(traced_stack[0].sim_url)
    yield client
    await client.aclose()


def _customer() -> str:
    return "55" + unique("")[1:10].translate(str.maketrans("abcdef", "123456"))


async def test_one_customer_message_is_one_trace_across_every_service(
    traced_stack: tuple[RunningStack, Collector], sim: SimulatorClient
) -> None:
    stack, collector = traced_stack
    customer = _customer()
    body = meta_json(envelope([customer_text(PHONE_NUMBER_ID, customer, "Olá, tudo bem?")]))
    assert (await post_webhook(stack.webhook_url, body, DEV_APP_SECRET)).status_code == 200

    async def reply() -> list[SentMessage]:
        return [m for m in await sim.messages(to=customer) if m.wamid is not None]

    await eventually(reply, timeout=30, what="the bot's reply at the simulator")

    async def webhook_trace() -> str | None:
        spans = collector.snapshot()
        edge = [s for s in spans if s.service == "ingest" and s.name == "POST /webhook"]
        return edge[0].trace_id if edge else None

    trace_id = await eventually(webhook_trace, timeout=20, what="ingest's webhook span")

    async def whole_trace() -> list[ExportedSpan] | None:
        # Spans arrive in each process's own batches: wait for the Graph call and every parent.
        spans = [s for s in collector.snapshot() if s.trace_id == trace_id]
        graph_sends = [s for s in spans if s.service == "outbox" and s.name == "POST graph"]
        ids = {s.span_id for s in spans}
        orphans = [s for s in spans if s.parent_span_id and s.parent_span_id not in ids]
        return spans if graph_sends and not orphans else None

    spans = await eventually(whole_trace, timeout=20, what="the Graph call in the same trace")
    services = {s.service for s in spans}
    assert {"ingest", "router", "bot", "outbox"} <= services, services
    names = {(s.service, s.name) for s in spans}
    assert ("bot", "POST llm") in names, names
    assert ("bot", "process bot.requests") in names, names
    assert ("router", "process router.webhooks") in names, names
    assert ("router", "timer debounce") in names, names  # the flush continues the trace
    assert ("outbox", "process outbox.intake") in names, names
    assert ("outbox", f"process outbox.number.{PHONE_NUMBER_ID}") in names, names
    # One tree: every span but the webhook's has its parent in the same trace.
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_span_id == "" or s.parent_span_id not in ids]
    assert [(r.service, r.name) for r in roots] == [("ingest", "POST /webhook")], roots


async def test_an_agents_send_continues_the_callers_trace_to_the_graph_call(
    traced_stack: tuple[RunningStack, Collector], sim: SimulatorClient
) -> None:
    stack, collector = traced_stack
    customer = _customer()
    body = meta_json(envelope([customer_text(PHONE_NUMBER_ID, customer, "Quero falar com alguém")]))
    assert (await post_webhook(stack.webhook_url, body, DEV_APP_SECRET)).status_code == 200
    console = f"http://127.0.0.1:{stack.ports.console}"
    async with httpx.AsyncClient(base_url=console, headers=bearer(ALICE_TOKEN)) as alice:

        async def conversation() -> int | None:
            listed = await alice.get(
                "/conversations", params={"number": PHONE_NUMBER_ID, "limit": 200}
            )
            found = [c["id"] for c in listed.json()["items"] if c["wa_id"] == customer]
            return int(found[0]) if found else None

        cid = await eventually(conversation, what="the customer's conversation")
        assert (await alice.post(f"/conversations/{cid}/takeover")).status_code == 200
        # The caller's own trace (a desk page, a copilot) is continued, not replaced.
        trace_id, caller_span = uuid.uuid4().hex, "00f067aa0ba902b7"
        sent = await alice.post(
            f"/conversations/{cid}/messages",
            json={"text": "Oi, aqui é a Alice."},
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
        assert sent.status_code == 202

    async def whole_trace() -> list[ExportedSpan] | None:
        spans = [s for s in collector.snapshot() if s.trace_id == trace_id]
        ids = {s.span_id for s in spans} | {caller_span}
        orphans = [s for s in spans if s.parent_span_id not in ids]
        graph = [s for s in spans if (s.service, s.name) == ("outbox", "POST graph")]
        return spans if graph and not orphans else None

    spans = await eventually(whole_trace, timeout=30, what="the agent's send, Graph call included")
    [root] = [s for s in spans if s.parent_span_id == caller_span]
    assert (root.service, root.name) == (
        "console",
        "POST /conversations/{conversation_id}/messages",
    )
    assert {"console", "outbox"} <= {s.service for s in spans}
