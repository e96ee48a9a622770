"""The sync driver against the WhatsApp simulator and the real store, on a controlled clock.

Meta takes each sync request once: these tests hold the driver to sending it at most once, to
retrying only what provably never reached Meta, and to showing the 24-hour deadline.
"""

from __future__ import annotations

import itertools
import math
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from baton.store import PostgresStore
from baton.store.history_records import DeadlineState, SyncStatus, SyncType
from baton.whatsapp import GraphClient
from services.history.driver import DriverSettings, SyncDriver
from services.history.sync import RetryPolicy
from simulator import Endpoint, FaultKind, Outcome, Simulator
from tests.clock import FakeClock
from tests.conftest import unique

pytestmark = pytest.mark.integration

SETTINGS = DriverSettings(
    at_risk=timedelta(seconds=30),
    lease_seconds=60,
    poll_seconds=0.05,
    retry=RetryPolicy(base_seconds=2, cap_seconds=8),
)
WINDOW = timedelta(seconds=90)
# Each test lives in its own stretch of the past, further apart than the gauges' horizon, so the
# numbers of one test never show in another's gauges (the database is shared by the session).
_ERAS = itertools.count()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=10 * next(_ERAS)))


@pytest.fixture
async def graph(sim: Simulator) -> AsyncIterator[GraphClient]:
    async with GraphClient(sim.base_url, sim.config.token, timeout=0.5) as client:
        yield client


def _driver(store: PostgresStore, graph: GraphClient, clock: FakeClock) -> SyncDriver:
    return SyncDriver(store, graph, SETTINGS, clock=clock, jitter=lambda: 1.0)


async def _onboard(store: PostgresStore, sim: Simulator, clock: FakeClock) -> str:
    pnid = unique("9")
    sim.register(pnid, coexistence=True)
    await store.onboard_number(pnid, now=clock(), deadline=clock() + WINDOW)
    return pnid


def _requests(sim: Simulator, pnid: str) -> list[tuple[str | None, Outcome]]:
    return [(s.sync_type, s.outcome) for s in sim.sync_requests() if s.phone_number_id == pnid]


async def _status(store: PostgresStore, pnid: str, sync_type: SyncType) -> SyncStatus:
    history = await store.number_history(pnid)
    assert history is not None
    sync = history.sync(sync_type)
    assert sync is not None
    return sync.status


async def test_onboarding_requests_contacts_then_history_exactly_once(
    store: PostgresStore, sim: Simulator, graph: GraphClient, clock: FakeClock
) -> None:
    pnid = await _onboard(store, sim, clock)
    done = await _driver(store, graph, clock).tick()
    assert [(c.sync_type, o.status) for c, o in done if c.phone_number_id == pnid] == [
        (SyncType.CONTACTS, SyncStatus.ACCEPTED),
        (SyncType.HISTORY, SyncStatus.ACCEPTED),
    ]
    # Another replica, and later ticks, find nothing to send.
    for _ in range(3):
        clock.advance(10)
        await _driver(store, graph, clock).tick()
    assert _requests(sim, pnid) == [
        ("smb_app_state_sync", Outcome.ACCEPTED),
        ("history", Outcome.ACCEPTED),
    ]
    history = await store.number_history(pnid)
    assert history is not None
    recorded = {s.sync_type: s.request_id for s in history.syncs}
    assert recorded == {
        SyncType.CONTACTS: sim.sync_requests()[-2].request_id,
        SyncType.HISTORY: sim.sync_requests()[-1].request_id,
    }
    assert history.deadline_state(clock(), SETTINGS.at_risk) is DeadlineState.MET


async def test_rate_limited_requests_are_retried_with_backoff(
    store: PostgresStore, sim: Simulator, graph: GraphClient, clock: FakeClock
) -> None:
    pnid = await _onboard(store, sim, clock)
    sim.inject(FaultKind.THROUGHPUT, phone_number_id=pnid, endpoint=Endpoint.SMB_APP_DATA, count=3)
    driver = _driver(store, graph, clock)
    await driver.tick()
    # Contacts went first; its retry waiting does not hold history back.
    assert _requests(sim, pnid) == [
        ("smb_app_state_sync", Outcome.REJECTED),
        ("history", Outcome.REJECTED),
    ]
    assert await _status(store, pnid, SyncType.CONTACTS) is SyncStatus.PENDING
    await driver.tick()  # not due yet: the backoff holds
    assert len(_requests(sim, pnid)) == 2
    clock.advance(2)
    await driver.tick()
    clock.advance(4)
    await driver.tick()
    assert _requests(sim, pnid)[2:] == [
        ("smb_app_state_sync", Outcome.REJECTED),
        ("history", Outcome.ACCEPTED),
        ("smb_app_state_sync", Outcome.ACCEPTED),
    ]
    assert await _status(store, pnid, SyncType.CONTACTS) is SyncStatus.ACCEPTED


async def test_connection_refused_is_retried(
    store: PostgresStore, sim: Simulator, graph: GraphClient, clock: FakeClock
) -> None:
    pnid = await _onboard(store, sim, clock)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v25.0"  # bound, never listening
        async with GraphClient(dead, sim.config.token, timeout=0.5) as unreachable:
            await _driver(store, unreachable, clock).tick()
    assert await _status(store, pnid, SyncType.CONTACTS) is SyncStatus.PENDING
    assert _requests(sim, pnid) == []
    clock.advance(2)
    await _driver(store, graph, clock).tick()
    assert [o for _, o in _requests(sim, pnid)] == [Outcome.ACCEPTED, Outcome.ACCEPTED]


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (FaultKind.HANG, SyncStatus.UNCLEAR),  # a timeout: Meta may well have it
        (FaultKind.SERVER_ERROR, SyncStatus.UNCLEAR),
        (FaultKind.BAD_GATEWAY, SyncStatus.UNCLEAR),
        (FaultKind.AUTH, SyncStatus.FAILED),
    ],
)
async def test_unclear_or_refused_requests_are_never_resent(
    store: PostgresStore,
    sim: Simulator,
    graph: GraphClient,
    clock: FakeClock,
    fault: FaultKind,
    status: SyncStatus,
) -> None:
    pnid = await _onboard(store, sim, clock)
    sim.inject(fault, phone_number_id=pnid, endpoint=Endpoint.SMB_APP_DATA)
    driver = _driver(store, graph, clock)
    for _ in range(4):
        await driver.tick()
        clock.advance(5)
    assert await _status(store, pnid, SyncType.CONTACTS) is status
    # Exactly one contacts request ever left; history went on after it, once.
    assert [t for t, _ in _requests(sim, pnid)] == ["smb_app_state_sync", "history"]
    history = await store.number_history(pnid)
    assert history is not None
    assert history.needs_person


async def test_deadline_goes_at_risk_then_missed_while_retrying(
    store: PostgresStore, sim: Simulator, graph: GraphClient, clock: FakeClock
) -> None:
    pnid = await _onboard(store, sim, clock)
    sim.inject(
        FaultKind.THROUGHPUT, phone_number_id=pnid, endpoint=Endpoint.SMB_APP_DATA, count=1000
    )
    driver = _driver(store, graph, clock)
    seen: list[tuple[DeadlineState, float | None]] = []
    for _ in range(12):
        await driver.tick()
        [number] = [n for n in await driver.refresh() if n.phone_number_id == pnid]
        state = number.deadline_state(clock(), SETTINGS.at_risk)
        assert state is not None
        gauge = REGISTRY.get_sample_value("baton_history_deadline_seconds")
        at_risk = REGISTRY.get_sample_value("baton_history_numbers", {"deadline": "at_risk"})
        missed = REGISTRY.get_sample_value("baton_history_numbers", {"deadline": "missed"})
        waiting = state in (DeadlineState.ON_TRACK, DeadlineState.AT_RISK)
        assert gauge == (number.seconds_left(clock()) if waiting else math.inf)
        assert (at_risk, missed) == (
            float(state is DeadlineState.AT_RISK),
            float(state is DeadlineState.MISSED),
        )
        seen.append((state, number.seconds_left(clock())))
        clock.advance(10)
    states = [s for s, _ in seen]
    assert states[0] is DeadlineState.ON_TRACK
    assert DeadlineState.AT_RISK in states
    assert states[-1] is DeadlineState.MISSED
    assert states == sorted(
        states, key=[DeadlineState.ON_TRACK, DeadlineState.AT_RISK, DeadlineState.MISSED].index
    )
    attempts = _requests(sim, pnid)
    assert len(attempts) >= 5  # retried all along
    assert {o for _, o in attempts} == {Outcome.REJECTED}
    assert await _status(store, pnid, SyncType.CONTACTS) is SyncStatus.MISSED
    assert await _status(store, pnid, SyncType.HISTORY) is SyncStatus.MISSED
    # Nothing is sent once the window closed.
    clock.advance(60)
    await driver.tick()
    assert len(_requests(sim, pnid)) == len(attempts)


async def test_an_attempt_whose_process_died_becomes_unclear(
    store: PostgresStore, sim: Simulator, graph: GraphClient, clock: FakeClock
) -> None:
    pnid = await _onboard(store, sim, clock)
    # A replica claimed the request and died before recording anything.
    assert await store.claim_sync_requests(now=clock(), phone_number_id=pnid)
    driver = _driver(store, graph, clock)
    await driver.tick()
    assert _requests(sim, pnid) == []  # still within the lease: nobody else sends it
    clock.advance(SETTINGS.lease_seconds + 1)
    await driver.tick()
    assert await _status(store, pnid, SyncType.CONTACTS) is SyncStatus.UNCLEAR
    assert [t for t, _ in _requests(sim, pnid)] == ["history"]


async def test_an_offboarded_number_is_never_requested(
    store: PostgresStore, sim: Simulator, graph: GraphClient, clock: FakeClock
) -> None:
    pnid, connected = await _onboard(store, sim, clock), await _onboard(store, sim, clock)
    await store.disable_number(
        phone_number_id=pnid, display_phone_number=None, reason="PARTNER_REMOVED", now=clock()
    )
    await _driver(store, graph, clock).tick()
    assert _requests(sim, pnid) == []
    # The same tick did send for a number still connected: the silence above is the rule's.
    assert [t for t, _ in _requests(sim, connected)] == ["smb_app_state_sync", "history"]
