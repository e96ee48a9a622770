"""Type aliases shared across Baton."""

from enum import StrEnum
from typing import Any, TypeAlias

JSON: TypeAlias = dict[str, Any]
PhoneNumberId: TypeAlias = str
WaId: TypeAlias = str
Wamid: TypeAlias = str
ConversationId: TypeAlias = int


class Mode(StrEnum):
    BOT = "bot"
    HUMAN = "human"
    PAUSED = "paused"


class Author(StrEnum):
    """Who wrote a message, as the agent sees it."""

    CUSTOMER = "customer"
    BOT = "bot"
    HUMAN = "human"  # an agent through the console or Chatwoot
    APP = "app"  # the owner in the WhatsApp Business App (Coexistence echo)
    SYSTEM = "system"  # notices Baton sends on its own (takeover, busy, back-to-bot)
    NOTE = "note"  # an agent's private note: stored and shown to agents, never sent


class Direction(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"
