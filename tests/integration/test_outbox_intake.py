"""The outbox intake on the real broker: in order per conversation, never held up by another.

A conversation's next request is forwarded only after its previous one was confirmed, so a
forward that keeps failing holds back that conversation alone, and its order survives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from baton.broker import Broker
from baton.broker.topology import outbox_number_queue
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


def _send(pnid: str, conversation_id: int, body: str) -> SendText:
    return SendText(
        idempotency_key=unique("intake"),
        conversation_id=conversation_id,
        phone_number_id=pnid,
        to=customer_id(conversation_id % 100),
        body=body,
        author=Author.SYSTEM,
    )


async def test_a_failing_forward_holds_back_only_its_own_conversation_in_order(
    broker: Broker, connection: AbstractRobustConnection
) -> None:
    await broker.declare_topology()
    healthy, failing = number_id(), number_id()
    refusals = 3  # the failing number's queue cannot be set up three times, then can

    async def ensure_number(pnid: str) -> None:
        nonlocal refusals
        if pnid == failing and refusals > 0:
            refusals -= 1
            raise RuntimeError("the broker is not ready for this number yet")
        await broker.declare_queue(outbox_number_queue(pnid))

    arrived: list[str] = []

    async def record(message: AbstractIncomingMessage) -> None:
        arrived.append(SendText.model_validate_json(message.body).body)

    channel = await connection.channel()
    for pnid in (healthy, failing):
        await broker.declare_queue(outbox_number_queue(pnid))
        queue = await channel.get_queue(outbox_number_queue(pnid).name)
        await queue.consume(record, no_ack=True)
    # Interleaved, each publish confirmed: the failing conversation's first request comes first.
    sends = [
        send
        for i in range(3)
        for send in (_send(failing, 1, f"failing #{i}"), _send(healthy, 2, f"healthy #{i}"))
    ]
    for send in sends:
        await broker.publish_command(send)

    intake = Intake(broker, Settler(broker), ensure_number)
    await intake.start(connection)
    try:

        async def all_arrived() -> bool:
            return {s.body for s in sends} <= set(arrived)

        await eventually(all_arrived, what="every request forwarded", timeout=30)
    finally:
        await intake.stop()

    ours = [body for body in arrived if body.startswith(("failing", "healthy"))]
    assert [b for b in ours if b.startswith("failing")] == [f"failing #{i}" for i in range(3)]
    assert [b for b in ours if b.startswith("healthy")] == [f"healthy #{i}" for i in range(3)]
    # The healthy conversation was not held up behind the failing one's retries.
    assert ours[:3] == [f"healthy #{i}" for i in range(3)]
    assert refusals == 0
