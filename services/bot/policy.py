"""How the bot behaves for one business number: language, prompt, handoff rules, limits."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from baton.knowledge import Knowledge, Link, OpeningHours
from baton.settings import NumberSettings
from services.bot.handoff_rules import DEFAULT_HANDOFF_PHRASES
from services.bot.texts import TEXTS, Texts, assistant_name, texts_for
from services.bot.types import Language

DEFAULT_CANNOT_HELP_MARKER = "[[CANNOT_HELP]]"

_RULES = """\
Rules you must always follow:
- You are an automated assistant. Never claim or pretend to be a human.
- Reply in {language} unless the customer writes in another language; then use theirs.
- Keep replies short and plain, as fits a WhatsApp chat.
- Earlier assistant messages may have been written by the business's staff; stay consistent \
with them and never contradict them.
- Never invent facts such as prices, stock, order status, deadlines or opening hours.
- If the customer asks for a person, is upset, or needs something only a person can do, call \
the tool {tool} with a short reason and a summary for the agent (what the customer wants, \
order ids, e-mails).
- If you cannot answer from what you know, reply with exactly {marker} and nothing else.
- If the customer's message needs no reply (just "ok" or an emoji), reply with an empty message.\
"""


class FaqEntry(BaseModel):
    """A canned answer the offline responder gives when a message contains one of `phrases`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phrases: tuple[str, ...] = Field(min_length=1)
    answer: str = Field(min_length=1)


class BotPolicy(BaseModel):
    """Per-number bot behaviour; every field has a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: Language = "pt-BR"
    # The business's part of the system prompt (persona, facts); Baton appends its own rules.
    # None → a neutral default persona in `language`.
    system_prompt: str | None = None
    business_name: str | None = None
    business_hours: str | None = None  # e.g. "seg a sex, 9h às 18h"; None → hours not known
    hours: OpeningHours | None = None  # structured: "are you open now?" answered exactly
    links: tuple[Link, ...] = ()
    contact: str | None = None  # how to reach a person outside the chat
    retrieval_examples: int = Field(default=3, ge=0)  # past answers given to the LLM; 0 = off
    faq: tuple[FaqEntry, ...] = ()
    handoff_phrases: tuple[str, ...] = DEFAULT_HANDOFF_PHRASES
    max_failed_turns: int | None = Field(default=3, ge=1)  # None disables the rule
    history_turns: int = Field(default=20, ge=0)
    cannot_help_marker: str = Field(default=DEFAULT_CANNOT_HELP_MARKER, min_length=1)

    @classmethod
    def for_number(cls, number: NumberSettings, knowledge: Knowledge | None = None) -> Self:
        """The policy of a configured number; `knowledge` replaces the numbers file's."""
        known = knowledge if knowledge is not None else number.knowledge
        return cls(
            language=number.language,
            handoff_phrases=(
                number.handoff_keywords
                if number.handoff_keywords is not None
                else DEFAULT_HANDOFF_PHRASES
            ),
            system_prompt=known.persona,
            business_name=known.business_name,
            hours=known.hours,
            faq=tuple(FaqEntry(phrases=item.questions, answer=item.answer) for item in known.faq),
            links=known.links,
            contact=known.contact,
            retrieval_examples=known.retrieval_examples if known.retrieval else 0,
        )

    @property
    def texts(self) -> Texts:
        return texts_for(self.language)

    @property
    def unanswered_markers(self) -> tuple[str, ...]:
        """Fixed sentences that mark a bot turn as "could not answer", in every language."""
        return tuple(texts.cannot_answer for texts in TEXTS.values())

    def full_system_prompt(self, tool_name: str, *, hours_now: str | None = None) -> str:
        """The system message sent to the LLM: the business's prompt, facts, then Baton's rules."""
        texts = self.texts
        persona = self.system_prompt or texts.default_persona.format(
            assistant=assistant_name(texts, self.business_name)
        )
        parts = [persona.strip()]
        if self.business_name:
            parts.append(f"Business name: {self.business_name}")
        if hours_now:
            parts.append(hours_now)
        elif self.business_hours:
            parts.append(f"Opening hours: {self.business_hours}")
        if self.faq:
            parts.append(
                "Answers the business wrote for common questions:\n"
                + "\n".join(f"- {entry.phrases[0]}: {entry.answer}" for entry in self.faq)
            )
        if self.links:
            parts.append("Links: " + "; ".join(f"{link.title}: {link.url}" for link in self.links))
        if self.contact:
            parts.append(f"Contact outside this chat: {self.contact}")
        parts.append(
            _RULES.format(
                language=texts.language_name, tool=tool_name, marker=self.cannot_help_marker
            )
        )
        return "\n\n".join(parts)
