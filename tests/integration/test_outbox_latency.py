"""The outbox against a simulator with Meta-like latency, and its per-number metrics.

The exact window (`window_margin = inf`) anchors a slot on Meta's answer: any 19 consecutive
calls of an 18/s number span at least 1 s + the latency, whatever Meta's uplink. The default
margin trades that for throughput (tests/unit/test_outbox_window_margin.py, bench.outbox).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from baton.broker import Broker
from baton.store import PostgresStore
from baton.whatsapp.client import GraphClient
from baton.whatsapp.errors import GraphApiError
from services.outbox.worker import WorkerConfig
from simulator import (
    DEV_ACCESS_TOKEN,
    ConfigUpdate,
    FaultKind,
    RoundTrip,
    SimConfig,
    Simulator,
    SimulatorClient,
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

pytestmark = pytest.mark.integration

LATENCY = 0.15
RATE = 18


@pytest.fixture
async def slow_sim() -> AsyncIterator[Simulator]:
    async with running_simulator(SimConfig(latency=LATENCY)) as simulator:
        yield simulator


async def test_the_simulator_holds_every_answer_for_its_latency(slow_sim: Simulator) -> None:
    pnid = number_id()
    slow_sim.register(pnid)
    slow_sim.inject(FaultKind.SERVER_ERROR, phone_number_id=pnid)
    async with GraphClient(slow_sim.base_url, DEV_ACCESS_TOKEN) as graph:
        began = time.monotonic()
        with pytest.raises(GraphApiError):
            await graph.send_text(pnid, customer_id(), "refused, late")
        refused = time.monotonic()
        await graph.send_text(pnid, customer_id(), "accepted, late")
        answered = time.monotonic()
    assert refused - began >= LATENCY
    assert answered - refused >= LATENCY
    accepted = slow_sim.accepted(pnid)
    # Counted when it arrived; only the answer waits.
    assert len(accepted) == 1 and answered - accepted[0].at >= LATENCY

    async with SimulatorClient(slow_sim.root_url) as control:
        await control.configure(ConfigUpdate(latency=0.0))
    assert slow_sim.config.latency == 0.0
    assert slow_sim.config.coexistence_rate == 20  # the rest of the configuration is kept


async def test_the_simulator_counts_a_send_between_its_uplink_and_its_downlink() -> None:
    # p99 = median: no jitter, so each leg is exactly its share of the round trip.
    config = SimConfig(round_trip=RoundTrip(median=0.2, p99=0.2, uplink_share=0.5))
    async with (
        running_simulator(config) as sim,
        GraphClient(sim.base_url, DEV_ACCESS_TOKEN) as graph,
    ):
        pnid = number_id()
        sim.register(pnid)
        began = time.monotonic()
        await graph.send_text(pnid, customer_id(), "counted on arrival")
        answered = time.monotonic()
        (accepted,) = sim.accepted(pnid)
        assert accepted.at - began >= 0.1  # counted after its uplink...
        assert answered - accepted.at >= 0.1  # ...answered after its downlink
        async with SimulatorClient(sim.root_url) as control:
            await control.configure(ConfigUpdate(round_trip_enabled=False))
        assert sim.config.round_trip is None


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_with_latency_a_slot_is_reused_only_after_metas_answer(
    amqp_url: str,
    pg_url: str,
    slow_sim: Simulator,
    store: PostgresStore,
    broker: Broker,
) -> None:
    await broker.declare_topology()
    pnid = number_id()
    slow_sim.register(pnid, coexistence=True)
    customers = [customer_id(i) for i in range(20)]
    ids = await conversations(store, pnid, customers)
    sends = [request(pnid, customers[i % 20], ids[customers[i % 20]], f"m #{i}") for i in range(60)]
    sent_before = _sample(
        "baton_outbox_sends_total", author="system", phone_number_id=pnid, outcome="sent"
    )
    assert sent_before is None  # a fresh number has no series yet
    exact = WorkerConfig(window_margin=math.inf)
    async with running_outbox(
        amqp_url, pg_url, slow_sim.base_url, coexistence(pnid), worker=exact
    ) as runtime:
        await publish(broker, sends)  # a backlog: the window is saturated
        await slow_sim.wait_for_messages(60, phone_number_id=pnid, timeout=60)
        assert pnid in runtime.active_numbers()  # numbers of other tests may be active too
        # The sender exports the number's gauges while it is the sender.
        assert _sample("baton_outbox_held_sends", phone_number_id=pnid) is not None
        assert _sample("baton_outbox_free_send_slots", phone_number_id=pnid) is not None

    at = sorted(m.at for m in slow_sim.messages(pnid))
    assert len(at) == 60 and slow_sim.stats().throughput_errors == 0
    assert max_in_window(at) <= RATE
    # Any 19 consecutive calls hold two on one slot: a second plus the answer's latency apart.
    gaps = [at[i + RATE] - at[i] for i in range(len(at) - RATE)]
    assert min(gaps) >= 1.0 + LATENCY
    assert (
        _sample("baton_outbox_sends_total", author="system", phone_number_id=pnid, outcome="sent")
        == 60
    )
    # Let go (the replica stopped): no stale per-number gauges left behind.
    assert _sample("baton_outbox_held_sends", phone_number_id=pnid) is None
    assert _sample("baton_outbox_free_send_slots", phone_number_id=pnid) is None
