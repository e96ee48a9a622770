"""Facts an agent wants first from what a customer wrote: order ids, e-mails, phones, topics.

Pure extraction (no LLM): the bot's handoff summary and the summary every handoff gets
(`baton.conversations`, issue 12) share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from baton.text import find, words

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
