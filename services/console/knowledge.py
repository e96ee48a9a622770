"""The bot's knowledge of a business number: persona, opening hours, FAQ, links, retrieval.

`GET` shows what the bot uses now (a saved edit, else the numbers file); `PUT` replaces it for
that number (bots pick it up within seconds); `DELETE` goes back to the numbers file. Agents
allowed on the number may read and edit it; external bots may not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import structlog
from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict

from baton.knowledge import Knowledge, status_at
from baton.types import PhoneNumberId
from services.console.auth import Agent, check_number
from services.console.context import ConsoleDep

log = structlog.get_logger()

router = APIRouter(tags=["knowledge"])


class KnowledgeView(BaseModel):
    """A number's knowledge base and where it comes from."""

    model_config = ConfigDict(frozen=True)

    phone_number_id: PhoneNumberId
    source: Literal["console", "numbers_file"]
    knowledge: Knowledge
    updated_at: datetime | None = None
    updated_by: str | None = None
    open_now: bool | None = None  # None when no opening hours are configured


@router.get("/numbers/{phone_number_id}/knowledge", response_model=KnowledgeView)
async def get_knowledge(
    phone_number_id: PhoneNumberId, agent: Agent, console: ConsoleDep
) -> KnowledgeView:
    """What the bot knows about this number now."""
    check_number(agent, phone_number_id)
    stored = await console.store.load_knowledge(phone_number_id)
    if stored is None:
        knowledge = console.settings.numbers().get(phone_number_id).knowledge
        return _view(phone_number_id, knowledge, source="numbers_file")
    return _view(
        phone_number_id,
        stored.knowledge,
        source="console",
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
    )


@router.put("/numbers/{phone_number_id}/knowledge", response_model=KnowledgeView)
async def put_knowledge(
    phone_number_id: PhoneNumberId, knowledge: Knowledge, agent: Agent, console: ConsoleDep
) -> KnowledgeView:
    """Replace this number's knowledge base (validated: hours, time zone, links)."""
    check_number(agent, phone_number_id)
    stored = await console.store.save_knowledge(phone_number_id, knowledge, by=agent.id)
    log.info("knowledge.saved", phone_number_id=phone_number_id, faq=len(knowledge.faq))
    return _view(
        phone_number_id,
        stored.knowledge,
        source="console",
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
    )


@router.delete("/numbers/{phone_number_id}/knowledge", status_code=status.HTTP_204_NO_CONTENT)
async def delete_knowledge(
    phone_number_id: PhoneNumberId, agent: Agent, console: ConsoleDep
) -> None:
    """Forget the console's edit: the numbers file's knowledge applies again."""
    check_number(agent, phone_number_id)
    await console.store.delete_knowledge(phone_number_id)
    log.info("knowledge.reset", phone_number_id=phone_number_id)


def _view(
    phone_number_id: PhoneNumberId,
    knowledge: Knowledge,
    *,
    source: Literal["console", "numbers_file"],
    updated_at: datetime | None = None,
    updated_by: str | None = None,
) -> KnowledgeView:
    open_now = (
        status_at(knowledge.hours, datetime.now().astimezone()).open_now
        if knowledge.hours is not None
        else None
    )
    return KnowledgeView(
        phone_number_id=phone_number_id,
        source=source,
        knowledge=knowledge,
        updated_at=updated_at,
        updated_by=updated_by,
        open_now=open_now,
    )
