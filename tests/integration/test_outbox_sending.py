"""The outbox against the WhatsApp simulator, on the real broker and database: pacing per
number, pair pacing, retries, permanent failures, dead-lettering, idempotency and fencing.

Windows are measured on the simulator's own receive timestamps (`SentMessage.at`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from baton.broker import COMMANDS, EVENTS, Broker
from baton.broker.topology import OUTBOX_INTAKE, dead_letter_queue, outbox_number_queue
from baton.messages import SendText
from baton.settings import NumbersConfig
from baton.store import PostgresStore
from baton.types import Author
from services.outbox import metrics
from services.outbox.retry import RetryPolicy
from services.outbox.worker import WorkerConfig
from simulator import (
    FaultKind,
    Outcome,
    PairRate,
    SentMessage,
    SimConfig,
    Simulator,
    running_simulator,
)
from tests.outbox_harness import (
    coexistence,
    conversations,
    customer_id,
    max_in_window,
    number_id,
    publish,
    request,
    running_outbox,
)
from tests.waiting import eventually

pytestmark = pytest.mark.integration


class EventTap:
    """Every event published on `baton.events` while the test runs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self.events.append((message.type or "", message.body))

    def of(self, event_type: str, needle: str) -> list[bytes]:
        return [body for t, body in self.events if t == event_type and needle.encode() in body]


@pytest.fixture
async def events(amqp_url: str) -> AsyncIterator[EventTap]:
    tap = EventTap()
    connection: AbstractRobustConnection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EVENTS)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="event.#")
        await queue.consume(tap.on_message, no_ack=True)
        yield tap


@pytest.fixture
async def publisher(broker: Broker) -> Broker:
    await broker.declare_topology()
    return broker


def _index(message: SentMessage) -> int:
    assert message.body is not None
    return int(message.body.rsplit("#", 1)[1])


def _assert_in_order_once(accepted: Sequence[SentMessage], expected: int) -> None:
    indexes = [_index(m) for m in accepted]
    assert Counter(indexes) == Counter(range(expected)), "each message exactly once"
    per_customer: dict[str, list[int]] = defaultdict(list)
    for message in accepted:
        per_customer[message.wa_id].append(_index(message))
    for sequence in per_customer.values():
        assert sequence == sorted(sequence), "per-conversation order"


# The exact (answer-anchored) window for the tests that count at the simulator: the default
# margin assumes <= 30 ms of uplink jitter, which a loaded machine's loopback can exceed.
EXACT = WorkerConfig(window_margin=math.inf)


async def _stream(
    store: PostgresStore, pnid: str, count: int, customers: int, *, prefix: str = "msg"
) -> list[SendText]:
    wa_ids = [customer_id(i) for i in range(customers)]
    ids = await conversations(store, pnid, wa_ids)
    return [
        request(pnid, wa_ids[i % customers], ids[wa_ids[i % customers]], f"{prefix} #{i}")
        for i in range(count)
    ]


async def test_500_messages_for_a_coexistence_number_stay_under_its_rate(
    amqp_url: str, pg_url: str, sim: Simulator, store: PostgresStore, publisher: Broker
) -> None:
    pnid = number_id()
    sim.register(pnid, coexistence=True)  # Meta's 20/s, enforced with 130429
    sends = await _stream(store, pnid, 500, customers=50)
    async with running_outbox(amqp_url, pg_url, sim.base_url, coexistence(pnid), worker=EXACT):
        await publish(publisher, sends)  # all queued at once
        await sim.wait_for_messages(500, phone_number_id=pnid, timeout=90)

    calls = sim.messages(pnid)
    assert sim.stats().throughput_errors == 0
    assert max_in_window([m.at for m in calls]) <= 18  # the configured rate, not Meta's 20
    accepted = sim.accepted(pnid)
    _assert_in_order_once(accepted, 500)
    # It also uses the rate: ~18/s sustained (≥ 95 % of the limit).
    span = accepted[-1].at - accepted[0].at
    assert (len(accepted) - 1) / span >= 0.95 * 18


async def test_two_numbers_proceed_in_parallel_each_at_its_own_rate(
    amqp_url: str, pg_url: str, sim: Simulator, store: PostgresStore, publisher: Broker
) -> None:
    fast, slow = number_id(), number_id()
    sim.register(fast, coexistence=True)
    sim.register(slow, coexistence=True)
    numbers = NumbersConfig(
        numbers={**coexistence(fast).numbers, **coexistence(slow, rate=6).numbers}
    )
    fast_sends = await _stream(store, fast, 90, customers=15)
    slow_sends = await _stream(store, slow, 30, customers=10)
    async with running_outbox(amqp_url, pg_url, sim.base_url, numbers, worker=EXACT):
        await publish(
            publisher, [s for pair in zip(fast_sends, slow_sends, strict=False) for s in pair]
        )
        await publish(publisher, fast_sends[len(slow_sends) :])
        await sim.wait_for_messages(90, phone_number_id=fast, timeout=60)
        await sim.wait_for_messages(30, phone_number_id=slow, timeout=60)

    fast_at = [m.at for m in sim.messages(fast)]
    slow_at = [m.at for m in sim.messages(slow)]
    assert max_in_window(fast_at) <= 18
    assert max_in_window(slow_at) <= 6
    assert sim.stats().throughput_errors == 0
    # In parallel: the slow number is still sending while the fast one does (and not after).
    assert min(slow_at) < max(fast_at)
    assert max(slow_at) - min(slow_at) >= 3.5  # 30 at 6/s: its own pace, not the fast one's
    _assert_in_order_once(sim.accepted(fast), 90)
    _assert_in_order_once(sim.accepted(slow), 30)


async def test_a_429_storm_and_a_5xx_burst_end_with_everything_delivered_in_order(
    amqp_url: str, pg_url: str, sim: Simulator, store: PostgresStore, publisher: Broker
) -> None:
    pnid = number_id()
    sim.register(pnid, coexistence=True)
    sim.inject(FaultKind.THROUGHPUT, phone_number_id=pnid, count=12)
    sim.inject(FaultKind.SERVER_ERROR, phone_number_id=pnid, count=6)
    sim.inject(FaultKind.BAD_GATEWAY, phone_number_id=pnid, count=4)
    sends = await _stream(store, pnid, 60, customers=6)
    before = metrics.RETRIES.labels(error_class="throughput", scope="number")._value.get()
    # Shorter pauses than production's (1 s doubling up to 30 s) keep the test quick.
    policy = RetryPolicy(throughput_base=0.1, throughput_cap=1.0, transient_base=0.1)
    worker = WorkerConfig(policy=policy, window_margin=math.inf)
    async with running_outbox(amqp_url, pg_url, sim.base_url, coexistence(pnid), worker=worker):
        await publish(publisher, sends)
        await sim.wait_for_messages(60, phone_number_id=pnid, timeout=60)

    rejected = Counter(m.error_code for m in sim.messages(pnid, outcome=Outcome.REJECTED))
    assert rejected == {130429: 12, 131000: 6, None: 4}
    assert sim.stats().throughput_errors == 0  # none beyond the injected storm
    _assert_in_order_once(sim.accepted(pnid), 60)
    assert metrics.RETRIES.labels(error_class="throughput", scope="number")._value.get() > before
    assert max_in_window([m.at for m in sim.messages(pnid)]) <= 18


async def test_a_permanent_error_is_recorded_once_and_never_retried(
    amqp_url: str,
    pg_url: str,
    sim: Simulator,
    store: PostgresStore,
    publisher: Broker,
    events: EventTap,
) -> None:
    pnid = number_id()
    sim.inject(FaultKind.OUTSIDE_WINDOW, phone_number_id=pnid)  # 131047: needs a template
    doomed, *rest = await _stream(store, pnid, 3, customers=1)
    async with running_outbox(amqp_url, pg_url, sim.base_url, coexistence(pnid)):
        await publish(publisher, [doomed, *rest])
        await sim.wait_for_messages(2, phone_number_id=pnid, timeout=20)
        await eventually(
            lambda: _async(events.of("event.send_failed", doomed.idempotency_key)),
            what="the SendFailed event",
        )
        await publish(publisher, [doomed])  # a redelivery: must not be tried again
        await publish(publisher, [request(pnid, doomed.to, doomed.conversation_id, "after #3")])
        await sim.wait_for_messages(3, phone_number_id=pnid, timeout=20)

    attempts = [m for m in sim.messages(pnid) if m.body == doomed.body]
    assert [(m.outcome, m.error_code) for m in attempts] == [(Outcome.REJECTED, 131047)]
    assert len(events.of("event.send_failed", doomed.idempotency_key)) == 1
    row = await store.pool.fetchrow(
        "SELECT status, error_code, send_attempts FROM messages WHERE idempotency_key = $1",
        doomed.idempotency_key,
    )
    assert row is not None
    assert dict(row) == {"status": "failed", "error_code": 131047, "send_attempts": 1}
    assert [_index(m) for m in sim.accepted(pnid)] == [1, 2, 3]


async def test_bounded_retries_end_in_the_dead_letter_queue_with_the_reason(
    amqp_url: str,
    pg_url: str,
    sim: Simulator,
    store: PostgresStore,
    publisher: Broker,
    events: EventTap,
) -> None:
    pnid = number_id()
    sim.inject(FaultKind.UNAVAILABLE, phone_number_id=pnid, count=3)
    (send,) = await _stream(store, pnid, 1, customers=1)
    worker = WorkerConfig(policy=RetryPolicy(max_attempts=3, transient_base=0.05))
    async with running_outbox(amqp_url, pg_url, sim.base_url, coexistence(pnid), worker=worker):
        await publish(publisher, [send])
        parked = await _dead_letter(amqp_url, dead_letter_queue(outbox_number_queue(pnid).name))

    assert SendText.model_validate_json(parked.body) == send
    headers = parked.headers or {}
    assert "131016" in str(headers["x-baton-error"])
    assert headers["x-baton-attempts"] == 3
    assert len(sim.messages(pnid)) == 3
    assert sim.accepted(pnid) == []
    row = await store.pool.fetchrow(
        "SELECT status, error_code FROM messages WHERE idempotency_key = $1", send.idempotency_key
    )
    assert row is not None
    assert dict(row) == {"status": "dead_lettered", "error_code": 131016}
    assert events.of("event.send_failed", send.idempotency_key)


async def test_a_request_is_sent_once_however_often_it_arrives(
    amqp_url: str, pg_url: str, sim: Simulator, store: PostgresStore, publisher: Broker
) -> None:
    pnid = number_id()
    first, second = await _stream(store, pnid, 2, customers=1)
    async with running_outbox(amqp_url, pg_url, sim.base_url, coexistence(pnid)):
        await publish(publisher, [first, first, second, first])
        await sim.wait_for_messages(2, phone_number_id=pnid, timeout=20)
        await publish(publisher, [first])  # long after it was sent
        marker = request(pnid, first.to, first.conversation_id, "marker #2")
        await publish(publisher, [marker])
        await sim.wait_for_messages(3, phone_number_id=pnid, timeout=20)
    assert [m.body for m in sim.accepted(pnid)] == [first.body, second.body, marker.body]
    rows = await store.pool.fetchval(
        "SELECT count(*) FROM messages WHERE idempotency_key = $1", first.idempotency_key
    )
    assert rows == 1


async def test_a_bot_reply_is_fenced_once_a_human_holds_the_conversation(
    amqp_url: str,
    pg_url: str,
    sim: Simulator,
    store: PostgresStore,
    publisher: Broker,
    events: EventTap,
) -> None:
    pnid, wa_id = number_id(), customer_id()
    conversation = await store.conversation(pnid, wa_id)
    assert await store.hand_to_human(conversation.id, expected_epoch=conversation.epoch)
    # Produced under the bot's epoch, arriving after the takeover (a reply in flight).
    late = request(
        pnid, wa_id, conversation.id, "bot #0", author=Author.BOT, epoch=conversation.epoch
    )
    human = request(pnid, wa_id, conversation.id, "agent #1", author=Author.HUMAN)
    async with running_outbox(amqp_url, pg_url, sim.base_url, coexistence(pnid)):
        await publish(publisher, [late, human])
        await sim.wait_for_messages(1, phone_number_id=pnid, timeout=20)
        fenced = await eventually(
            lambda: _async(events.of("event.reply_fenced", late.idempotency_key)),
            what="the ReplyFenced event",
        )
    assert [m.body for m in sim.messages(pnid)] == ["agent #1"]
    assert b"not_bot_mode" in fenced[0]


async def test_a_burst_to_one_customer_is_spaced_without_holding_back_the_others(
    amqp_url: str, pg_url: str, store: PostgresStore, publisher: Broker
) -> None:
    # Meta's pair limit shrunk to a burst of 3, then 1 per second; the outbox paces a little
    # under it, as it does under Meta's real 45 / 6 s.
    config = SimConfig(pair_rate=PairRate(burst=3, seconds_per_message=1.0))
    worker = WorkerConfig(pair_burst=2, pair_interval=1.0)
    pnid = number_id()
    chatty, other = customer_id(1), customer_id(2)
    ids = await conversations(store, pnid, [chatty, other])
    burst = [request(pnid, chatty, ids[chatty], f"burst #{i}") for i in range(5)]
    others = [request(pnid, other, ids[other], f"other #{i}") for i in range(5, 7)]
    async with (
        running_simulator(config) as sim,
        running_outbox(amqp_url, pg_url, sim.base_url, coexistence(pnid), worker=worker),
    ):
        await publish(publisher, [*burst, *others])
        await sim.wait_for_messages(7, phone_number_id=pnid, timeout=30)

    assert sim.stats().pair_rate_errors == 0
    to_chatty = [m.at for m in sim.accepted(pnid, chatty)]
    to_other = [m.at for m in sim.accepted(pnid, other)]
    assert to_chatty[2] - to_chatty[0] >= 0.9  # spaced beyond the burst, not rejected
    assert to_chatty[4] - to_chatty[2] >= 1.9
    assert max(to_other) < to_chatty[2]  # the other customer did not wait behind the burst
    _assert_in_order_once(sim.accepted(pnid), 7)


async def test_a_lost_answer_is_retried_and_counted_as_in_doubt(
    amqp_url: str, pg_url: str, sim: Simulator, store: PostgresStore, publisher: Broker
) -> None:
    # Meta accepted the send but its answer never came (the documented window): the outbox
    # cannot know, so it sends again and counts it; it never drops the message.
    pnid = number_id()
    sim.inject(FaultKind.HANG, phone_number_id=pnid)
    (send,) = await _stream(store, pnid, 1, customers=1)
    before = metrics.IN_DOUBT.labels(cause="no_answer")._value.get()
    async with running_outbox(amqp_url, pg_url, sim.base_url, coexistence(pnid), graph_timeout=0.5):
        await publish(publisher, [send])
        await sim.wait_for_messages(2, phone_number_id=pnid, timeout=20)
        sim.runtime.release_held()
    assert metrics.IN_DOUBT.labels(cause="no_answer")._value.get() == before + 1
    row = await store.pool.fetchrow(
        "SELECT send_attempts, wamid FROM messages WHERE idempotency_key = $1",
        send.idempotency_key,
    )
    assert row is not None
    assert row["send_attempts"] == 2
    assert row["wamid"] == sim.accepted(pnid)[1].wamid


async def test_a_malformed_request_is_parked_at_the_intake(
    amqp_url: str, pg_url: str, sim: Simulator, publisher: Broker
) -> None:
    message_id = uuid.uuid4().hex
    async with running_outbox(amqp_url, pg_url, sim.base_url, NumbersConfig()):
        await publisher.publish_raw(
            COMMANDS, SendText.TYPE, b'{"not": "a send"}', type=SendText.TYPE, message_id=message_id
        )
        parked = await _dead_letter(
            amqp_url, dead_letter_queue(OUTBOX_INTAKE.name), message_id=message_id
        )
    assert "ValidationError" in str((parked.headers or {})["x-baton-error"])


async def _async(value: list[bytes]) -> list[bytes]:
    return value


async def _dead_letter(
    amqp_url: str, queue_name: str, *, message_id: str | None = None, timeout: float = 20.0
) -> AbstractIncomingMessage:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            if message_id is None or message.message_id == message_id:
                return message
        raise AssertionError(f"nothing dead-lettered in {queue_name} within {timeout}s")
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
