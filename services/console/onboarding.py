"""Coexistence onboarding in the agent API: register a number, watch its 24-hour window.

- `POST /onboarding/numbers`: onboard a number (the window starts now); the history service
  then requests the contacts sync and the history sync within `BATON_HISTORY_SYNC_POLL_SECONDS`.
  201 when recorded now, 200 when the number was already onboarded (nothing is requested again).
- `GET /onboarding/numbers`, `GET /onboarding/numbers/{phone_number_id}`: deadline state
  (`on_track`, `at_risk`, `missed`, `met`, `disabled`), each sync request's status, and the
  import progress (phase, chunk, percent, messages imported, completed).
- `POST /onboarding/numbers/{phone_number_id}/syncs/{sync_type}/resolve`: a person's decision on
  a request whose outcome was unclear or refused: `accepted` (Meta has it) or `retry` (Meta
  certainly does not; refused once the window closed). 409 when there is nothing to decide.

Agents only (401 without a valid token, 403 for bots and for numbers outside the caller's scope).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field

from baton.settings import Settings
from baton.store.history_records import NumberHistory, NumberReport, Resolution, SyncType
from baton.types import PhoneNumberId
from services.console.agents import Principal
from services.console.auth import check_number, require_agent
from services.console.context import ConsoleDep

log = structlog.get_logger()

router = APIRouter(prefix="/onboarding", tags=["onboarding"])
Agent = Annotated[Principal, Depends(require_agent)]
_DIGITS = r"^\+?[0-9]{5,20}$"


class OnboardNumber(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    phone_number_id: PhoneNumberId = Field(pattern=r"^[0-9]{1,32}$")
    display_phone_number: str | None = Field(default=None, pattern=_DIGITS)
    waba_id: str | None = Field(default=None, pattern=r"^[0-9]{1,32}$")


class ResolveSync(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    resolution: Resolution
    note: str = Field(default="", max_length=500)


def _now() -> datetime:
    return datetime.now(UTC)


def _report(history: NumberHistory, settings: Settings) -> NumberReport:
    at_risk = timedelta(seconds=settings.history_sync_at_risk_seconds)
    return NumberReport.of(history, now=_now(), at_risk=at_risk)


async def _number(console: ConsoleDep, phone_number_id: PhoneNumberId) -> NumberHistory:
    history = await console.store.number_history(phone_number_id)
    if history is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this number was never onboarded")
    return history


@router.post(
    "/numbers",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": NumberReport, "description": "Already onboarded."}},
)
async def onboard(
    body: OnboardNumber, agent: Agent, console: ConsoleDep, response: Response
) -> NumberReport:
    """Onboard a Coexistence number: the 24-hour window for its syncs starts now."""
    check_number(agent, body.phone_number_id)
    now = _now()
    window = timedelta(seconds=console.settings.history_sync_window_seconds)
    _, created = await console.store.onboard_number(
        body.phone_number_id,
        now=now,
        deadline=now + window,
        display_phone_number=body.display_phone_number.removeprefix("+")
        if body.display_phone_number
        else None,
        waba_id=body.waba_id,
    )
    log.info(
        "onboarding.requested",
        phone_number_id=body.phone_number_id,
        agent=agent.id,
        created=created,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _report(await _number(console, body.phone_number_id), console.settings)


@router.get("/numbers")
async def numbers(agent: Agent, console: ConsoleDep) -> list[NumberReport]:
    """Every number onboarded or sending history that the caller may see."""
    return [
        _report(history, console.settings)
        for history in await console.store.numbers_history()
        if agent.may_see(history.phone_number_id)
    ]


@router.get("/numbers/{phone_number_id}")
async def number(phone_number_id: PhoneNumberId, agent: Agent, console: ConsoleDep) -> NumberReport:
    """One number's deadline, sync requests and import progress."""
    check_number(agent, phone_number_id)
    return _report(await _number(console, phone_number_id), console.settings)


@router.post(
    "/numbers/{phone_number_id}/syncs/{sync_type}/resolve",
    responses={409: {"description": "Nothing to decide (or a retry after the window)."}},
)
async def resolve(
    phone_number_id: PhoneNumberId,
    sync_type: SyncType,
    body: ResolveSync,
    agent: Agent,
    console: ConsoleDep,
) -> NumberReport:
    """Settle an unclear or refused sync request: `accepted`, or `retry` within the window."""
    check_number(agent, phone_number_id)
    await _number(console, phone_number_id)
    resolved = await console.store.resolve_sync_request(
        phone_number_id,
        sync_type,
        body.resolution,
        note=f"agent {agent.id}: {body.note}".rstrip(": "),
        now=_now(),
    )
    if resolved is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "this sync request is not waiting on a decision (or its window closed)",
        )
    log.warning(
        "onboarding.sync_resolved",
        phone_number_id=phone_number_id,
        sync_type=sync_type.value,
        resolution=body.resolution.value,
        agent=agent.id,
    )
    return _report(await _number(console, phone_number_id), console.settings)
