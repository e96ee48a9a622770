"""The agent workflow API (issue 12): presence, agents, transfer, notes, resolve, summaries,
quick replies and templates. The rules live in `services.console.workflow`.

- `PUT /me/presence` `{"status": "online" | "away" | "offline"}`: going offline (by hand, or
  when no heartbeat came for `BATON_CONSOLE_PRESENCE_TIMEOUT_SECONDS`: an open `GET /events`
  stream or any call here is one) puts the agent's conversations back in the queue.
- `GET /agents`: each agent's presence, the conversations held, capacity (`max_conversations`).
- Auto-assignment (numbers with `assignment = "auto"`): a queued conversation (human mode, no
  holder) goes to an online agent allowed on its number with room, least loaded first,
  round-robin among equals; nobody online: the ghost fallback as always.
- `POST /conversations/{id}/transfer` `{"to": "<agent>" | null}`: mode stays human, nothing is
  sent to the customer. The holder, an admin, or anyone while it is queued; 403 if the target
  may not see the number; 409 `at_capacity`, `not_human_mode`, `held_by_another_agent`.
- `POST /conversations/{id}/notes` `{"text"}` → 201: a private note (author `note`) in the
  history and on `/events`; never sent to WhatsApp, never in the bot's context unless the number
  sets `notes_in_bot_context`.
- `POST /conversations/{id}/resolve` `{"outcome"?}`: back to the bot with the back-to-bot notice;
  time to first response, handling time and outcome are recorded (`event.conversation.resolved`).
- `GET /conversations/{id}/summary`: the latest handoff's structured summary.
- `GET /numbers/{id}/quick-replies`, `GET /numbers/{id}/templates`: what the composer offers.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status

from baton.handoff import customer_window_open
from baton.types import ConversationId, PhoneNumberId
from services.console import metrics
from services.console.agents import Principal
from services.console.auth import Agent, AnyPrincipal, check_number, directory_of, require_principal
from services.console.context import ConsoleDep, console_of
from services.console.routes import ConflictError
from services.console.schemas import Conflict, HandoffState
from services.console.workflow import Workflow, WorkflowError
from services.console.workflow_schemas import (
    AgentList,
    AgentView,
    NoteRequest,
    NoteView,
    PresenceUpdate,
    PresenceView,
    QuickReply,
    QuickReplyList,
    ResolveRequest,
    SummaryView,
    TemplateList,
    TransferRequest,
)

T = TypeVar("T")
Responses = dict[int | str, dict[str, Any]]
_ERRORS: Responses = {
    403: {"description": "Out of your scope, or not allowed (e.g. the target agent's)."},
    404: {"description": "No such conversation or agent."},
    409: {"model": Conflict, "description": "The conversation's state forbids it."},
}


def workflow_of(request: Request) -> Workflow:
    return Workflow(console_of(request), directory_of(request))


WorkflowDep = Annotated[Workflow, Depends(workflow_of)]


async def heartbeat(
    request: Request, principal: Annotated[Principal, Depends(require_principal)]
) -> None:
    """Every call here is a heartbeat of the calling agent."""
    await workflow_of(request).touch(principal)


router = APIRouter(tags=["workflow"], dependencies=[Depends(heartbeat)])


async def _run(action: str, work: Awaitable[T]) -> T:
    """Answer a `WorkflowError` as the console answers refusals (409 carries the state)."""
    try:
        result = await work
    except WorkflowError as exc:
        if exc.status == 409 and exc.reason is not None and exc.state is not None:
            metrics.ACTIONS.labels(action=action, outcome="conflict").inc()
            raise ConflictError(exc.reason, exc.detail, exc.state) from exc
        metrics.ACTIONS.labels(action=action, outcome=str(exc.status)).inc()
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        raise HTTPException(status_code=exc.status, detail=exc.detail, headers=headers) from exc
    metrics.ACTIONS.labels(action=action, outcome="ok").inc()
    return result


@router.put("/me/presence", responses=_ERRORS)
async def set_presence(body: PresenceUpdate, agent: Agent, workflow: WorkflowDep) -> PresenceView:
    """Online, away or offline. Offline (or silent for the timeout) re-queues what you hold."""
    change = await _run("presence", workflow.set_presence(agent, body.status))
    return PresenceView(agent=agent.id, status=change.status, previous=change.previous)


@router.post("/me/heartbeat", status_code=status.HTTP_204_NO_CONTENT)
async def beat(agent: Agent) -> Response:
    """Keep your presence alive without doing anything else (any call here does the same)."""
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/agents")
async def list_agents(principal: AnyPrincipal, workflow: WorkflowDep) -> AgentList:
    """Every agent: presence, the conversations held, capacity."""
    views = await workflow.agent_views()
    held: dict[str, list[ConversationId]] = {}
    for agent, _, _ in views:
        held[agent.id] = await workflow.console.store.held_conversations(agent.id)
    return AgentList(
        items=[
            AgentView(
                id=agent.id,
                status=presence,
                heartbeat_at=stored.heartbeat_at if stored is not None else None,
                conversations=held[agent.id],
                held=len(held[agent.id]),
                capacity=agent.max_conversations,
                admin=agent.admin,
                numbers=sorted(agent.numbers) if agent.numbers is not None else None,
            )
            for agent, presence, stored in views
        ]
    )


@router.post("/conversations/{conversation_id}/transfer", responses=_ERRORS)
async def transfer(
    conversation_id: ConversationId, body: TransferRequest, agent: Agent, workflow: WorkflowDep
) -> HandoffState:
    """Hand the conversation to another agent, or back to the queue; the customer sees nothing."""
    decision = await _run("transfer", workflow.transfer(agent, conversation_id, body.to))
    return HandoffState.of(decision.state, decision)


@router.post(
    "/conversations/{conversation_id}/notes",
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
)
async def add_note(
    conversation_id: ConversationId,
    body: NoteRequest,
    principal: AnyPrincipal,
    workflow: WorkflowDep,
    idempotency_key: Annotated[
        str | None,
        Header(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"),
    ] = None,
) -> NoteView:
    """A private note for agents: in the history (author `note`), never sent to WhatsApp."""
    note = await _run(
        "note",
        workflow.add_note(principal, conversation_id, body.text, idempotency_key=idempotency_key),
    )
    return NoteView(
        id=note.id, conversation_id=conversation_id, agent=note.agent_id, text=note.body, at=note.at
    )


@router.post("/conversations/{conversation_id}/resolve", responses=_ERRORS)
async def resolve(
    conversation_id: ConversationId, body: ResolveRequest, agent: Agent, workflow: WorkflowDep
) -> HandoffState:
    """End the human service: the bot answers again (the customer gets the back-to-bot notice)."""
    decision = await _run("resolve", workflow.resolve(agent, conversation_id, body.outcome))
    return HandoffState.of(decision.state, decision)


@router.get("/conversations/{conversation_id}/summary", responses=_ERRORS)
async def handoff_summary(
    conversation_id: ConversationId, console: ConsoleDep, principal: AnyPrincipal
) -> SummaryView:
    """The structured summary of the latest handoff: reason, topics, order ids, e-mails, phones."""
    state = await console.conversations.state(conversation_id)
    if state is None:
        raise HTTPException(status_code=404, detail="no such conversation")
    check_number(principal, state.phone_number_id)
    stored = await console.store.handoff_summary(conversation_id)
    if stored is None:
        raise HTTPException(status_code=404, detail="no handoff yet")
    return SummaryView.model_validate(
        {
            **stored.summary,
            "conversation_id": conversation_id,
            "epoch": stored.epoch,
            "created_at": stored.created_at,
        }
    )


@router.get("/numbers/{phone_number_id}/quick-replies", responses=_ERRORS)
async def quick_replies(
    phone_number_id: PhoneNumberId, console: ConsoleDep, principal: AnyPrincipal
) -> QuickReplyList:
    """Canned answers of this number; the composer inserts one when `/shortcut` is typed."""
    check_number(principal, phone_number_id)
    number = console.conversations.numbers.get(phone_number_id)
    return QuickReplyList(
        phone_number_id=phone_number_id,
        items=[QuickReply(shortcut=k, text=v) for k, v in sorted(number.quick_replies.items())],
    )


@router.get("/numbers/{phone_number_id}/templates", responses=_ERRORS)
async def templates(
    phone_number_id: PhoneNumberId,
    console: ConsoleDep,
    principal: AnyPrincipal,
    conversation_id: ConversationId | None = None,
) -> TemplateList:
    """Templates agents may send here; with `conversation_id`, whether free text may go now."""
    check_number(principal, phone_number_id)
    number = console.conversations.numbers.get(phone_number_id)
    listing = TemplateList(phone_number_id=phone_number_id, names=list(number.templates))
    if conversation_id is None:
        return listing
    state = await console.conversations.state(conversation_id)
    if state is None or state.phone_number_id != phone_number_id:
        raise HTTPException(status_code=404, detail="no such conversation on this number")
    return listing.model_copy(
        update={
            "window_open": customer_window_open(state, console.conversations.now()),
            "window_expires_at": state.customer_window_expires_at,
        }
    )
