"""Conversations by mode: the store's grouped count and the router's `baton_conversations` gauge.

The session's database is shared with other tests, so counts are compared as differences
around what each test creates (tests in one session run one at a time).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from baton.broker import Broker
from baton.handoff import AgentTookOver
from baton.settings import Settings
from baton.store import PostgresStore
from baton.types import ConversationId, Mode
from services.router.app import bootstrap
from tests.conftest import unique
from tests.waiting import eventually

pytestmark = pytest.mark.integration

NUMBER = "900000000000601"


async def _new_conversation(store: PostgresStore) -> ConversationId:
    return (await store.conversation(NUMBER, unique("55"))).id


async def _pause(store: PostgresStore, conversation_id: ConversationId) -> None:
    state = await store.load_conversation_state(conversation_id)
    assert state is not None
    now = datetime.now(UTC)
    paused = state.model_copy(
        update={
            "mode": Mode.PAUSED,
            "epoch": state.epoch + 1,
            "version": state.version + 1,
            "paused_until": now + timedelta(hours=2),
        }
    )
    saved = await store.save_conversation_state(
        paused, expected_version=state.version, timers=(), effects=(), relay_after=now
    )
    assert saved is not None


def _gauge(mode: Mode) -> float | None:
    return REGISTRY.get_sample_value("baton_conversations", {"mode": mode.value})


async def test_the_store_counts_conversations_by_mode(store: PostgresStore) -> None:
    before = await store.conversations_by_mode()
    assert set(before) == set(Mode)  # every mode, even one no conversation holds
    bots = [await _new_conversation(store) for _ in range(3)]
    assert all([await store.hand_to_human(c, expected_epoch=0) for c in bots[:2]])
    await _pause(store, await _new_conversation(store))

    after = await store.conversations_by_mode()
    assert {mode: after[mode] - before[mode] for mode in Mode} == {
        Mode.BOT: 1,
        Mode.HUMAN: 2,
        Mode.PAUSED: 1,
    }


async def test_the_router_gauge_takes_the_store_counts(
    store: PostgresStore, broker: Broker
) -> None:
    app = bootstrap(Settings(), store, broker)
    await app.sweeper.refresh_stats()
    counts = await store.conversations_by_mode()
    assert {mode: _gauge(mode) for mode in Mode} == {m: float(n) for m, n in counts.items()}

    conversation_id = await _new_conversation(store)
    decision = await app.conversations.apply(conversation_id, AgentTookOver(agent_id="ana"))
    assert decision.state.mode is Mode.HUMAN
    assert _gauge(Mode.HUMAN) == counts[Mode.HUMAN]  # a gauge, not a counter: only a recount
    await app.sweeper.refresh_stats()
    assert _gauge(Mode.HUMAN) == counts[Mode.HUMAN] + 1
    assert _gauge(Mode.BOT) == counts[Mode.BOT]


async def test_the_sweep_loop_recounts_on_its_first_pass(
    store: PostgresStore, broker: Broker
) -> None:
    app = bootstrap(Settings(), store, broker)
    await _pause(store, await _new_conversation(store))
    expected = (await store.conversations_by_mode())[Mode.PAUSED]
    assert _gauge(Mode.PAUSED) != expected  # only a recount can bring it there

    async def recounted() -> bool:
        return _gauge(Mode.PAUSED) == expected

    stop = asyncio.Event()
    loop = asyncio.create_task(app.sweeper.run(stop))
    try:
        await eventually(recounted, timeout=10, what="baton_conversations{mode=paused} recounted")
    finally:
        stop.set()
        await loop
