"""`baton dlq` and `baton doctor` as an operator runs them: real processes, broker and store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from baton.broker import Broker, Delivery, Poison, QueueSpec
from baton.broker.topology import COMMANDS
from baton.messages import SendText
from baton.store import PostgresStore
from baton.types import Author
from tests.conftest import unique
from tests.waiting import eventually

pytestmark = pytest.mark.integration


def baton(*args: str, amqp_url: str, pg_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "BATON_AMQP_URL": amqp_url,
            "BATON_STORE_URL": pg_url,
            "BATON_OPERATOR": "oncall-ana",
            **env,
        },
    )


async def test_a_poison_message_is_shown_then_replayed_once_to_its_queue_and_recorded(
    broker: Broker, store: PostgresStore, amqp_url: str, pg_url: str
) -> None:
    queue = unique("test.cli.sends")
    spec = QueueSpec(queue, COMMANDS, (queue,))
    fixed = asyncio.Event()
    handled: list[str] = []

    async def handler(delivery: Delivery) -> None:
        if not fixed.is_set():
            raise Poison("renderer cannot read this body")
        handled.append(delivery.message_id)

    await broker.consume(spec, handler, prefetch=5, max_attempts=1)
    command = SendText(
        idempotency_key=unique("k"),
        conversation_id=1,
        phone_number_id="900000000000001",
        to="5511999990000",
        body="olá",
        author=Author.HUMAN,
    )
    await broker.publish(COMMANDS, queue, command)

    def parked() -> list[dict[str, object]]:
        shown = baton("dlq", "show", queue, amqp_url=amqp_url, pg_url=pg_url)
        assert shown.returncode == 0, shown.stderr
        return list(json.loads(shown.stdout))

    async def parked_now() -> list[dict[str, object]]:
        return await asyncio.to_thread(parked)

    items = await eventually(parked_now, timeout=20, what="the message in the dead-letter queue")
    assert items[0]["reason"] == "Poison: renderer cannot read this body"
    assert items[0]["queue"] == queue
    assert items[0]["type"] == SendText.TYPE
    # Looking at it left it in place; a dry run too.
    dry = baton("dlq", "replay", queue, "--dry-run", amqp_url=amqp_url, pg_url=pg_url)
    assert json.loads(dry.stdout)["replayed"][0]["message_id"] == items[0]["message_id"]
    assert len(parked()) == 1
    assert handled == []

    fixed.set()
    done = baton("dlq", "replay", queue, "--limit", "5", amqp_url=amqp_url, pg_url=pg_url)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["replayed"]) == 1

    async def replayed() -> bool:
        return len(handled) == 1

    await eventually(replayed, timeout=20, what="the replayed message handled")
    assert handled == [items[0]["message_id"]]
    assert parked() == []
    replays = await store.dlq_replays(queue)
    assert [(r.operator, r.message_id, r.failure) for r in replays] == [
        ("oncall-ana", items[0]["message_id"], "Poison: renderer cannot read this body")
    ]
    nothing = baton("dlq", "replay", queue, amqp_url=amqp_url, pg_url=pg_url)
    assert nothing.returncode == 1, "an empty queue replays nothing and says so"


async def test_doctor_says_what_is_wrong_one_line_each(
    broker: Broker, amqp_url: str, pg_url: str
) -> None:
    await broker.declare_topology()
    healthy = baton("doctor", amqp_url=amqp_url, pg_url=pg_url)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    lines = healthy.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["broker", "store", "clock", "graph"]
    assert all(line.startswith("ok") for line in lines)
    broken = baton(
        "doctor", amqp_url=amqp_url, pg_url=pg_url.rsplit("/", 1)[0] + "/no_such_database"
    )
    assert broken.returncode == 1
    store_line = next(line for line in broken.stdout.splitlines() if " store " in line)
    assert store_line.startswith("FAIL") and "no_such_database" in store_line
