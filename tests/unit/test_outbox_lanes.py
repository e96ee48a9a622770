"""Per-conversation lanes: order kept per conversation, no conversation waits for another."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from baton.messages import SendText
from baton.types import Author
from services.outbox.lanes import Lanes, Pending
from services.outbox.limiter import PairBucket


def _lanes(burst: int = 100, interval: float = 6.0) -> Lanes[None]:
    return Lanes(lambda now: PairBucket.full(interval=interval, burst=burst, now=now))


def _item(seq: int, conversation: int, at: float = 0.0) -> Pending[None]:
    send = SendText(
        idempotency_key=f"k{seq}",
        conversation_id=conversation,
        phone_number_id="900",
        to=f"55{conversation:09d}",
        body=f"m{seq}",
        author=Author.SYSTEM,
    )
    return Pending(seq, send, None, at)


@settings(max_examples=150, deadline=None)
@given(
    conversations=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=40),
    outcomes=st.lists(st.sampled_from(["done", "retry", "block"]), min_size=1, max_size=80),
    concurrency=st.integers(min_value=1, max_value=4),
)
def test_each_conversation_is_sent_in_arrival_order(
    conversations: list[int], outcomes: list[str], concurrency: int
) -> None:
    lanes = _lanes()
    for seq, conversation in enumerate(conversations):
        lanes.add(_item(seq, conversation))
    now = 0.0
    started: list[Pending[None]] = []
    done: list[Pending[None]] = []
    step = 0
    while len(lanes):
        while len(started) < concurrency:
            item, _ = lanes.next_ready(now)
            if item is None:
                break
            # Never two in flight for one conversation.
            assert all(s.send.conversation_id != item.send.conversation_id for s in started)
            lanes.start(item, now)
            lanes.called(item, now)
            started.append(item)
        if not started:
            _, wake = lanes.next_ready(now)
            assert wake < math.inf
            now = wake
            continue
        item = started.pop(0)
        outcome = outcomes[step % len(outcomes)]
        step += 1
        if outcome == "done" or step > 200:
            lanes.finish(item, now, done=True)
            done.append(item)
        elif outcome == "block":
            lanes.block(item, now + 1.0)
            lanes.finish(item, now, done=False)
        else:
            lanes.finish(item, now, done=False)
    assert sorted(i.seq for i in done) == list(range(len(conversations)))
    for conversation in set(conversations):
        seqs = [i.seq for i in done if i.send.conversation_id == conversation]
        assert seqs == sorted(seqs)


def test_a_waiting_conversation_does_not_hold_back_the_others() -> None:
    lanes = _lanes()
    first, second, other = _item(1, 10), _item(2, 10), _item(3, 20)
    for item in (first, second, other):
        lanes.add(item)
    assert lanes.next_ready(0.0)[0] is first
    lanes.start(first, 0.0)
    lanes.block(first, 30.0)  # backing off
    lanes.finish(first, 0.0, done=False)
    assert lanes.next_ready(0.0)[0] is other
    lanes.start(other, 0.0)
    lanes.finish(other, 0.0, done=True)
    assert lanes.next_ready(1.0) == (None, 30.0)  # `second` waits behind `first`
    assert lanes.next_ready(30.0)[0] is first


def test_pair_limit_spaces_one_customer_and_not_the_others() -> None:
    lanes = _lanes(burst=2, interval=6.0)
    burst = [_item(i, 10) for i in range(4)]
    other = _item(9, 20)
    for item in [*burst, other]:
        lanes.add(item)
    sent: list[tuple[float, int]] = []
    now = 0.0
    while len(lanes):
        ready, wake = lanes.next_ready(now)
        if ready is None:
            now = wake
            continue
        lanes.start(ready, now)
        lanes.called(ready, now)
        lanes.finish(ready, now, done=True)
        sent.append((now, ready.seq))
    assert sent == [(0.0, 0), (0.0, 1), (0.0, 9), (6.0, 2), (12.0, 3)]


def test_a_refused_customer_starts_from_an_empty_bucket() -> None:
    lanes = _lanes(burst=10, interval=6.0)
    item = _item(1, 10)
    lanes.add(item)
    lanes.start(item, 0.0)
    lanes.called(item, 0.0)
    lanes.pair_limited(item, 0.0)
    lanes.finish(item, 0.0, done=False)
    assert lanes.next_ready(0.0) == (None, 6.0)


def test_a_send_that_made_no_call_spends_no_pair_token() -> None:
    lanes = _lanes(burst=1, interval=6.0)
    item = _item(1, 10)
    lanes.add(item)
    lanes.start(item, 0.0)  # fenced, duplicate or busy: no call
    lanes.finish(item, 0.0, done=False)
    assert lanes.next_ready(0.0)[0] is item


def test_clear_returns_everything_in_order() -> None:
    lanes = _lanes()
    for seq, conversation in [(3, 1), (1, 2), (2, 1)]:
        lanes.add(_item(seq, conversation))
    assert [i.seq for i in lanes.clear()] == [1, 2, 3]
    assert len(lanes) == 0
