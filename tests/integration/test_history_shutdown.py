"""SIGTERM while the history service is importing a chunk: it finishes the chunk, acks, exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime

import aio_pika
import httpx
import pytest

from baton.broker import WEBHOOKS, Broker
from baton.broker.topology import HISTORY_WEBHOOKS
from baton.messages import WebhookChange
from baton.store import PostgresStore
from devstack import REPO_ROOT
from services.ingest.changes import split
from simulator.webhooks import envelope, history_chunk, history_message
from tests.e2e.conftest import free_port
from tests.outbox_harness import number_id
from tests.waiting import eventually

pytestmark = pytest.mark.integration

THREADS, PER_THREAD = 200, 300  # 60,000 messages: an import that takes a while to write


def _backlog(pnid: str) -> dict[str, list[dict[str, object]]]:
    return {
        f"55119{t:07d}": [
            history_message(
                f"55119{t:07d}", f"m{i}", wamid=f"{pnid}-{t}-{i}", timestamp=1_760_000_000 + i
            )
            for i in range(PER_THREAD)
        ]
        for t in range(THREADS)
    }


async def _stored(store: PostgresStore, pnid: str) -> int:
    count: int = await store.pool.fetchval(
        "SELECT count(*) FROM messages WHERE phone_number_id = $1", pnid
    )
    return count


async def test_sigterm_mid_chunk_finishes_the_import_and_acks_it(
    broker: Broker, store: PostgresStore, amqp_url: str, pg_url: str
) -> None:
    await broker.declare_topology()
    pnid = number_id()
    now = datetime.now(UTC)
    await store.onboard_number(pnid, now=now, deadline=now)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_AMQP_URL": amqp_url,
        "BATON_STORE_URL": pg_url,
        "BATON_METRICS_PORT": str(port),
    }
    history = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.history",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient() as client:

            async def ready() -> bool:
                try:
                    return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, what="the history service ready", timeout=30)
        [change] = split(envelope([history_chunk(pnid, _backlog(pnid))]), now)
        await broker.publish_raw(
            WEBHOOKS,
            change.routing_key,
            change.body,
            type=WebhookChange.TYPE,
            message_id=change.message_id,
        )

        async def importing() -> bool:
            return await _stored(store, pnid) > 0

        await eventually(importing, what="the import under way", timeout=30)
        assert await _stored(store, pnid) < THREADS * PER_THREAD, "done before the signal"
        history.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(history.wait(), 40)
    finally:
        if history.returncode is None:
            history.kill()
            await history.wait()
    stderr = (await history.stderr.read()).decode() if history.stderr else ""
    assert code == 0, stderr[-2000:]
    assert await _stored(store, pnid) == THREADS * PER_THREAD  # finished, nothing lost
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        queue = await (await connection.channel()).declare_queue(
            HISTORY_WEBHOOKS.name, passive=True
        )
        assert queue.declaration_result.message_count == 0  # acked: nobody imports it again
