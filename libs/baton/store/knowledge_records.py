"""Plain data of bot knowledge: a number's stored knowledge base and retrieved past answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from baton.knowledge import Knowledge
from baton.types import Author, ConversationId


class StoredKnowledge(BaseModel):
    """A knowledge base saved through the console (it replaces the numbers file's)."""

    model_config = ConfigDict(frozen=True)

    knowledge: Knowledge
    updated_at: datetime
    updated_by: str


class PastAnswer(BaseModel):
    """A business answer from this number's history and the customer's words before it."""

    model_config = ConfigDict(frozen=True)

    pair_id: int
    conversation_id: ConversationId  # where it was first seen
    question: str
    answer: str
    author: Author
    imported: bool
    uses: int  # how many times the business gave this answer to these words
    score: float
