"""A business number's knowledge base, as the numbers file and the console API carry it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from baton.knowledge.hours import OpeningHours


class FaqItem(BaseModel):
    """One answer and the ways customers ask for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    questions: tuple[str, ...] = Field(min_length=1)
    answer: str = Field(min_length=1, max_length=4000)


class Link(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    url: HttpUrl


class Knowledge(BaseModel):
    """What the bot knows about one business; every field is optional."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The business's part of the system prompt: who the bot is and how it talks.
    persona: str | None = Field(default=None, max_length=8000)
    business_name: str | None = Field(default=None, max_length=200)
    hours: OpeningHours | None = None
    faq: tuple[FaqItem, ...] = ()
    links: tuple[Link, ...] = ()
    # How to reach a person outside the chat ("call 11 3333-4444"), offered when the bot cannot help.
    contact: str | None = Field(default=None, max_length=1000)
    # Retrieval of past answers from this number's own history (never another number's).
    retrieval: bool = True
    retrieval_examples: int = Field(default=3, ge=0, le=10)
