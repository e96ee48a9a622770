"""The outbox intake's ceiling: send requests forwarded per second to their numbers' queues.

    .venv/bin/python -m bench.intake [--messages 20000] [--numbers 10]

Every send request passes `outbox.intake`, whose single active consumer (one across all outbox
replicas) forwards it to `outbox.number.<id>` one at a time, each forward confirmed before the
next, so per-conversation order survives. That makes the intake the ceiling of the whole
outbox, whatever the number of replicas. On a throwaway vhost, `--messages` requests spread over
`--numbers` numbers are queued in the intake, then the real `Intake` forwards them; timed from
its start until every number queue holds its share. Baselines in the same run, on the same
connection: sequential confirmed publishes to a quorum queue (the floor of one-at-a-time
forwarding) and the same publishes pipelined (what forwarding without the order would reach).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import aio_pika
import uvloop

from baton.broker import COMMANDS, Broker
from baton.broker.topology import OUTBOX_INTAKE, outbox_number_queue
from baton.messages import SendText
from baton.types import Author
from bench._infra import throwaway_vhost
from services.outbox.intake import Intake
from services.outbox.settle import Settler


def _request(pnid: str, i: int) -> SendText:
    return SendText(
        idempotency_key=uuid.uuid4().hex,
        conversation_id=i % 500,
        phone_number_id=pnid,
        to=f"5511{i % 500:09d}",
        body=f"mensagem #{i}",
        author=Author.BOT,
        epoch=0,
        request_id=f"r{i}",
    )


async def _depth(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0


async def _publish_rate(broker: Broker, queue: str, count: int, *, pipelined: bool) -> float:
    body = _request("900", 0).model_dump_json().encode()
    started = time.perf_counter()
    if pipelined:
        await asyncio.gather(
            *(broker.publish_raw(COMMANDS, queue, body, type=SendText.TYPE) for _ in range(count))
        )
    else:
        for _ in range(count):
            await broker.publish_raw(COMMANDS, queue, body, type=SendText.TYPE)
    return count / (time.perf_counter() - started)


async def run(messages: int, numbers: int, amqp_url: str) -> None:
    broker = Broker(amqp_url, name="bench-intake")
    await broker.connect()
    await broker.declare_topology()
    pnids = [f"9{n:014d}" for n in range(numbers)]
    for pnid in pnids:
        await broker.declare_queue(outbox_number_queue(pnid))
    requests = [_request(pnids[i % numbers], i) for i in range(messages)]
    await asyncio.gather(*(broker.publish_command(r) for r in requests))

    async def ensure_number(_: str) -> None:  # queues declared above, as the outbox would
        return None

    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    intake = Intake(broker, Settler(broker), ensure_number)
    started = time.perf_counter()
    await intake.start(connection)
    while True:  # the queues' depths are the only signal of a forward from outside the intake
        if sum([await _depth(channel, outbox_number_queue(p).name) for p in pnids]) >= messages:
            break
        await asyncio.sleep(0.05)
    forwarded = messages / (time.perf_counter() - started)
    await intake.stop()
    assert await _depth(channel, OUTBOX_INTAKE.name) == 0

    probe = outbox_number_queue("900000000000999")
    await broker.declare_queue(probe)
    count = min(messages, 5000)
    sequential = await _publish_rate(broker, probe.name, count, pipelined=False)
    pipelined = await _publish_rate(broker, probe.name, count, pipelined=True)
    await connection.close()
    await broker.close()

    print(f"intake forwards: {forwarded:,.0f}/s ({messages:,} requests over {numbers} numbers)")
    print(
        f"sequential confirmed publishes: {sequential:,.0f}/s (ratio {forwarded / sequential:.2f})"
    )
    print(f"pipelined confirmed publishes: {pipelined:,.0f}/s (ratio {forwarded / pipelined:.2f})")
    print(f"outbox ceiling at 72 msg/s per number: {forwarded / 72:.0f} numbers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--numbers", type=int, default=10)
    args = parser.parse_args()
    with throwaway_vhost("bench-intake") as amqp_url:
        uvloop.run(run(args.messages, args.numbers, amqp_url))


if __name__ == "__main__":
    main()
