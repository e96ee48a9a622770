"""The sends one number holds, as a FIFO lane per conversation (pure, clock passed in).

Per-conversation order: only a lane's head may be in flight, and the next message of that
conversation starts only once the head is done. Lanes do not wait for each other: a customer
being spaced by the pair limit, or a send backing off, holds back only its own conversation.
Among ready heads, the one that arrived first goes first. A customer's pair token is spent
when the call starts (that is when Meta counts it), not when the send is picked.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from baton.messages import SendText
from baton.types import ConversationId
from services.outbox.limiter import PairBucket

H = TypeVar("H")


@dataclass
class Pending(Generic[H]):
    """One send request held by this replica, with what its retries need to know."""

    seq: int  # arrival order (the broker's delivery tag on this subscription)
    send: SendText
    handle: H  # the broker delivery, settled exactly once by the worker
    arrived_at: float
    first_attempt_at: float | None = None
    errors: int = 0
    pair_errors: int = 0

    def __lt__(self, other: Pending[H]) -> bool:
        return self.seq < other.seq


@dataclass
class _Lane(Generic[H]):
    pair: str  # the customer's pair-limit key, one per conversation: computed once
    items: list[Pending[H]] = field(default_factory=list)  # sorted by seq
    busy: bool = False
    blocked_until: float = -math.inf


def pair_key(send: SendText) -> str:
    return send.to.strip().removeprefix("+")


class Lanes(Generic[H]):
    def __init__(self, new_bucket: Callable[[float], PairBucket]) -> None:
        self._new_bucket = new_bucket
        self._lanes: dict[ConversationId, _Lane[H]] = {}
        self._pairs: dict[str, PairBucket] = {}
        self._count = 0
        # Whether a customer with no bucket (a full one) may be sent to at once: lets the scan
        # below skip making a bucket for every waiting lane.
        self._fresh_ready = new_bucket(0.0).available_at(0.0) <= 0.0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Pending[H]]:
        for lane in self._lanes.values():
            yield from lane.items

    def add(self, item: Pending[H]) -> None:
        lane = self._lanes.get(item.send.conversation_id)
        if lane is None:
            lane = self._lanes[item.send.conversation_id] = _Lane(pair_key(item.send))
        # Deliveries arrive in order; inserting by seq keeps the lane right even if they did not.
        bisect.insort(lane.items, item)
        self._count += 1

    def next_ready(self, now: float) -> tuple[Pending[H] | None, float]:
        """The earliest-arrived head that may start now, else (None, when one might)."""
        best: Pending[H] | None = None
        wake = math.inf
        # Runs before every start over every held conversation: the hot path of a backlog.
        pairs = self._pairs
        for lane in self._lanes.values():
            if lane.busy or not lane.items:
                continue
            head = lane.items[0]
            bucket = pairs.get(lane.pair)
            if bucket is not None:
                ready_at = max(lane.blocked_until, bucket.available_at(now))
            elif self._fresh_ready:
                ready_at = lane.blocked_until
            else:
                ready_at = max(lane.blocked_until, self._bucket(lane.pair, now).available_at(now))
            if ready_at <= now:
                if best is None or head.seq < best.seq:
                    best = head
            else:
                wake = min(wake, ready_at)
        return (best, now) if best is not None else (None, wake)

    def start(self, item: Pending[H], now: float) -> None:
        """The head goes in flight: its lane waits until it is finished."""
        lane = self._lane(item)
        if not lane.items or lane.items[0] is not item or lane.busy:
            raise RuntimeError("only an idle lane's head may start")
        lane.busy = True
        if item.first_attempt_at is None:
            item.first_attempt_at = now

    def called(self, item: Pending[H], now: float) -> None:
        """The head's Graph API call starts now: its customer spends a pair token."""
        self._bucket(self._lane(item).pair, now).take(now)

    def finish(self, item: Pending[H], now: float, *, done: bool) -> None:
        """The head is back: `done` removes it, else it stays first in its lane."""
        lane = self._lane(item)
        lane.busy = False
        if done:
            lane.items.remove(item)
            self._count -= 1
            if not lane.items:
                del self._lanes[item.send.conversation_id]
                self._forget_full_bucket(lane.pair, now)

    def block(self, item: Pending[H], until: float) -> None:
        lane = self._lane(item)
        lane.blocked_until = max(lane.blocked_until, until)

    def pair_limited(self, item: Pending[H], now: float) -> None:
        """Meta refused this customer for the pair limit: spend what our bucket thought was left."""
        self._bucket(self._lane(item).pair, now).drain(now)

    def clear(self) -> list[Pending[H]]:
        """Drop every held send (the subscription is gone; the broker has them back)."""
        items = sorted(self)
        self._lanes.clear()
        self._count = 0
        return items

    def _lane(self, item: Pending[H]) -> _Lane[H]:
        lane = self._lanes.get(item.send.conversation_id)
        if lane is None:
            raise KeyError(f"no lane for conversation {item.send.conversation_id}")
        return lane

    def _bucket(self, key: str, now: float) -> PairBucket:
        bucket = self._pairs.get(key)
        if bucket is None:
            bucket = self._pairs[key] = self._new_bucket(now)
        return bucket

    def _forget_full_bucket(self, key: str, now: float) -> None:
        # A full bucket is the same as no bucket: dropping it keeps memory bounded by the
        # customers messaged within the last burst * interval seconds.
        bucket = self._pairs.get(key)
        if bucket is not None and bucket.is_full(now):
            del self._pairs[key]

    def prune(self, now: float) -> None:
        """Forget refilled buckets of customers with nothing pending."""
        waiting = {lane.pair for lane in self._lanes.values()}
        for key in [k for k, b in self._pairs.items() if k not in waiting and b.is_full(now)]:
            del self._pairs[key]
