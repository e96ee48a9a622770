"""A real router process against a private broker: readiness tells the truth, consumers resume.

Broker down → /readyz 503 naming the reason, /healthz 503 once the (small) grace has passed;
broker back (restart, or its connection closed) → consumers on both queues again, 200 again.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack import REPO_ROOT
from tests.faultinfra import PrivateBroker, broker_for_module, free_port
from tests.waiting import eventually

pytestmark = pytest.mark.integration

ROUTER_QUEUES = {"router.webhooks", "router.commands"}


@pytest.fixture(scope="module")
def rabbit() -> Iterator[PrivateBroker]:
    with broker_for_module() as node:
        yield node


async def _get(url: str) -> tuple[int, dict[str, Any]] | None:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(url)
    except httpx.TransportError:
        return None
    return response.status_code, response.json()


async def test_router_readiness_liveness_and_resumed_consumers(
    rabbit: PrivateBroker, pg_url: str
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.update(
        BATON_AMQP_URL=rabbit.url,
        BATON_STORE_URL=pg_url,
        BATON_METRICS_PORT=str(port),
        BATON_LIVENESS_GRACE_SECONDS="2",
        BATON_LOG_JSON="true",
    )
    router = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.router",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    async def answers(path: str, code: int) -> dict[str, Any] | None:
        got = await _get(base + path)
        return got[1] if got is not None and got[0] == code else None

    async def consuming() -> bool:
        return set(await rabbit.consumed_queues()) >= ROUTER_QUEUES

    try:
        await eventually(lambda: answers("/readyz", 200), timeout=60, what="router ready")
        assert await eventually(consuming, what="consumers on the router's queues")

        await rabbit.stop()
        try:
            down = await eventually(lambda: answers("/readyz", 503), what="readyz 503")
            assert "broker unreachable" in down["reasons"]
            unhealthy = await eventually(lambda: answers("/healthz", 503), what="healthz 503")
            assert unhealthy["not_ready_seconds"] >= 2
        finally:
            started = time.monotonic()
            await rabbit.start()
        await eventually(lambda: answers("/readyz", 200), timeout=60, what="ready after restart")
        assert await eventually(consuming, what="consumers back after the restart")
        restart_recovery = time.monotonic() - started
        assert await answers("/healthz", 200) == {"status": "ok"}

        started = time.monotonic()
        assert await rabbit.close_connections("router") == 1
        await eventually(consuming, what="consumers back after close_connection")
        await eventually(lambda: answers("/readyz", 200), what="ready after close_connection")
        close_recovery = time.monotonic() - started
        print(
            f"\nrouter recovered: broker restart {restart_recovery:.2f}s after start_app,"
            f" close_connection {close_recovery:.2f}s"
        )
    finally:
        router.terminate()
        code = await asyncio.wait_for(router.wait(), 40)
    assert code == 0
