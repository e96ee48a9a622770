"""The bot's vocabulary: conversation turns in, decisions out."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict

from baton.types import Author, Wamid

Language: TypeAlias = Literal["pt-BR", "en", "es"]


class Turn(BaseModel):
    """One earlier message of the conversation, as the bot sees it."""

    model_config = ConfigDict(frozen=True)

    author: Author
    text: str
    at: datetime
    # When set, a turn that is also in the burst being answered is dropped from the history.
    wamid: Wamid | None = None


class HandoffReason(StrEnum):
    """Why the bot gave the conversation to a human (low-cardinality: safe as a metric label)."""

    CUSTOMER_ASKED = "customer_asked"  # keyword/phrase rule
    LLM_TOOL_CALL = "llm_tool_call"  # the model called handoff_to_human
    BOT_FAILED = "bot_failed"  # N consecutive turns the bot could not answer
    LLM_UNAVAILABLE = "llm_unavailable"  # retries exhausted or request rejected


class Reply(BaseModel):
    """Send `text` to the customer; `answered` is False for the "I can't answer that" fallback."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["reply"] = "reply"
    text: str
    answered: bool = True


class NoReply(BaseModel):
    """Send nothing; the burst still counts as handled."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["no_reply"] = "no_reply"


class Handoff(BaseModel):
    """Give the conversation to a human, with a summary for the agent."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["handoff"] = "handoff"
    reason: HandoffReason
    summary: str


BotDecision: TypeAlias = Reply | NoReply | Handoff
