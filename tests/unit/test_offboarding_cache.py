"""The offboarded-numbers cache: answers reused within the TTL, looked up again after it."""

from __future__ import annotations

import asyncio

import pytest

from baton.offboarding import OffboardedNumbers
from baton.types import PhoneNumberId
from tests.clock import FakeClock

NUMBER = "900000000000901"
OTHER = "900000000000902"


class FakeLookup:
    """The store's `number_disabled`, with the answers and lookups visible to the test."""

    def __init__(self) -> None:
        self.disabled: set[PhoneNumberId] = set()
        self.lookups: list[PhoneNumberId] = []
        self.failing = False
        self.gate: asyncio.Event | None = None

    async def number_disabled(self, phone_number_id: PhoneNumberId) -> bool:
        self.lookups.append(phone_number_id)
        answer = phone_number_id in self.disabled
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise ConnectionError("store down")
        return answer


async def test_an_answer_is_reused_within_the_ttl_and_refreshed_after_it() -> None:
    store, clock = FakeLookup(), FakeClock()
    cache = OffboardedNumbers(store, ttl_seconds=5.0, clock=clock.monotonic)

    assert await cache.disabled(NUMBER) is False
    store.disabled.add(NUMBER)  # offboarded now
    clock.advance(4.5)
    assert await cache.disabled(NUMBER) is False  # stale, but inside the bound
    assert store.lookups == [NUMBER]
    clock.advance(0.5)
    assert await cache.disabled(NUMBER) is True  # exactly the TTL later: looked up again
    assert store.lookups == [NUMBER, NUMBER]
    # Onboarded again: seen after the TTL too.
    store.disabled.clear()
    clock.advance(4.0)
    assert await cache.disabled(NUMBER) is True
    clock.advance(1.0)
    assert await cache.disabled(NUMBER) is False


async def test_numbers_are_cached_apart() -> None:
    store, clock = FakeLookup(), FakeClock()
    store.disabled.add(OTHER)
    cache = OffboardedNumbers(store, ttl_seconds=5.0, clock=clock.monotonic)
    assert (await cache.disabled(NUMBER), await cache.disabled(OTHER)) == (False, True)
    assert (await cache.disabled(NUMBER), await cache.disabled(OTHER)) == (False, True)
    assert store.lookups == [NUMBER, OTHER]


async def test_a_store_error_propagates_and_is_not_cached() -> None:
    store, clock = FakeLookup(), FakeClock()
    store.failing = True
    cache = OffboardedNumbers(store, ttl_seconds=5.0, clock=clock.monotonic)
    with pytest.raises(ConnectionError):
        await cache.disabled(NUMBER)
    store.failing = False
    store.disabled.add(NUMBER)
    assert await cache.disabled(NUMBER) is True  # no stale "not disabled" was remembered
    assert len(store.lookups) == 2


async def test_an_older_lookup_finishing_last_does_not_overwrite_a_newer_answer() -> None:
    store, clock = FakeLookup(), FakeClock()
    cache = OffboardedNumbers(store, ttl_seconds=5.0, clock=clock.monotonic)
    gate = store.gate = asyncio.Event()
    old = asyncio.create_task(cache.disabled(NUMBER))  # reads "enabled", then hangs
    await asyncio.sleep(0)
    assert store.lookups == [NUMBER]
    store.gate = None
    store.disabled.add(NUMBER)
    clock.advance(1.0)
    assert await cache.disabled(NUMBER) is True  # started later, finished first
    gate.set()
    assert await asyncio.wait_for(old, timeout=5) is False
    store.lookups.clear()
    assert await cache.disabled(NUMBER) is True  # the newer answer is the one kept
    assert store.lookups == []
