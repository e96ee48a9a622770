"""What the desk shows, decided on the server: badges, allowed actions and why not, ticks.

Pure functions over the conversation as the agent API lists it; the templates only render them.
The action rules mirror the agent API's (services/console/routes.py), so a disabled button says
in advance what the API would answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from baton.store.console_records import ConversationSummary
from baton.types import Mode

SERVICE_WINDOW = timedelta(hours=24)  # WhatsApp's customer-service window


@dataclass(frozen=True)
class Because:
    """A translatable reason: an i18n key and its parameters."""

    key: str
    agent: str = ""


@dataclass(frozen=True)
class Allowed:
    allowed: bool
    reason: Because | None = None


@dataclass(frozen=True)
class Actions:
    take_over: Allowed
    release: Allowed
    send: Allowed
    resolve: Allowed = Allowed(False)  # and transfer: the holder, or an admin


@dataclass(frozen=True)
class Badge:
    kind: str  # bot | queue | agent | you | paused
    key: str
    agent: str = ""
    until: datetime | None = None


def badge(summary: ConversationSummary, me: str) -> Badge:
    if summary.mode is Mode.BOT:
        return Badge("bot", "badge_bot")
    if summary.mode is Mode.PAUSED:
        return Badge("paused", "badge_paused", until=summary.paused_until)
    if summary.assignee is None:
        return Badge("queue", "badge_queue")
    if summary.assignee == me:
        return Badge("you", "badge_you", agent=me)
    return Badge("agent", "", agent=summary.assignee)


def window_closes(last_customer_at: datetime | None) -> datetime | None:
    """When free text stops being allowed (None: the customer never wrote)."""
    return last_customer_at + SERVICE_WINDOW if last_customer_at is not None else None


def window_open(last_customer_at: datetime | None, now: datetime) -> bool:
    closes = window_closes(last_customer_at)
    return closes is not None and now < closes


def actions(
    summary: ConversationSummary, me: str, *, window_is_open: bool, admin: bool = False
) -> Actions:
    """Which of Take over / Return to bot / Send / Resolve this agent may do now, and why not."""
    other = summary.assignee if summary.assignee not in (None, me) else None
    held_by_other = Because("holds", agent=other) if other is not None else None
    mine = summary.mode is Mode.HUMAN and summary.assignee == me
    if mine:
        take_over = Allowed(False, Because("you_hold"))
    elif held_by_other is not None:
        take_over = Allowed(False, held_by_other)
    else:
        take_over = Allowed(True)
    if summary.mode is Mode.BOT:
        release = Allowed(False, Because("bot_answers"))
    elif held_by_other is not None:
        release = Allowed(False, held_by_other)
    else:
        release = Allowed(True)
    if held_by_other is not None:
        send = Allowed(False, held_by_other)
    elif not mine:
        send = Allowed(False, Because("take_over_to_reply"))
    elif not window_is_open:
        send = Allowed(False, Because("window_closed"))
    else:
        send = Allowed(True)
    if summary.mode is not Mode.HUMAN:
        resolve = Allowed(False, Because("not_with_agent"))
    elif held_by_other is not None and not admin:
        resolve = Allowed(False, held_by_other)
    elif summary.assignee is None and not admin:
        resolve = Allowed(False, Because("take_over_to_reply"))
    else:
        resolve = Allowed(True)
    return Actions(take_over, release, send, resolve)


def tick(status: str | None) -> str:
    """The delivery mark of an outbound message's status."""
    return {
        None: "",
        "pending": "…",
        "accepted": "✓",
        "sent": "✓",
        "delivered": "✓✓",
        "read": "✓✓",
        "played": "✓✓",
        "failed": "⚠",
    }.get(status, "")


def duration(since: datetime, now: datetime) -> str:
    """A short wait like `45 s`, `12 min`, `3 h`, `2 d` (the same in every language)."""
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d}"
    return f"{seconds // 86400} d"
