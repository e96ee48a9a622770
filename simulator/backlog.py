"""A generated Coexistence backlog, shaped like Meta's `history` webhooks (ref §5).

Every message is a pure function of its index, so any chunk can be built on its own, in any
order, without holding the whole backlog in memory. Phases follow Meta: 0 = the last day before
onboarding, 1 = days 1-90, 2 = days 90-180. A third of the messages were sent by the business
from the Business App, the rest by customers; types mix text, media placeholders, locations and
reactions, and the media of the last 14 days arrives again in separate media webhooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from baton.types import JSON
from baton.whatsapp.signature import HEADER, sign

DAY = 86_400
_PHASE_DAYS = ((0, 1), (1, 90), (90, 180))  # (from, to) days before onboarding
_PHASE_SHARE = (0.02, 0.49, 0.49)
_MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
_MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg; codecs=opus",
    "document": "application/pdf",
    "sticker": "image/webp",
}
_TEXTS = (
    "Olá, bom dia! Vocês têm o produto em estoque?",
    "Qual o prazo de entrega para São Paulo?",
    "Obrigado, recebi o pedido",
    "Pode me mandar o boleto de novo?",
    "Sim, temos. Posso separar para você?",
    "O pedido 48213 saiu para entrega hoje",
)


@dataclass(frozen=True)
class BacklogSpec:
    phone_number_id: str
    business_number: str  # the display number: `from` of business-sent messages
    conversations: int
    messages: int
    onboarded_at: int  # Unix seconds
    chunk_messages: int = 1000
    tag: str = "B"  # makes message ids unique per backlog
    waba_id: str = "800000000000001"


@dataclass(frozen=True)
class Chunk:
    phase: int
    chunk_order: int
    progress: int
    first: int  # message indexes [first, last)
    last: int


class Backlog:
    """The chunks of a backlog and the messages in them."""

    def __init__(self, spec: BacklogSpec) -> None:
        self.spec = spec
        counts = [int(spec.messages * share) for share in _PHASE_SHARE]
        counts[1] += spec.messages - sum(counts)
        self._phase_ranges: list[tuple[int, int]] = []
        start = 0
        for count in counts:
            self._phase_ranges.append((start, start + count))
            start += count
        chunks: list[Chunk] = []
        for phase, (first, last) in enumerate(self._phase_ranges):
            order = 1
            for lo in range(first, last, spec.chunk_messages):
                chunks.append(Chunk(phase, order, 0, lo, min(last, lo + spec.chunk_messages)))
                order += 1
        total = len(chunks)
        self.chunks = [
            Chunk(c.phase, c.chunk_order, (i + 1) * 100 // total, c.first, c.last)
            for i, c in enumerate(chunks)
        ]

    def customer(self, conversation: int) -> str:
        return f"55{11_900_000_000 + conversation:011d}"

    def conversation_of(self, k: int) -> int:
        # A fixed odd multiplier spreads consecutive messages over all conversations.
        return (k * 7_919) % self.spec.conversations

    def wamid(self, k: int) -> str:
        return f"wamid.HIST{self.spec.tag}{k:09d}"

    def timestamp(self, k: int) -> int:
        for phase, (first, last) in enumerate(self._phase_ranges):
            if first <= k < last:
                lo_day, hi_day = _PHASE_DAYS[phase]
                span = (hi_day - lo_day) * DAY - 2
                # Older messages first within a phase; at least one second apart from the next.
                offset = lo_day * DAY + 1 + span * (last - 1 - k) // max(1, last - first)
                return self.spec.onboarded_at - offset
        raise IndexError(k)

    def from_business(self, k: int) -> bool:
        return k % 3 == 0

    def is_placeholder(self, k: int) -> bool:
        return k % 5 == 1

    def message(self, k: int) -> JSON:
        """Message `k` as a history thread carries it."""
        customer = self.customer(self.conversation_of(k))
        item: JSON = {}
        if self.from_business(k):
            item["from"] = self.spec.business_number
            item["to"] = customer
        else:
            item["from"] = customer
        item["id"] = self.wamid(k)
        item["timestamp"] = str(self.timestamp(k))
        kind = k % 20
        if self.is_placeholder(k):
            item["type"] = "media_placeholder"
        elif kind == 7:
            item["type"] = "location"
            item["location"] = {"latitude": -23.55 + k % 100 / 1000, "longitude": -46.63}
        elif kind == 13 and k > 0:
            item["type"] = "reaction"
            item["reaction"] = {"message_id": self.wamid(k - 1), "emoji": "\U0001f44d"}
        else:
            item["type"] = "text"
            item["text"] = {"body": f"{_TEXTS[k % len(_TEXTS)]} ({k})"}
        item["history_context"] = {"status": "READ" if k % 7 else "DELIVERED"}
        return item

    def chunk_change(self, chunk: Chunk) -> JSON:
        """One `history` change holding `chunk`, messages grouped into threads."""
        threads: dict[str, list[JSON]] = {}
        for k in range(chunk.first, chunk.last):
            threads.setdefault(self.customer(self.conversation_of(k)), []).append(self.message(k))
        value = {
            "messaging_product": "whatsapp",
            "metadata": self._metadata(),
            "history": [
                {
                    "metadata": {
                        "phase": chunk.phase,
                        "chunk_order": chunk.chunk_order,
                        "progress": chunk.progress,
                    },
                    "threads": [{"id": wa, "messages": items} for wa, items in threads.items()],
                }
            ],
        }
        return {"field": "history", "value": value}

    def recent_media(self, days: int = 14) -> Iterator[int]:
        """Indexes of placeholders recent enough for Meta to send their media afterwards."""
        since = self.spec.onboarded_at - days * DAY
        for k in range(self.spec.messages):
            if self.is_placeholder(k) and self.timestamp(k) >= since:
                yield k

    def media_message(self, k: int) -> JSON:
        """The media webhook item for placeholder `k` (same id, now with its content)."""
        item = self.message(k)
        kind = _MEDIA_KINDS[k % len(_MEDIA_KINDS)]
        del item["history_context"]
        item["type"] = kind
        media: JSON = {"id": f"{k:015d}", "mime_type": _MIME[kind], "sha256": f"{k:064x}"}
        if kind in ("image", "video"):
            media["caption"] = f"foto {k}"
        if kind == "document":
            media["filename"] = f"nota-{k}.pdf"
        item[kind] = media
        return item

    def media_change(self, indexes: list[int]) -> JSON:
        value = {
            "messaging_product": "whatsapp",
            "metadata": self._metadata(),
            "messages": [self.media_message(k) for k in indexes],
        }
        return {"field": "history", "value": value}

    def expected_row(self, k: int, *, with_media: bool) -> tuple[str, str, str, int]:
        """(direction, author, type, sent_at) message `k` must be stored with."""
        business = self.from_business(k)
        kind = self.message(k)["type"]
        if with_media and self.is_placeholder(k):
            kind = _MEDIA_KINDS[k % len(_MEDIA_KINDS)]
        return (
            "out" if business else "in",
            "app" if business else "customer",
            kind,
            self.timestamp(k),
        )

    def _metadata(self) -> JSON:
        return {
            "display_phone_number": self.spec.business_number,
            "phone_number_id": self.spec.phone_number_id,
        }

    def envelope(self, change: JSON) -> JSON:
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.spec.waba_id, "changes": [change]}],
        }


def signed(body: Any, secret: str) -> tuple[bytes, dict[str, str]]:
    """A webhook body and the headers Meta would send with it."""
    raw = orjson.dumps(body)
    return raw, {"Content-Type": "application/json", HEADER: sign(raw, secret)}
