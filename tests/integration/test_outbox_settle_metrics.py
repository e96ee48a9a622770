"""The outbox's settlements are counted in `baton_consumer_messages_total`, like every consumer's.

The outbox settles its deliveries itself (not through `baton.service`), so nothing else would
count them; the README promises that metric covers every consumer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from prometheus_client import REGISTRY

from baton.broker import COMMANDS, Broker
from baton.broker.topology import OUTBOX_INTAKE, outbox_number_queue
from baton.messages import SendText
from baton.types import Author
from services.outbox.intake import Intake
from services.outbox.settle import Settler
from tests.conftest import unique
from tests.outbox_harness import customer_id, number_id
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    conn = await aio_pika.connect_robust(amqp_url)
    yield conn
    await conn.close()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _consumed(outcome: str) -> float:
    return _sample("baton_consumer_messages_total", queue=OUTBOX_INTAKE.name, outcome=outcome)


def _forwarded(outcome: str) -> float:
    return _sample("baton_outbox_intake_total", outcome=outcome)


async def test_intake_settlements_are_counted_as_consumer_messages(
    broker: Broker, connection: AbstractRobustConnection
) -> None:
    await broker.declare_topology()
    pnid = number_id()
    await broker.declare_queue(outbox_number_queue(pnid))
    sends = [
        SendText(
            idempotency_key=unique("settle"),
            conversation_id=7,
            phone_number_id=pnid,
            to=customer_id(7),
            body=f"#{i}",
            author=Author.SYSTEM,
        )
        for i in range(3)
    ]
    for send in sends:
        await broker.publish_command(send)
    # A malformed request: the intake dead-letters it, which is a settlement too.
    await broker.publish_raw(COMMANDS, SendText.TYPE, b'{"not": "a send"}', type=SendText.TYPE)
    # The consumer's "processed" is the intake's "forwarded"; "dead_lettered" is both.
    before = {
        o: (_consumed(o), _forwarded(f))
        for o, f in (("processed", "forwarded"), ("dead_lettered", "dead_lettered"))
    }

    async def ensure_number(phone_number_id: str) -> None:
        await broker.declare_queue(outbox_number_queue(phone_number_id))

    intake = Intake(broker, Settler(broker), ensure_number)
    await intake.start(connection)
    try:

        async def settled() -> bool:
            return (
                _forwarded("forwarded") - before["processed"][1] >= len(sends)
                and _forwarded("dead_lettered") - before["dead_lettered"][1] >= 1
            )

        await eventually(settled, what="the intake to settle every request", timeout=30)
    finally:
        await intake.stop()

    # Leftovers of other tests in the shared intake queue may be settled too: compare the two
    # counters, which must move together.
    assert _consumed("processed") - before["processed"][0] == (
        _forwarded("forwarded") - before["processed"][1]
    )
    assert _consumed("dead_lettered") - before["dead_lettered"][0] == (
        _forwarded("dead_lettered") - before["dead_lettered"][1]
    )
