"""Extractive handoff summary for the agent: what the customer asked and the ids they gave.

Without an LLM (or when the LLM is down) this is the whole summary: the customer's last few
messages, order ids, e-mails, phone numbers and a coarse topic. With an LLM, the model's own
summary (from its handoff tool, or asked for when the bot hands off by itself) becomes the
headline and the extracted facts are kept below it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from baton.facts import (
    detect_topics,
    extract_emails,
    extract_order_ids,
    extract_phones,
)
from services.bot._text import clip
from services.bot.texts import texts_for
from services.bot.types import Language

MAX_REQUESTS = 3
REQUEST_CHARS = 160
HEADLINE_CHARS = 600


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
