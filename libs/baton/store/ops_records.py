"""Plain data of operators' records."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class DlqReplay(BaseModel):
    """One dead-lettered message an operator sent back to the queue where it failed."""

    model_config = ConfigDict(frozen=True)

    operator: str
    queue: str  # where it failed and was sent back to
    message_id: str
    message_type: str
    failure: str  # the x-baton-error it was parked with
    at: datetime | None = None
