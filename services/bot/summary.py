"""Extractive handoff summary for the agent: what the customer asked and the ids they gave.

Without an LLM (or when the LLM is down) this is the whole summary: the customer's last few
messages, order ids, e-mails, phone numbers and a coarse topic. With an LLM, the model's own
summary (from its handoff tool, or asked for when the bot hands off by itself) becomes the
headline and the extracted facts are kept below it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict

from services.bot._text import clip, find, words
from services.bot.texts import texts_for
from services.bot.types import Language

MAX_REQUESTS = 3
REQUEST_CHARS = 160
HEADLINE_CHARS = 600
MAX_ITEMS = 5

_ID = r"[A-Za-z0-9][A-Za-z0-9-]*"
_ORDER_PATTERNS = (
    # "#12345", "# A1B2C3"
    re.compile(rf"#\s?({_ID})"),
    # "pedido 12345", "pedido nº 12345", "meu pedido é o 12345", "order number: 12345"
    re.compile(
        r"\b(?:pedido|encomenda|compra|order|orden)"
        r"(?:\W+(?:é|e|eh|o|de|do|da|is|es|n[º°o]|n[uú]mero|number|no|nro|id))*"
        rf"\W+({_ID})",
        re.IGNORECASE,
    ),
    # "ABC-1234"
    re.compile(r"\b([A-Z]{2,5}-\d{3,})\b"),
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Optional +country, optional (area) code, then 3 to 5 and 4 digits; 10 or more digits in all.
_PHONE = re.compile(
    r"(?<![\w.+])(?:\+?\d{1,3}[\s.-]?)?(?:\(?\d{2,3}\)?[\s.-]?)?\d{3,5}[\s.-]?\d{4}(?!\w)"
)
_MIN_PHONE_DIGITS = 10

# Topic → words or phrases (accent-insensitive) that suggest it; first listed wins ties.
TOPICS: dict[str, tuple[str, ...]] = {
    "cancel": ("cancelar", "cancelamento", "cancel", "cancellation", "cancelacion"),
    "refund": (
        "reembolso", "devolucao", "devolver", "estorno", "troca", "trocar", "refund",
        "return", "devolucion", "cambiar",
    ),
    "delivery": (
        "entrega", "entregue", "rastreio", "rastreamento", "frete", "nao chegou", "delivery",
        "shipping", "tracking", "envio", "no llego", "not arrived", "hasnt arrived",
    ),
    "payment": (
        "pagamento", "pagar", "pix", "boleto", "cartao", "cobranca", "payment", "charged",
        "card", "pago", "tarjeta", "cobro",
    ),
}  # fmt: skip


class HandoffSummary(BaseModel):
    """What the agent needs first when taking over; `text` renders it in `language`."""

    model_config = ConfigDict(frozen=True)

    language: Language = "pt-BR"
    reason_note: str | None = None
    headline: str | None = None  # the LLM's own summary, when it handed off
    requests: tuple[str, ...] = ()
    order_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """A few short lines for the agent."""
        labels = texts_for(self.language)
        lines: list[str] = []
        if self.reason_note:
            lines.append(f"{labels.summary_reason}: {self.reason_note}")
        if self.headline:
            lines.append(f"{labels.summary_headline}: {self.headline}")
        elif self.requests:
            lines.append(f"{labels.summary_requests}:")
            lines.extend(f"- {request}" for request in self.requests)
        for label, items in (
            (labels.summary_orders, self.order_ids),
            (labels.summary_emails, self.emails),
            (labels.summary_phones, self.phones),
            (labels.summary_topics, tuple(labels.topics[t] for t in self.topics)),
        ):
            if items:
                lines.append(f"{label}: {', '.join(items)}")
        return "\n".join(lines)


def summarize(
    customer_texts: Sequence[str],
    *,
    language: Language = "pt-BR",
    reason_note: str | None = None,
    headline: str | None = None,
) -> HandoffSummary:
    """Extract the summary from the customer's messages, oldest first."""
    texts = [text for text in customer_texts if text.strip()]
    joined = "\n".join(texts)
    orders = extract_order_ids(joined)
    return HandoffSummary(
        language=language,
        reason_note=clip(reason_note, REQUEST_CHARS) if reason_note else None,
        headline=clip(headline, HEADLINE_CHARS) if headline and headline.strip() else None,
        requests=tuple(clip(text, REQUEST_CHARS) for text in texts[-MAX_REQUESTS:]),
        order_ids=orders,
        emails=extract_emails(joined),
        phones=extract_phones(joined, exclude=orders),
        topics=detect_topics(texts),
    )


def extract_order_ids(text: str) -> tuple[str, ...]:
    """Order-like ids: "#12345", "pedido 12345", "order 12345", "ABC-1234" (need a digit)."""
    found: list[str] = []
    for pattern in _ORDER_PATTERNS:
        for match in pattern.finditer(text):
            candidate = match.group(1).strip("-")
            if len(candidate) >= 4 and any(ch.isdigit() for ch in candidate):
                found.append(candidate.upper())
    return _unique(found)


def extract_emails(text: str) -> tuple[str, ...]:
    """E-mail addresses, lower-cased."""
    return _unique(match.group(0).rstrip(".").lower() for match in _EMAIL.finditer(text))


def extract_phones(text: str, *, exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """Phone numbers of 10+ digits, as written; digits already taken as order ids are skipped."""
    excluded = {_digits(item) for item in exclude}
    without_emails = _EMAIL.sub(" ", text)
    found: list[str] = []
    for match in _PHONE.finditer(without_emails):
        digits = _digits(match.group(0))
        if len(digits) >= _MIN_PHONE_DIGITS and digits not in excluded:
            found.append(match.group(0).strip())
    return _unique(found)


def detect_topics(texts: Iterable[str]) -> tuple[str, ...]:
    """Coarse topics (cancel, refund, delivery, payment) mentioned in the messages."""
    tokens = tuple(token for text in texts for token in words(text))
    return tuple(
        topic
        for topic, cues in TOPICS.items()
        if any(find(tokens, words(cue)) >= 0 for cue in cues)
    )


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))[:MAX_ITEMS]
