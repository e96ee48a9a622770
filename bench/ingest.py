"""Ingest throughput and ack latency, against a bare FastAPI endpoint measured in the same run.

    .venv/bin/python -m bench.ingest [--seconds 10] [--connections 32]

Starts one real ingest process (HMAC verification + split + publish to RabbitMQ + waiting for the
publisher confirm of a quorum queue) and one bare FastAPI process that only answers 200, both
under uvicorn on loopback. For each: the saturated rate (closed loop), then p50/p99 ack latency
at half of that rate (open loop, measured from the scheduled send time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import uuid

import httpx
import uvloop

from baton.broker import Broker
from baton.devstack import REPO_ROOT
from baton.whatsapp.signature import sign
from bench.loadgen import Result, paced, post_request, saturate
from tests.fakes.whatsapp.webhooks import customer_text, envelope, meta_json

SECRET = "bench-app-secret"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise SystemExit("rabbitmqctl not found: the benchmark needs the local RabbitMQ")
    subprocess.run([ctl, *args], check=True, capture_output=True)


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


async def _measure(
    name: str, port: int, request: bytes, seconds: float, connections: int
) -> tuple[Result, Result]:
    await saturate(port, lambda: request, connections=connections, seconds=1.0)  # warm-up
    peak = await saturate(port, lambda: request, connections=connections, seconds=seconds)
    half = await paced(
        port, lambda: request, rate=peak.rate / 2, seconds=seconds, connections=connections
    )
    errors = {s: n for s, n in {**peak.by_status, **half.by_status}.items() if s != 200}
    print(
        f"{name:<8} {peak.rate:>9.0f} req/s   at {peak.rate / 2:>6.0f} req/s:"
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


async def _run(ingest_port: int, bare_port: int, seconds: float, connections: int) -> None:
    await _wait_up(ingest_port, "/readyz")
    await _wait_up(bare_port, "/webhook")
    body = _webhook()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, SECRET)}
    signed = post_request("/webhook", body, headers)
    print(
        f"one {len(body)}-byte signed webhook, {connections} connections,"
        f" {seconds:.0f} s per phase, {os.cpu_count()} cores"
    )
    print("endpoint     saturated    latency at half of it (open loop)")
    ingest, _ = await _measure("ingest", ingest_port, signed, seconds, connections)
    bare, _ = await _measure("bare", bare_port, signed, seconds, connections)
    print(f"ratio ingest/bare: {ingest.rate / bare.rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    vhost = f"baton-bench-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    amqp_url = AMQP + vhost
    uvloop.run(_declare_topology(amqp_url))
    ingest_port, bare_port = _free_port(), _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
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
    try:
        uvloop.run(_run(ingest_port, bare_port, args.seconds, args.connections))
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=20)
        _rabbitmqctl("delete_vhost", vhost)


if __name__ == "__main__":
    main()
