"""What the MCP tools return beyond the agent API's own bodies (same field names as the API)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from baton.store.console_records import ConversationSummary
from baton.store.search_records import SearchHit


class CustomerWindow(BaseModel):
    """WhatsApp's customer-service window: free text only while it is open."""

    model_config = ConfigDict(frozen=True)

    open: bool = Field(description="True: free text may be sent now; False: only a template.")
    expires_at: datetime | None = Field(description="When it closes (null: never opened).")
    last_customer_at: datetime | None = Field(description="The customer's last live message.")


class ConversationDetail(ConversationSummary):
    """One conversation: its state and holder, the handoff context, and the 24-hour window."""

    window: CustomerWindow


class SearchResults(BaseModel):
    items: list[SearchHit] = Field(description="Matching messages, newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for older matches; null when there are none."
    )
