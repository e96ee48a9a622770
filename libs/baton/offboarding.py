"""Is a business number offboarded? `Store.number_disabled` behind a short TTL cache.

The router and the outbox ask this for every customer message and every send, so it must
not cost a store round trip each time. An answer is reused for `ttl_seconds` counted from
when its lookup *started*, so a process sees an offboarding (or a new onboarding) at most
`ttl_seconds` after it was committed. Entries are per business number (a handful), so the
cache needs no eviction. Concurrent misses for one number may each look it up once: at most
one lookup per concurrent caller per TTL, which is not worth a single-flight lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from baton.types import PhoneNumberId

DEFAULT_TTL_SECONDS = 5.0


class DisabledLookup(Protocol):
    """The one store method the cache needs (any `Store` has it)."""

    async def number_disabled(self, phone_number_id: PhoneNumberId) -> bool: ...


class OffboardedNumbers:
    """Cached `number_disabled` lookups; a store error propagates and caches nothing."""

    def __init__(
        self,
        store: DisabledLookup,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._clock = clock
        self._known: dict[PhoneNumberId, tuple[float, bool]] = {}  # (lookup started, answer)

    @property
    def ttl_seconds(self) -> float:
        return self._ttl

    async def disabled(self, phone_number_id: PhoneNumberId) -> bool:
        """True if the number was offboarded (as of at most `ttl_seconds` ago)."""
        started = self._clock()
        known = self._known.get(phone_number_id)
        if known is not None and started - known[0] < self._ttl:
            return known[1]
        answer = await self._store.number_disabled(phone_number_id)
        latest = self._known.get(phone_number_id)
        # Two overlapping lookups: keep the one that started last (it saw the newer state).
        if latest is None or latest[0] <= started:
            self._known[phone_number_id] = (started, answer)
        return answer
