"""The structured summary every handoff gets (issue 12): why, what about, and the ids given.

Not only the bot's handoffs: the customer asking, the owner taking over from the phone, an
agent taking over. Pure: the shell (`baton.conversations`) feeds it the customer's recent
messages when a conversation leaves the bot, stores it and announces it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from baton.facts import detect_topics, extract_emails, extract_order_ids, extract_phones
from baton.text import clip

MAX_REQUESTS = 3
REQUEST_CHARS = 160


class HandoffSummary(BaseModel):
    """Reason, topics and entities of one handoff; `text` is the same for a human to read."""

    model_config = ConfigDict(frozen=True)

    reason: str  # the bot's handoff reason, else the cause (agent_takeover, owner_echo …)
    cause: str
    bot_summary: str | None = None  # what the bot wrote for the agent, when it handed off
    requests: tuple[str, ...] = ()  # the customer's last messages, clipped
    topics: tuple[str, ...] = ()
    order_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    text: str = ""


def summarize_handoff(
    *, cause: str, reason: str | None, bot_summary: str | None, customer_texts: Sequence[str]
) -> HandoffSummary:
    """The summary of a handoff from the customer's messages (oldest first)."""
    texts = [t for t in customer_texts if t.strip()]
    joined = "\n".join(texts)
    orders = extract_order_ids(joined)
    summary = HandoffSummary(
        reason=reason or cause,
        cause=cause,
        bot_summary=bot_summary or None,
        requests=tuple(clip(t, REQUEST_CHARS) for t in texts[-MAX_REQUESTS:]),
        topics=detect_topics(texts),
        order_ids=orders,
        emails=extract_emails(joined),
        phones=extract_phones(joined, exclude=orders),
    )
    return summary.model_copy(update={"text": _render(summary)})


def _render(summary: HandoffSummary) -> str:
    lines = [f"Reason: {summary.reason}"]
    if summary.bot_summary:
        lines.append(f"Bot: {summary.bot_summary}")
    if summary.requests:
        lines.append("Customer wrote:")
        lines.extend(f"- {request}" for request in summary.requests)
    for label, items in (
        ("Topics", summary.topics),
        ("Orders", summary.order_ids),
        ("E-mails", summary.emails),
        ("Phones", summary.phones),
    ):
        if items:
            lines.append(f"{label}: {', '.join(items)}")
    return "\n".join(lines)
