"""The agent API: list conversations, read history, take over, release, send.

Who may do what (`Conflict.reason` names the 409s):
- takeover: an agent; 409 `held_by_another_agent` if another agent holds it. Taking over a
  conversation you hold changes nothing (200, `changed: false`); an unassigned human
  conversation (the bot handed it off) is claimed.
- release (back to the bot): the holder, or any agent while no agent holds it (unassigned,
  or paused by the owner on the phone); 409 `held_by_another_agent` otherwise. Releasing a
  conversation the bot already holds changes nothing.
- send as `human`: only the agent holding the conversation (409 `not_holder`: take it over
  first). Send as `bot`: only external bots, with `expected_epoch`; 409 `not_bot_mode` or
  `stale_epoch` unless the bot holds it at that epoch (and the outbox fences it again).
- 403: a bot calling an agent action, an agent sending as `bot`, or a conversation of a
  business number outside the caller's scope.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, HTTPException, Query, status
from fastapi.responses import JSONResponse

from baton.broker import BrokerUnavailable, PublishFailed
from baton.conversations import (
    ConcurrentUpdate,
    Precondition,
    PreconditionFailed,
    UnknownConversation,
    held_by,
    not_held_by_other,
)
from baton.handoff import (
    AgentReleased,
    AgentSent,
    AgentTookOver,
    ConversationState,
    Decision,
    Event,
    IgnoreReason,
    customer_window_open,
)
from baton.messages import SendText
from baton.store.console_records import ConversationQuery, ConversationSummary
from baton.types import Author, ConversationId, Mode, PhoneNumberId
from services.console import audit, cursor, media_send, metrics
from services.console.agents import Kind, Principal
from services.console.audit import Via
from services.console.auth import Agent, AnyPrincipal, check_number, forbidden
from services.console.context import Console, ConsoleDep
from services.console.media_schemas import MULTIPART_SEND_DOC
from services.console.schemas import (
    Conflict,
    ConflictReason,
    ConversationList,
    HandoffState,
    MessageList,
    SendAccepted,
    SendMessage,
)

log = structlog.get_logger()

MAX_PAGE = 200
Responses = dict[int | str, dict[str, Any]]
_CONFLICT: Responses = {
    409: {"model": Conflict, "description": "The conversation's state forbids it."}
}
_NOT_FOUND: Responses = {404: {"description": "No such conversation."}}

router = APIRouter(tags=["conversations"])


class ConflictError(Exception):
    """Answered as 409 with the conversation's current state."""

    def __init__(self, reason: ConflictReason, detail: str, state: ConversationState) -> None:
        super().__init__(detail)
        self.body = Conflict(detail=detail, reason=reason, state=HandoffState.of(state))


async def conflict_response(_: object, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConflictError)
    return JSONResponse(exc.body.model_dump(mode="json"), status_code=status.HTTP_409_CONFLICT)


def _not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="no such conversation")


def _busy() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        detail="try again",
        headers={"Retry-After": "1"},
    )


def _scope(principal: Principal, number: PhoneNumberId | None) -> tuple[PhoneNumberId, ...] | None:
    """The numbers a listing may show: the one asked for, within the caller's scope."""
    if number is not None:
        check_number(principal, number)
        return (number,)
    return tuple(sorted(principal.numbers)) if principal.numbers is not None else None


@router.get("/conversations", response_model=ConversationList)
async def list_conversations(
    console: ConsoleDep,
    principal: AnyPrincipal,
    mode: Mode | None = None,
    number: Annotated[PhoneNumberId | None, Query(description="A phone_number_id.")] = None,
    assignee: Annotated[
        str | None, Query(description="An agent id; `me` for yourself; `none` for unassigned.")
    ] = None,
    waiting: Annotated[
        bool, Query(description="Only customers waiting for a human, longest wait first.")
    ] = False,
    cursor_: Annotated[str | None, Query(alias="cursor")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
) -> ConversationList:
    """Conversations, most recent live activity first (imported-only ones last)."""
    return await conversation_page(
        console,
        principal,
        mode=mode,
        number=number,
        assignee=assignee,
        waiting=waiting,
        cursor_=cursor_,
        limit=limit,
    )


async def conversation_page(
    console: Console,
    principal: Principal,
    *,
    mode: Mode | None = None,
    number: PhoneNumberId | None = None,
    assignee: str | None = None,
    waiting: bool = False,
    cursor_: str | None = None,
    limit: int | None = None,
) -> ConversationList:
    """One page of the conversations `principal` may see (the route's and MCP's listing)."""
    after_activity, after_id = cursor.decode(cursor_) if cursor_ is not None else (None, None)
    query = ConversationQuery(
        mode=mode,
        phone_number_ids=_scope(principal, number),
        assignee=principal.id if assignee == "me" else None if assignee == "none" else assignee,
        unassigned=assignee == "none",
        waiting=waiting,
        limit=limit or console.settings.console_page_limit,
        after_activity=after_activity,
        after_id=after_id,
    )
    if waiting:  # the fair queue (issue 12): longest wait first, paged on (waiting_since, id)
        page = await console.store.waiting_queue(query)
    else:
        page = await console.store.list_conversations(query)
    last = page.items[-1] if page.items else None
    return ConversationList(
        items=list(page.items),
        next_cursor=(
            cursor.encode(last.waiting_since if waiting else last.last_activity_at, last.id)
            if page.has_more and last is not None
            else None
        ),
    )


async def conversation_summary(
    console: Console, principal: Principal, cid: ConversationId
) -> ConversationSummary:
    """One conversation, if `principal` may see it (404 unknown, 403 out of scope)."""
    summary = await console.store.conversation_summary(cid)
    if summary is None:
        raise _not_found()
    check_number(principal, summary.phone_number_id)
    return summary


@router.get("/conversations/{conversation_id}", responses=_NOT_FOUND)
async def get_conversation(
    conversation_id: ConversationId, console: ConsoleDep, principal: AnyPrincipal
) -> ConversationSummary:
    """One conversation: who holds it, its epoch, the last message."""
    return await conversation_summary(console, principal, conversation_id)


@router.get("/conversations/{conversation_id}/messages", responses=_NOT_FOUND)
async def list_messages(
    conversation_id: ConversationId,
    console: ConsoleDep,
    principal: AnyPrincipal,
    before: Annotated[str | None, Query(description="`next_before` of the page after.")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
) -> MessageList:
    """History in both directions, live and imported, newest page first, oldest first within."""
    return await message_history(console, principal, conversation_id, before=before, limit=limit)


async def message_history(
    console: Console,
    principal: Principal,
    conversation_id: ConversationId,
    *,
    before: str | None = None,
    limit: int | None = None,
) -> MessageList:
    """One page of a conversation's history, going back from `before` (the route's and MCP's)."""
    await conversation_summary(console, principal, conversation_id)
    position = None
    if before is not None:
        at, row_id = cursor.decode(before)
        if at is None:
            raise cursor.BadCursor
        position = (at, row_id)
    page = await console.store.message_page(
        conversation_id, limit=limit or console.settings.console_page_limit, before=position
    )
    first = page.items[0] if page.items else None
    return MessageList(
        items=list(page.items),
        next_before=(
            cursor.encode(first.sent_at, first.id) if page.has_more and first is not None else None
        ),
    )


async def _state(console: Console, principal: Principal, cid: ConversationId) -> ConversationState:
    state = await console.conversations.state(cid)
    if state is None:
        raise _not_found()
    check_number(principal, state.phone_number_id)
    return state


async def _apply(
    console: Console,
    action: str,
    cid: ConversationId,
    event: Event,
    precondition: Precondition,
    conflict: tuple[ConflictReason, str],
    *,
    loaded: ConversationState,
    count_success: bool = True,
) -> Decision:
    try:
        # `loaded` is the state the route just read for its scope check: no second load.
        decision = await console.conversations.apply(
            cid, event, precondition=precondition, loaded=loaded
        )
    except UnknownConversation as exc:
        raise _not_found() from exc
    except PreconditionFailed as exc:
        metrics.ACTIONS.labels(action=action, outcome="conflict").inc()
        raise ConflictError(conflict[0], conflict[1], exc.state) from exc
    except ConcurrentUpdate as exc:
        metrics.ACTIONS.labels(action=action, outcome="busy").inc()
        raise _busy() from exc
    if count_success:
        outcome = "ok" if decision.changed else "unchanged"
        metrics.ACTIONS.labels(action=action, outcome=outcome).inc()
    return decision


_HELD_BY_OTHER = (ConflictReason.HELD_BY_ANOTHER_AGENT, "another agent holds this conversation")


async def take_or_release(
    console: Console,
    agent: Principal,
    cid: ConversationId,
    action: str,
    event: Event,
    *,
    via: Via = Via.API,
) -> HandoffState:
    """Takeover and release alike: any agent may, unless another agent holds the conversation."""
    state = await _state(console, agent, cid)
    takeover = isinstance(event, AgentTookOver)
    # Capacity (issue 12): a takeover counts the agent's load under the lock that serializes
    # every assignment, and `decide` refuses a full agent.
    async with console.store.assignment_lock() if takeover else contextlib.nullcontext():
        if takeover:
            load = (await console.store.agent_loads()).get(agent.id, 0)
            event = AgentTookOver(agent_id=agent.id, load=load, capacity=agent.max_conversations)
        decision = await _apply(
            console, action, cid, event, not_held_by_other(agent.id), _HELD_BY_OTHER, loaded=state
        )
    if decision.ignored is IgnoreReason.AT_CAPACITY:
        metrics.ACTIONS.labels(action=action, outcome="conflict").inc()
        raise ConflictError(
            ConflictReason.AT_CAPACITY,
            f"you already hold {agent.max_conversations} conversations",
            decision.state,
        )
    log.info(f"console.{action}", conversation_id=cid, changed=decision.changed, via=via.value)
    after = decision.state
    await audit.record(
        console,
        agent,
        action,
        via=via,
        conversation_id=cid,
        phone_number_id=after.phone_number_id,
        wa_id=after.wa_id,
        mode=after.mode,
        epoch=after.epoch,
        changed=decision.changed,
    )
    return HandoffState.of(after, decision)


@router.post("/conversations/{conversation_id}/takeover", responses={**_CONFLICT, **_NOT_FOUND})
async def take_over(
    conversation_id: ConversationId, console: ConsoleDep, agent: Agent
) -> HandoffState:
    """Hold the conversation yourself: the bot stops answering it (its reply in flight too)."""
    return await take_or_release(
        console, agent, conversation_id, "takeover", AgentTookOver(agent_id=agent.id)
    )


@router.post("/conversations/{conversation_id}/release", responses={**_CONFLICT, **_NOT_FOUND})
async def release(
    conversation_id: ConversationId, console: ConsoleDep, agent: Agent
) -> HandoffState:
    """Give the conversation back to the bot."""
    return await take_or_release(
        console, agent, conversation_id, "release", AgentReleased(agent_id=agent.id)
    )


async def _check_window(console: Console, state: ConversationState, body: SendMessage) -> None:
    """Refuse, before anything is recorded or sent, what WhatsApp would refuse (issue 12):
    free text outside the customer-service window, a template the number did not configure."""
    if body.template is not None:
        allowed = console.conversations.numbers.get(state.phone_number_id).templates
        if body.template.name not in allowed:
            raise HTTPException(
                status_code=422,
                detail=f"template {body.template.name!r} is not configured for this number",
            )
    elif not customer_window_open(state, now := console.conversations.now()) and not (
        # The newest customer message may be stored and not yet decided: the store knows too.
        (stored := await console.store.customer_window_expires_at(state.conversation_id))
        and now < stored
    ):
        metrics.ACTIONS.labels(action=f"send_{body.author}", outcome="conflict").inc()
        raise ConflictError(
            ConflictReason.WINDOW_CLOSED,
            "the customer-service window is closed: send an approved template",
            state,
        )


def _idempotency_key(principal: Principal, header: str | None) -> str:
    # Namespaced by caller: one caller's key can never collide with another's, or a notice's.
    return f"console:{principal.id}:{header or uuid.uuid4().hex}"


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_CONFLICT, **_NOT_FOUND, 503: {"description": "Not handed over; retry."}},
    openapi_extra=MULTIPART_SEND_DOC,  # the same endpoint takes a file (services/console/media)
)
async def send_message(
    conversation_id: ConversationId,
    body: SendMessage,
    console: ConsoleDep,
    principal: AnyPrincipal,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="Retry with the same key: the customer gets the message once.",
        ),
    ] = None,
) -> SendAccepted:
    """Send the customer a text, as the agent holding it or as an external bot (see body)."""
    return await send_text(console, principal, conversation_id, body, idempotency_key)


async def send_text(
    console: Console,
    principal: Principal,
    conversation_id: ConversationId,
    body: SendMessage,
    idempotency_key: str | None = None,
    *,
    via: Via = Via.API,
) -> SendAccepted:
    """Hand a text to the outbox under the send rules above (the route's and MCP's send)."""
    state = await _state(console, principal, conversation_id)
    key = _idempotency_key(principal, idempotency_key)
    # Media (issue 18): a file is checked (413/415) before anything is recorded or sent.
    attached = await media_send.attachment(console, state, body.media) if body.media else None
    if body.author == "human":
        if principal.kind is not Kind.AGENT:
            raise forbidden("bots send with author=bot and expected_epoch")
        await _check_window(console, state, body)
        # Recorded first, under the precondition: if the publish below fails, a retry with the
        # same key records it again (harmless) and the outbox sends the message once.
        decision = await _apply(
            console,
            "send_human",
            conversation_id,
            AgentSent(agent_id=principal.id),
            held_by(principal.id),
            (ConflictReason.NOT_HOLDER, "take the conversation over before writing in it"),
            loaded=state,
            count_success=False,  # counted once the outbox has the message
        )
        state = decision.state
        author, epoch = Author.HUMAN, None
    else:
        if principal.kind is not Kind.BOT:
            raise forbidden("agents send as human")
        if state.mode is not Mode.BOT:
            metrics.ACTIONS.labels(action="send_bot", outcome="conflict").inc()
            raise ConflictError(
                ConflictReason.NOT_BOT_MODE, "a human holds this conversation", state
            )
        if state.epoch != body.expected_epoch:
            metrics.ACTIONS.labels(action="send_bot", outcome="conflict").inc()
            raise ConflictError(
                ConflictReason.STALE_EPOCH, "the conversation moved to another epoch", state
            )
        await _check_window(console, state, body)
        author, epoch = Author.BOT, body.expected_epoch
    outbound = None
    if attached is not None:  # allowed to send: upload to Meta now, the outbox sends it by id
        deps = await media_send.media_deps_of(console)
        outbound = await media_send.upload(console, deps, state, attached, key, body.text)
    command = SendText(
        idempotency_key=key,
        conversation_id=conversation_id,
        phone_number_id=state.phone_number_id,
        to=state.wa_id,
        body=body.text or (f"[template {body.template.name}]" if body.template else ""),
        author=author,
        epoch=epoch,
        agent_id=principal.id,
        reply_to=body.reply_to,
        template=body.template,
        media=outbound,
    )
    try:
        await console.broker.publish_command(command)
    except (BrokerUnavailable, PublishFailed) as exc:
        metrics.ACTIONS.labels(action=f"send_{body.author}", outcome="unavailable").inc()
        log.warning("console.send_not_confirmed", conversation_id=conversation_id, error=str(exc))
        raise _busy() from exc
    metrics.ACTIONS.labels(action=f"send_{body.author}", outcome="ok").inc()
    log.info("console.sent", conversation_id=conversation_id, author=body.author, via=via.value)
    await audit.record(
        console,
        principal,
        "send",
        via=via,
        conversation_id=conversation_id,
        phone_number_id=state.phone_number_id,
        wa_id=state.wa_id,
        mode=state.mode,
        epoch=state.epoch,
        changed=True,
        detail={"idempotency_key": key, "author": body.author},
    )
    return SendAccepted(
        idempotency_key=key,
        conversation_id=conversation_id,
        author=body.author,
        state=HandoffState.of(state),
    )
