"""PostgreSQL restarted in the middle of a stream: the work in flight waits, nothing is lost.

A private PostgreSQL cluster (tests/faultinfra.py) is restarted while a consumer writes every
delivery to it through the real store; afterwards every message is stored exactly once and none
was dead-lettered (an outage is waited out, never counted against the message).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from baton.broker import COMMANDS, Broker, Delivery, QueueSpec
from baton.messages import SendText
from baton.runtime import store_reasons
from baton.store import PostgresStore, open_store
from baton.types import Author
from tests.conftest import unique
from tests.faultinfra import PrivatePostgres, private_postgres
from tests.integration.test_broker import _dead_letters
from tests.waiting import eventually

pytestmark = pytest.mark.integration

MESSAGES = 120


@pytest.fixture
async def pg() -> AsyncIterator[PrivatePostgres]:
    async with private_postgres() as server:
        yield server


async def test_a_store_restart_mid_stream_loses_nothing(
    pg: PrivatePostgres, broker: Broker, amqp_url: str
) -> None:
    url = await pg.create_database("baton")
    store = await open_store(url, migrate=True)
    assert isinstance(store, PostgresStore)
    spec = QueueSpec(unique("test.store"), COMMANDS, ())
    spec = QueueSpec(spec.name, COMMANDS, (spec.name,))
    handled: list[str] = []

    async def handle(delivery: Delivery) -> None:
        send = SendText.model_validate_json(delivery.body)
        await store.conversation("900", send.to)  # an upsert: twice equals once
        handled.append(send.to)

    try:
        await broker.consume(spec, handle, prefetch=8, max_attempts=2)
        for i in range(MESSAGES):
            await broker.publish(
                COMMANDS,
                spec.name,
                SendText(
                    idempotency_key=unique("k"),
                    conversation_id=1,
                    phone_number_id="900",
                    to=f"55{i:08d}",
                    body="x",
                    author=Author.SYSTEM,
                ),
            )
            if i == MESSAGES // 3:
                await pg.stop()
                assert await store_reasons(store.ping) == ["store unreachable"]
                # Deliveries keep arriving while it is down.
            if i == MESSAGES // 2:
                await pg.start()

        async def all_stored() -> bool:
            conn = await asyncpg.connect(url)
            try:
                count = await conn.fetchval("SELECT count(*) FROM conversations")
            finally:
                await conn.close()
            return bool(count == MESSAGES)

        await eventually(all_stored, timeout=60, what="every message stored")
        await eventually(lambda: _done(len(set(handled)) == MESSAGES), what="all handled")
        assert await store_reasons(store.ping) == []
        assert await _dead_letters(amqp_url, spec.name, expected=1, timeout=0.5) == []
    finally:
        await broker.drain(timeout=10)
        await store.close()


async def _done(value: bool) -> bool:
    await asyncio.sleep(0)
    return value
