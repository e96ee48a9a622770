"""Ingest throughput and ack latency, against a bare FastAPI endpoint measured in the same run.

    .venv/bin/python -m bench.ingest [--seconds 10] [--connections 32] [--tracing]

Starts one real ingest process (HMAC verification + split + publish to RabbitMQ + waiting for the
publisher confirm of a quorum queue) and one bare FastAPI process that only answers 200, both
under uvicorn on loopback. For each: the saturated rate (closed loop) and the server's CPU time
per request during it (read from /proc, steadier than the rate when other work shares the cores),
then p50/p99 ack latency at half of that rate (open loop, measured from the scheduled send time).
Nothing consumes what ingest publishes here, so the queues are purged before each ingest phase:
a backlog of a few hundred thousand messages slows the broker's confirms (p99 at 2,500 req/s
went from 3 to 220 ms), which is the broker's state, not ingest's cost.

With `--tracing`, a second ingest process runs with tracing on (`OTEL_TRACES_EXPORTER=otlp`,
every span exported to `bench.otlp_sink` on loopback) and is measured the same way, right after
the first: the ratio traced/untraced is what tracing costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import httpx
import uvloop

from baton.broker import QUEUES, Broker
from baton.whatsapp.signature import sign
from bench._infra import cpu_seconds, free_port, load_average, throwaway_vhost
from bench.loadgen import Result, paced, post_request, saturate
from devstack import REPO_ROOT
from simulator.webhooks import customer_text, envelope, meta_json

SECRET = "bench-app-secret"


def _webhook() -> bytes:
    change = customer_text("900000000000001", "5511999990000", "Olá, quero saber do meu pedido 123")
    return meta_json(envelope([change]))


async def _wait_up(port: int, path: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(f"http://127.0.0.1:{port}{path}")).status_code in (200, 405):
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing answering on :{port}{path}")


@dataclass(frozen=True)
class Server:
    port: int
    pid: int


async def _measure(
    name: str,
    server: Server,
    request: bytes,
    seconds: float,
    connections: int,
    reset: Callable[[], Awaitable[None]],
) -> tuple[Result, Result]:
    port = server.port
    await saturate(port, lambda: request, connections=connections, seconds=1.0)  # warm-up
    await reset()
    cpu_before = cpu_seconds(server.pid)
    peak = await saturate(port, lambda: request, connections=connections, seconds=seconds)
    cpu = cpu_seconds(server.pid) - cpu_before
    await reset()
    half = await paced(
        port, lambda: request, rate=peak.rate / 2, seconds=seconds, connections=connections
    )
    errors = {s: n for s, n in {**peak.by_status, **half.by_status}.items() if s != 200}
    print(
        f"{name:<8} {peak.rate:>7.0f} req/s  {cpu / max(peak.sent, 1) * 1e6:>5.0f} µs"
        f" ({cpu / peak.elapsed:>4.0%})  at {peak.rate / 2:>5.0f} req/s:"
        f" p50 {half.percentile(50) * 1000:6.2f} ms  p99 {half.percentile(99) * 1000:6.2f} ms"
        f"  non-200: {errors or 'none'}",
        flush=True,
    )
    return peak, half


async def _declare_topology(amqp_url: str) -> None:
    broker = Broker(amqp_url, name="bench")
    await broker.connect()
    await broker.declare_topology()  # the router's quorum queue receives what ingest publishes
    await broker.close()


async def _purge(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for spec in QUEUES.values():
            await (await channel.get_queue(spec.name, ensure=False)).purge()
    finally:
        await connection.close()


async def _nothing() -> None:
    pass


async def _run(
    ingest: Server,
    bare: Server,
    amqp_url: str,
    seconds: float,
    connections: int,
    traced: Server | None = None,
) -> None:
    await _wait_up(ingest.port, "/readyz")
    if traced is not None:
        await _wait_up(traced.port, "/readyz")
    await _wait_up(bare.port, "/webhook")
    body = _webhook()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, SECRET)}
    signed = post_request("/webhook", body, headers)
    print(
        f"one {len(body)}-byte signed webhook, {connections} connections,"
        f" {seconds:.0f} s per phase, {os.cpu_count()} cores,"
        f" load average {load_average()} at start"
    )
    print("endpoint  saturated  CPU/req (util)  latency at half of it (open loop)")
    peak, _ = await _measure(
        "ingest", ingest, signed, seconds, connections, lambda: _purge(amqp_url)
    )
    if traced is not None:
        with_spans, _ = await _measure(
            "traced", traced, signed, seconds, connections, lambda: _purge(amqp_url)
        )
        print(f"ratio traced/ingest: {with_spans.rate / peak.rate:.2f}")
    baseline, _ = await _measure("bare", bare, signed, seconds, connections, _nothing)
    print(
        f"ratio ingest/bare: {peak.rate / baseline.rate:.2f}; load average {load_average()} at end"
    )


def _serve_and_measure(amqp_url: str, args: argparse.Namespace) -> None:
    uvloop.run(_declare_topology(amqp_url))
    ingest_port, bare_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "OTEL_"))},
        "BATON_AMQP_URL": amqp_url,
        "BATON_APP_SECRET": SECRET,
        "BATON_INGEST_PORT": str(ingest_port),
        "BATON_LOG_LEVEL": "WARNING",
    }
    quiet = subprocess.DEVNULL
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "services.ingest"],
            cwd=REPO_ROOT,
            env=env,
            stdout=quiet,
            stderr=quiet,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "bench.bare_server", str(bare_port)],
            cwd=REPO_ROOT,
            stdout=quiet,
            stderr=quiet,
        ),
    ]
    traced: Server | None = None
    if args.tracing:
        traced_port, sink_port = free_port(), free_port()
        traced_env = {
            **env,
            "BATON_INGEST_PORT": str(traced_port),
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            # The caller's own (a sampler, say) apply to the traced process only.
            **{k: v for k, v in os.environ.items() if k.startswith("OTEL_")},
        }
        servers += [
            subprocess.Popen(
                [sys.executable, "-m", "services.ingest"],
                cwd=REPO_ROOT,
                env=traced_env,
                stdout=quiet,
                stderr=quiet,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "bench.otlp_sink", str(sink_port)],
                cwd=REPO_ROOT,
                stdout=quiet,
                stderr=quiet,
            ),
        ]
        traced = Server(traced_port, servers[2].pid)
    try:
        ingest = Server(ingest_port, servers[0].pid)
        bare = Server(bare_port, servers[1].pid)
        uvloop.run(_run(ingest, bare, amqp_url, args.seconds, args.connections, traced))
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tracing", action="store_true", help="also measure ingest traced")
    args = parser.parse_args()

    with throwaway_vhost("baton-bench") as amqp_url:
        _serve_and_measure(amqp_url, args)


if __name__ == "__main__":
    main()
