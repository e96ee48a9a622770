"""From what the simulator accepted to the case's numbers: answered, duplicates, lost, recovery."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from simulator import SentMessage
from tests.chaos.stream import Message


@dataclass(frozen=True)
class Replies:
    """Accepted sends to each customer, in the order the Graph API received them."""

    by_customer: dict[str, list[SentMessage]]

    @classmethod
    def of(cls, sent: Sequence[SentMessage]) -> Replies:
        grouped: dict[str, list[SentMessage]] = defaultdict(list)
        for sent_message in sorted(sent, key=lambda m: m.seq):
            if sent_message.wamid is not None:
                grouped[sent_message.wa_id].append(sent_message)
        return cls(dict(grouped))

    def to(self, wa_id: str, *, prefix: str | None = None) -> list[SentMessage]:
        found = self.by_customer.get(wa_id, [])
        if prefix is None:
            return found
        return [m for m in found if (m.body or "").startswith(prefix)]


@dataclass(frozen=True)
class Tally:
    sent: int
    acknowledged: int
    answered: int
    duplicates: int
    lost: int
    lost_customers: tuple[str, ...]


def tally(messages: Sequence[Message], owed: dict[str, int], got: dict[str, int]) -> Tally:
    """`owed`/`got`: answers each customer was owed for its acknowledged messages, and got."""
    acked = [m for m in messages if m.acked_at is not None]
    lost_customers = tuple(sorted(w for w, n in owed.items() if got.get(w, 0) < n))
    lost = sum(max(0, n - got.get(w, 0)) for w, n in owed.items())
    duplicates = sum(max(0, got.get(w, 0) - n) for w, n in owed.items())
    return Tally(
        sent=len(messages),
        acknowledged=len(acked),
        answered=len(acked) - lost,
        duplicates=duplicates,
        lost=lost,
        lost_customers=lost_customers,
    )


def recovery_seconds(
    messages: Sequence[Message], answered_at: dict[str, float], fault_end: float
) -> float | None:
    """Fault cleared → the last customer who wrote before then had its answer (None: some never).

    `answered_at`: each customer's first answer (time.time()); customers absent never got one.
    """
    waiting = {m.wa_id for m in messages if m.attempts and m.attempts[0].at < fault_end}
    waiting &= {m.wa_id for m in messages if m.acked_at is not None}
    if not waiting:
        return 0.0
    if not waiting <= set(answered_at):
        return None
    return max(0.0, max(answered_at[w] for w in waiting) - fault_end)
