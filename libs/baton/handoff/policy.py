"""Per-number handoff settings (plain data, validated once when loaded)."""

from __future__ import annotations

from datetime import timedelta
from typing import Self

from pydantic import BaseModel, ConfigDict, model_validator

from baton.handoff.notices import DEFAULT_LANGUAGE, DEFAULT_TEXTS, Language, NoticeKind
from baton.messages import Template


class Policy(BaseModel):
    """How one business number's conversations are handed between bot and humans."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Debounce: ask the bot once the customer is quiet for `debounce_quiet`,
    # and never later than `debounce_cap` after the first buffered message.
    debounce_quiet: timedelta = timedelta(seconds=1)
    debounce_cap: timedelta = timedelta(seconds=5)

    pause_window: timedelta = timedelta(hours=2)  # after each owner echo
    max_pause: timedelta = timedelta(days=30)  # upper bound for `#pause <duration>`
    human_inactivity_timeout: timedelta = timedelta(minutes=30)
    ghost_fallback_delay: timedelta = timedelta(minutes=15)

    notices_enabled: bool = True
    language: Language = DEFAULT_LANGUAGE
    notice_texts: dict[NoticeKind, str] = {}  # overrides per kind; "" disables that notice
    bot_prefix: str = ""  # e.g. "🤖" or "*Assistente*\n"
    # Ghost fallback outside the 24 h window: this approved template instead of free text.
    busy_template: Template | None = None

    # Owner commands typed in the WhatsApp Business App (case-insensitive, whole message).
    resume_words: tuple[str, ...] = ("#bot", "#resume")
    pause_words: tuple[str, ...] = ("#pause",)

    @model_validator(mode="after")
    def _check(self) -> Self:
        positive = {
            "debounce_quiet": self.debounce_quiet,
            "pause_window": self.pause_window,
            "human_inactivity_timeout": self.human_inactivity_timeout,
            "ghost_fallback_delay": self.ghost_fallback_delay,
        }
        for name, value in positive.items():
            if value <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        if self.debounce_cap < self.debounce_quiet:
            raise ValueError("debounce_cap must be at least debounce_quiet")
        if self.max_pause < self.pause_window:
            raise ValueError("max_pause must be at least pause_window")
        for word in (*self.resume_words, *self.pause_words):
            if not word or word != word.strip() or len(word.split()) != 1:
                raise ValueError(f"command word {word!r} must be one non-empty token")
        resume = {w.casefold() for w in self.resume_words}
        pause = {w.casefold() for w in self.pause_words}
        if not resume or not pause:
            raise ValueError("resume_words and pause_words must not be empty")
        if resume & pause:
            raise ValueError("a command word cannot both resume and pause")
        return self


def notice_text(policy: Policy, kind: NoticeKind) -> str:
    """The text of a notice for this number; "" means the notice is disabled."""
    if not policy.notices_enabled:
        return ""
    if kind in policy.notice_texts:
        return policy.notice_texts[kind].strip()
    return DEFAULT_TEXTS[policy.language][kind]
