"""Turning history webhook items into rows: who wrote what, when, and what is set aside."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from baton.store.history_records import HistoryRow
from baton.whatsapp import WaMessage
from services.history.backlog import (
    Rejected,
    batches,
    count_messages,
    fast_row,
    media_rows,
    thread_rows,
    to_row,
)
from simulator.backlog import Backlog, BacklogSpec
from simulator.webhooks import history_message, media_message

BUSINESS = "15550001111"
CUSTOMER = "5511999990000"


def test_thread_messages_keep_time_direction_and_author() -> None:
    threads = [
        {
            "id": CUSTOMER,
            "messages": [
                history_message(CUSTOMER, "Oi", wamid="w1", timestamp=1760000000),
                history_message(
                    BUSINESS,
                    "Olá!",
                    to=CUSTOMER,
                    wamid="w2",
                    timestamp=1760000060,
                    status="DELIVERED",
                ),
                history_message(BUSINESS, None, to=CUSTOMER, wamid="w3", timestamp=1760000120),
            ],
        }
    ]
    rows = list(thread_rows(threads, business=BUSINESS))
    assert all(isinstance(r, HistoryRow) for r in rows)
    first, second, third = (r for r in rows if isinstance(r, HistoryRow))
    assert (first.direction, first.author, first.body, first.status) == (
        "in",
        "customer",
        "Oi",
        None,
    )
    assert first.sent_at == datetime.fromtimestamp(1760000000, UTC)
    assert first.wa_id == CUSTOMER
    assert (second.direction, second.author, second.status, second.status_rank) == (
        "out",
        "app",
        "delivered",
        2,
    )
    assert (third.type, third.body) == ("media_placeholder", "[media]")
    assert orjson.loads(second.payload)["text"] == {"body": "Olá!"}


def test_malformed_messages_are_set_aside_not_fatal() -> None:
    threads = [
        {
            "id": CUSTOMER,
            "messages": [
                {"from": CUSTOMER, "id": "bad-1", "type": "text"},  # no timestamp, no text
                history_message(CUSTOMER, "ok", wamid="good"),
            ],
        },
        {"messages": []},  # no id
    ]
    out = list(thread_rows(threads, business=BUSINESS))
    rejected = [r for r in out if isinstance(r, Rejected)]
    assert [r.index for r in rejected] == ["0:0", "1"]
    assert "timestamp" in rejected[0].reason
    assert [r.wamid for r in out if isinstance(r, HistoryRow)] == ["good"]
    assert count_messages(threads) == 2


def test_recent_media_belongs_to_the_customer_whoever_sent_it() -> None:
    theirs = media_message(CUSTOMER, "image", caption="foto", wamid="m1")
    ours = media_message(BUSINESS, "document", filename="nota.pdf", wamid="m2")
    ours["to"] = CUSTOMER
    rows = [r for r in media_rows([theirs, ours], business=BUSINESS) if isinstance(r, HistoryRow)]
    assert [(r.wa_id, r.author, r.type, r.body) for r in rows] == [
        (CUSTOMER, "customer", "image", "[image] foto"),
        (CUSTOMER, "app", "document", "[document: nota.pdf]"),
    ]


def test_batches_are_bounded_and_hold_each_id_once() -> None:
    threads = [
        {
            "id": CUSTOMER,
            "messages": [history_message(CUSTOMER, str(i), wamid=f"w{i % 25}") for i in range(60)],
        },
    ]
    out = list(batches(thread_rows(threads, business=BUSINESS), 10))
    assert all(len(rows) <= 10 for rows, _ in out)
    for rows, _ in out:
        assert len({r.wamid for r in rows}) == len(rows)
    assert {r.wamid for rows, _ in out for r in rows} == {f"w{i}" for i in range(25)}


def test_the_generated_backlog_is_consistent() -> None:
    backlog = Backlog(
        BacklogSpec(
            phone_number_id="900",
            business_number=BUSINESS,
            conversations=20,
            messages=1000,
            onboarded_at=1_770_000_000,
            chunk_messages=100,
        )
    )
    assert [c.phase for c in backlog.chunks][:1] == [0]
    assert backlog.chunks[-1].progress == 100
    covered = [k for c in backlog.chunks for k in range(c.first, c.last)]
    assert covered == list(range(1000))
    times = [backlog.timestamp(k) for k in range(1000)]
    assert len(set(times)) == 1000
    assert max(times) < 1_770_000_000
    assert min(times) >= 1_770_000_000 - 180 * 86_400
    rows = [
        r
        for c in backlog.chunks
        for thread in backlog.chunk_change(c)["value"]["history"][0]["threads"]
        for r in thread_rows([thread], business=BUSINESS)
    ]
    assert all(isinstance(r, HistoryRow) for r in rows)
    for row in rows:
        assert isinstance(row, HistoryRow)
        k = int(row.wamid.removeprefix("wamid.HISTB"))
        direction, author, kind, sent_at = backlog.expected_row(k, with_media=False)
        assert (row.direction, row.author, row.type) == (direction, author, kind)
        assert row.sent_at.timestamp() == sent_at


_phone = st.one_of(
    st.sampled_from([CUSTOMER, f"+{CUSTOMER}", BUSINESS, f"+{BUSINESS}", "5511000000001"]),
    st.integers(0, 10**12),
    st.none(),
)
_stamp = st.one_of(
    st.integers(-(10**12), 10**13).map(str),
    st.integers(-(10**12), 10**13),
    st.booleans(),
    st.sampled_from(["", "12a", "1.5", "١٢٣", " 17"]),
    st.floats(allow_nan=False),
)
_raw_message = st.fixed_dictionaries(
    {},
    optional={
        "from": _phone,
        "to": _phone,
        "id": st.one_of(st.text(max_size=8), st.integers()),
        "timestamp": _stamp,
        "type": st.sampled_from(["text", "media_placeholder", "image", "reaction", 3]),
        "text": st.one_of(
            st.fixed_dictionaries({"body": st.one_of(st.text(max_size=10), st.integers())}),
            st.text(max_size=3),
        ),
        "history_context": st.one_of(
            st.fixed_dictionaries(
                {"status": st.sampled_from(["READ", "delivered", "ERROR", "PENDING", "odd", 1])}
            ),
            st.none(),
            st.text(max_size=3),
        ),
        "context": st.fixed_dictionaries({"id": st.text(max_size=3)}),
        "image": st.fixed_dictionaries({"id": st.text(max_size=3)}),
    },
)


def _model_path(raw: object) -> HistoryRow | None:
    try:
        message = WaMessage.model_validate(raw)
    except ValidationError:
        return None
    return to_row(message, customer=CUSTOMER, business=BUSINESS)


# Messages of the kinds the fast path is for (plain text, media placeholders), in the variety
# a backlog has: either side, with or without `to`, string or int timestamps, any status.
_plain_message = st.builds(
    lambda sender, to, wamid, stamp, body, status: {
        "from": sender,
        **({"to": to} if to is not None else {}),
        "id": wamid,
        "timestamp": stamp,
        **(
            {"type": "media_placeholder"}
            if body is None
            else {"type": "text", "text": {"body": body}}
        ),
        **({"history_context": {"status": status}} if status is not None else {}),
    },
    st.sampled_from([CUSTOMER, f"+{CUSTOMER}", BUSINESS, f"+{BUSINESS}", "5511000000001"]),
    st.one_of(st.none(), st.sampled_from([CUSTOMER, BUSINESS])),
    st.text(min_size=1, max_size=12),
    st.one_of(st.integers(0, 2_000_000_000), st.integers(0, 2_000_000_000).map(str)),
    st.one_of(st.none(), st.text(max_size=40)),
    st.one_of(st.none(), st.sampled_from(["READ", "DELIVERED", "PLAYED", "ERROR", "PENDING"])),
)


@settings(max_examples=300)
@given(raw=_plain_message)
def test_plain_messages_always_take_the_fast_path_and_build_what_the_model_builds(
    raw: dict[str, object],
) -> None:
    fast = fast_row(raw, customer=CUSTOMER, business=BUSINESS)
    assert fast is not None
    assert fast == _model_path(raw)


@settings(max_examples=500)
@given(raw=st.one_of(_raw_message, _plain_message))
def test_whatever_the_fast_path_accepts_it_builds_as_the_model_path(
    raw: dict[str, object],
) -> None:
    # Odd input may leave the fast path (None: the model path decides), never diverge from it.
    fast = fast_row(raw, customer=CUSTOMER, business=BUSINESS)
    assert fast is None or fast == _model_path(raw)


@pytest.mark.parametrize(
    "raw",
    [
        history_message(CUSTOMER, "Oi \x00 tudo\tbem?\n", wamid="w1"),
        history_message(BUSINESS, None, to=CUSTOMER, wamid="w2", status="PLAYED"),
        {**history_message(f"+{CUSTOMER}", "x", wamid="w3"), "timestamp": 1_760_000_000},
    ],
)
def test_plain_messages_take_the_fast_path(raw: dict[str, object]) -> None:
    fast = fast_row(raw, customer=CUSTOMER, business=BUSINESS)
    assert fast is not None
    assert fast == _model_path(raw)
