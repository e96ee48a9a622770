"""Turning a `history` webhook value into rows to store, one message at a time (pure).

A chunk can hold thousands of messages: it is walked lazily and validated message by message,
so one malformed message is set aside instead of costing the whole chunk, and rows are handed
out in batches as they are built.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from baton.store.history_records import HistoryRow
from baton.store.records import DeliveryStatus
from baton.types import JSON, Author, Direction
from baton.whatsapp import WaMessage, render_text

# history_context.status of a message the business sent → delivery status stored with it.
_STATUSES: dict[str, tuple[str, int]] = {
    "SENT": ("sent", int(DeliveryStatus.SENT)),
    "DELIVERED": ("delivered", int(DeliveryStatus.DELIVERED)),
    "READ": ("read", int(DeliveryStatus.READ)),
    "PLAYED": ("played", int(DeliveryStatus.PLAYED)),
    "ERROR": ("failed", int(DeliveryStatus.FAILED)),
    "PENDING": ("pending", 0),
}

_OUT, _IN = Direction.OUTBOUND.value, Direction.INBOUND.value
_APP, _CUSTOMER = Author.APP.value, Author.CUSTOMER.value


@dataclass(frozen=True)
class Rejected:
    """A message that cannot be stored as it is; kept aside verbatim with the reason."""

    index: str  # "<thread>:<message>" position within the chunk
    raw: Any
    reason: str


def _reason(exc: ValidationError) -> str:
    # Locations and messages only: the input may be customer content.
    errors = exc.errors(include_input=False, include_url=False)
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:3])


def to_row(message: WaMessage, *, customer: str, business: str) -> HistoryRow:
    """One backlog message as stored: original time, direction and author kept.

    A message from the business number was sent by the owner in the Business App (author
    `app`); anything else in the thread was written by the customer.
    """
    from_business = message.from_ == business or (
        message.from_ != customer and message.to is not None
    )
    status: tuple[str | None, int] = (None, 0)
    if from_business and message.history_context is not None:
        status = _STATUSES.get(message.history_context.status.upper(), (None, 0))
    body = render_text(message)
    payload = orjson.dumps(message.raw).decode()
    if "\x00" in body or "\\u0000" in payload:
        # PostgreSQL text and jsonb cannot hold NUL: the rest of the message still counts.
        body = body.replace("\x00", "")
        payload = payload.replace("\\u0000", "\\ufffd")
    return HistoryRow(
        wa_id=customer,
        wamid=message.id,
        direction=_OUT if from_business else _IN,
        author=_APP if from_business else _CUSTOMER,
        type=message.type,
        body=body,
        payload=payload,
        sent_at=message.timestamp,
        status=status[0],
        status_rank=status[1],
    )


_FAST_KEYS = frozenset({"from", "to", "id", "timestamp", "type", "text", "history_context"})


def fast_row(raw: Any, *, customer: str, business: str) -> HistoryRow | None:
    """`to_row(WaMessage.model_validate(raw))` for the plain text and media-placeholder messages
    that make up most of a backlog, without building the model; None means "take the model
    path" (any other type, any other key, anything unusual). A property test holds the two
    paths equal.
    """
    if type(raw) is not dict or not raw.keys() <= _FAST_KEYS:
        return None
    kind = raw.get("type")
    if kind == "text":
        text = raw.get("text")
        body = text.get("body") if type(text) is dict else None
        if type(body) is not str:
            return None
    elif kind == "media_placeholder":
        if "text" in raw:
            return None
        body = "[media]"
    else:
        return None
    wamid, sender, stamp = raw.get("id"), raw.get("from"), raw.get("timestamp")
    to = raw.get("to")
    if (
        type(wamid) is not str
        or type(sender) is not str
        or (to is not None and type(to) is not str)
    ):
        return None
    if type(stamp) is str and stamp.isascii() and stamp.isdigit():
        seconds = int(stamp)
    elif type(stamp) is int:
        seconds = stamp
    else:
        return None
    try:
        sent_at = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    context = raw.get("history_context")
    status_name: str | None = None
    if context is not None:
        status_name = context.get("status") if type(context) is dict else None
        if type(status_name) is not str:
            return None
    sender = sender.removeprefix("+")
    to = to.removeprefix("+") if to is not None else None
    from_business = sender == business or (sender != customer and to is not None)
    status: tuple[str | None, int] = (None, 0)
    if from_business and status_name is not None:
        status = _STATUSES.get(status_name.upper(), (None, 0))
    payload = orjson.dumps(raw).decode()
    if "\x00" in body or "\\u0000" in payload:
        body = body.replace("\x00", "")
        payload = payload.replace("\\u0000", "\\ufffd")
    return HistoryRow(
        wa_id=customer,
        wamid=wamid,
        direction=_OUT if from_business else _IN,
        author=_APP if from_business else _CUSTOMER,
        type=kind,
        body=body,
        payload=payload,
        sent_at=sent_at,
        status=status[0],
        status_rank=status[1],
    )


def thread_rows(threads: Iterable[Any], *, business: str) -> Iterator[HistoryRow | Rejected]:
    """Rows of a chunk's `threads[]`, in order; malformed entries come out as `Rejected`."""
    for t, thread in enumerate(threads):
        customer = thread.get("id") if isinstance(thread, dict) else None
        messages = thread.get("messages") if isinstance(thread, dict) else None
        if not isinstance(customer, str) or not customer or not isinstance(messages, list):
            yield Rejected(f"{t}", thread, "thread without an `id` or a `messages` list")
            continue
        customer = customer.removeprefix("+")
        for m, raw in enumerate(messages):
            row = fast_row(raw, customer=customer, business=business)
            if row is not None:
                yield row
                continue
            try:
                message = WaMessage.model_validate(raw)
            except ValidationError as exc:
                yield Rejected(f"{t}:{m}", raw, _reason(exc))
                continue
            yield to_row(message, customer=customer, business=business)


def media_rows(messages: Iterable[Any], *, business: str) -> Iterator[HistoryRow | Rejected]:
    """Rows of recent media sent apart from the chunks (`value.messages[]`)."""
    for m, raw in enumerate(messages):
        try:
            message = WaMessage.model_validate(raw)
        except ValidationError as exc:
            yield Rejected(f"media:{m}", raw, _reason(exc))
            continue
        from_business = message.from_ == business
        customer = message.to if from_business and message.to else message.from_
        yield to_row(message, customer=customer, business=business)


def count_messages(threads: Iterable[Any]) -> int:
    return sum(
        len(t["messages"])
        for t in threads
        if isinstance(t, dict) and isinstance(t.get("messages"), list)
    )


def batches(
    items: Iterable[HistoryRow | Rejected], size: int
) -> Iterator[tuple[list[HistoryRow], list[Rejected]]]:
    """Group rows into batches of at most `size`, each with the rejections met on the way.

    Within a batch a message id appears once: a statement may not touch a row twice.
    """
    rows: dict[str, HistoryRow] = {}
    rejected: list[Rejected] = []
    for item in items:
        if isinstance(item, Rejected):
            rejected.append(item)
            continue
        rows.setdefault(item.wamid, item)
        if len(rows) >= size:
            yield list(rows.values()), rejected
            rows, rejected = {}, []
    if rows or rejected:
        yield list(rows.values()), rejected


def rejected_record(rejected: Rejected) -> JSON:
    """What is kept of a rejected message: the raw input and why it was refused."""
    return {"position": rejected.index, "reason": rejected.reason, "raw": rejected.raw}
