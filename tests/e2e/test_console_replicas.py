"""Two real console processes share one event log: an SSE client that reconnects to the other
replica with `Last-Event-ID` gets what it missed, with the same ids, instead of `reset`, even
when the replica it was on was killed."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from baton.broker import Broker
from baton.messages import ModeChanged
from baton.types import Mode
from devstack import Ports, ServiceSpec, Stack
from tests.conftest import unique
from tests.e2e.conftest import free_port, stack_env
from tests.e2e.console_support import AGENT_TOKENS, ALICE_TOKEN, BOB_TOKEN, SseEvent, sse

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Replicas:
    stack: Stack
    urls: dict[str, str]  # replica name → base URL


@pytest.fixture(scope="module")
def replicas(
    amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    ports = {name: free_port() for name in ("console-a", "console-b")}
    unused = Ports(*(free_port() for _ in range(7)))  # only the simulator URL is read
    env = stack_env(amqp_url, pg_url, unused, BATON_AGENT_TOKENS=AGENT_TOKENS)
    specs = [
        ServiceSpec(
            name,
            (sys.executable, "-m", "services.console"),
            f"http://127.0.0.1:{port}/readyz",
            {"BATON_CONSOLE_PORT": str(port)},
        )
        for name, port in ports.items()
    ]
    logs: Path = tmp_path_factory.mktemp("console-replicas")
    stack = Stack(specs, env, logs)
    stack.start()
    try:
        asyncio.run(stack.wait_ready(timeout=60))
        yield Replicas(stack, {name: f"http://127.0.0.1:{p}" for name, p in ports.items()})
    finally:
        codes = stack.stop()
        assert codes.get("console-b") == 0, f"console-b did not stop cleanly; logs in {logs}"


@pytest.fixture
async def publisher(amqp_url: str) -> AsyncIterator[Broker]:
    broker = Broker(amqp_url, name="replicas-test")
    await broker.connect()
    yield broker
    await broker.close()


def mode_changed(number: str, epoch: int) -> ModeChanged:
    return ModeChanged(
        conversation_id=1,
        phone_number_id=number,
        wa_id="5511999990000",
        at=datetime.now(UTC),
        from_mode=Mode.BOT,
        to_mode=Mode.HUMAN,
        epoch=epoch,
        cause="agent_takeover",
    )


def about(number: str, epoch: int) -> Callable[[SseEvent], bool]:
    return lambda e: e.data.get("phone_number_id") == number and e.data.get("epoch") == epoch


async def test_a_client_resumes_on_the_other_replica_with_the_same_ids(
    replicas: Replicas, publisher: Broker
) -> None:
    a, b = replicas.urls["console-a"], replicas.urls["console-b"]
    number = unique("9")
    params = {"number": number}
    async with sse(a, ALICE_TOKEN, params=params) as on_a:
        await publisher.publish_event(mode_changed(number, 1))
        seen = await on_a.find(about(number, 1), what="the first event on replica a")
    assert seen.id is not None and seen.id.isdigit()
    # Missed while disconnected; a witness on b says when both are in the log.
    async with sse(b, BOB_TOKEN, params=params) as witness:
        for epoch in (2, 3):
            await publisher.publish_event(mode_changed(number, epoch))
        witnessed = [await witness.next_event(), await witness.next_event()]
    async with sse(b, ALICE_TOKEN, params=params, last_event_id=seen.id) as on_b:
        replayed = [await on_b.next_event(), await on_b.next_event()]
    assert [e.event for e in replayed] == ["conversation.mode_changed"] * 2  # no reset
    assert [e.data["epoch"] for e in replayed] == [2, 3]
    assert [e.id for e in replayed] == [e.id for e in witnessed]
    # The ids are the same on replica a: one numbering for every replica.
    async with sse(a, ALICE_TOKEN, params=params, last_event_id=seen.id) as back_on_a:
        again = [await back_on_a.next_event(), await back_on_a.next_event()]
    assert [e.id for e in again] == [e.id for e in replayed]


async def test_events_published_after_a_replica_is_killed_are_replayed_by_the_other(
    replicas: Replicas, publisher: Broker
) -> None:
    a, b = replicas.urls["console-a"], replicas.urls["console-b"]
    number = unique("9")
    params = {"number": number}
    async with sse(a, ALICE_TOKEN, params=params) as on_a:
        await publisher.publish_event(mode_changed(number, 1))
        seen = await on_a.find(about(number, 1), what="the first event on replica a")
    assert seen.id is not None
    # Replica a dies (it may have been the log's active writer): b takes the writing over.
    replicas.stack.stop("console-a", sig=signal.SIGKILL)
    for epoch in (2, 3, 4):
        await publisher.publish_event(mode_changed(number, epoch))
    async with sse(b, ALICE_TOKEN, params=params, last_event_id=seen.id) as on_b:
        first = await on_b.next_event(timeout=30)
        assert first.event != "reset"
        rest = [await on_b.next_event(timeout=30) for _ in range(2)]
    assert [e.data["epoch"] for e in (first, *rest)] == [2, 3, 4]
