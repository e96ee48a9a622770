"""Records of account-level WhatsApp updates: template statuses, marketing opt-outs, new numbers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from baton.types import ConversationId, PhoneNumberId, WaId, Wamid


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class TemplateStatusUpdate(_Record):
    """A `message_template_status_update` webhook: `status` is Meta's `event` (APPROVED …)."""

    waba_id: str
    template_id: str
    name: str | None
    language: str | None
    category: str | None
    status: str
    reason: str | None
    at: datetime  # when Baton received it: the newest status wins


class TemplateCategoryUpdate(_Record):
    """A `template_category_update` webhook: the template's category is now `category`."""

    waba_id: str
    template_id: str
    name: str | None
    language: str | None
    category: str
    at: datetime


class TemplateStatus(_Record):
    """What Baton knows of one template of a WABA."""

    waba_id: str
    template_id: str
    name: str | None
    language: str | None
    category: str | None
    status: str | None  # None: only a category change was seen so far
    reason: str | None
    status_at: datetime | None

    @property
    def sendable(self) -> bool:
        """Whether Meta would accept this template now (approved and not paused/disabled)."""
        return self.status in SENDABLE_TEMPLATE_STATUSES


SENDABLE_TEMPLATE_STATUSES = frozenset({"APPROVED", "REINSTATED"})


class MarketingPreference(_Record):
    """A `user_preferences` webhook item for the marketing category."""

    phone_number_id: PhoneNumberId
    wa_id: WaId
    opted_out: bool  # "stop" → True, "resume" → False
    detail: str | None
    at: datetime  # Meta's timestamp: the newest preference wins


class NumberChangeOutcome(StrEnum):
    MOVED = "moved"  # the conversation now belongs to the new wa_id
    KEPT_BOTH = "kept_both"  # the new wa_id already had its own conversation: both stay
    NO_CONVERSATION = "no_conversation"  # nothing to move: the customer never wrote before


class NumberChange(_Record):
    """A customer's `system` notice that their WhatsApp number changed."""

    phone_number_id: PhoneNumberId
    wamid: Wamid
    old_wa_id: WaId
    new_wa_id: WaId
    at: datetime


class NumberChangeResult(_Record):
    outcome: NumberChangeOutcome
    conversation_id: ConversationId | None
    recorded_now: bool  # False: this notice was applied before (a redelivery)
