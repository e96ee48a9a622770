"""The MCP tools and the transcript resource: the agent API's actions, under the API's rules.

Every tool calls the same functions as the agent API's routes (`services.console.routes`), so
takeovers, releases and sends go through `Conversations` and the pure handoff core, with the
same preconditions, fencing and audit (recorded `via: mcp`). Who calls is a `Principal`,
resolved per request by the transport (a bearer token over HTTP, the environment over stdio).

A refusal is a tool error (`isError`) whose text is JSON an LLM can act on:
`{"error": "conflict", "status": 409, "reason": "not_holder", "detail": …, "state": {…}}`;
`error` is one of conflict, forbidden, not_found, bad_request, busy. A conversation of a
business number outside the caller's scope is `not_found`, exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import structlog
from fastapi import HTTPException
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from baton.handoff import AgentReleased, AgentTookOver, customer_window_open
from baton.store.console_records import ConversationSummary, HistoryMessage
from baton.store.search_records import MessageSearch
from baton.types import ConversationId, Mode, PhoneNumberId
from services.console import audit, cursor, metrics, routes
from services.console.agents import Directory, Kind, Principal
from services.console.audit import Via
from services.console.auth import check_number, forbidden
from services.console.context import Console
from services.console.mcp_server.results import ConversationDetail, CustomerWindow, SearchResults
from services.console.schemas import (
    ConversationList,
    HandoffState,
    MessageList,
    SendAccepted,
    SendMessage,
)
from services.console.workflow import Workflow, WorkflowError
from services.console.workflow_schemas import NoteView

log = structlog.get_logger()

PrincipalOf = Callable[[Context[Any, Any]], Principal]
TRANSCRIPT_MAX_MESSAGES = 500

INSTRUCTIONS = """\
Baton shares WhatsApp conversations between a bot and human agents. Each conversation has a
mode: `bot` (the bot answers), `human` (an agent holds it; `assignee` names them, null means
waiting for any agent) or `paused` (the business owner is answering from the phone).
Typical flow: list_conversations(waiting=true) → get_conversation / get_messages →
take_over → send_message → return_to_bot. You only ever see the business numbers your token
allows. Every change you make is audited under your name with via=mcp.
"""

ConversationArg = Annotated[
    ConversationId, Field(description="The conversation's `id` (from list_conversations).")
]
LimitArg = Annotated[int | None, Field(ge=1, le=routes.MAX_PAGE, description="Page size.")]


class Refusal(Exception):
    """A tool's refusal; its JSON body is what the caller reads."""

    def __init__(self, error: str, detail: str, status: int, **extra: object) -> None:
        super().__init__(detail)
        self.body = {"error": error, "status": status, "detail": detail, **extra}


_ERRORS = {400: "bad_request", 403: "forbidden", 404: "not_found", 409: "conflict", 503: "busy"}


def _refusal_of(exc: Exception) -> Refusal | None:
    """The API's refusals (409, 4xx, 503, a rejected body) as a tool's refusal."""
    if isinstance(exc, Refusal):
        return exc
    if isinstance(exc, routes.ConflictError):
        body = exc.body.model_dump(mode="json")
        return Refusal("conflict", body.pop("detail"), 409, **body)
    if isinstance(exc, HTTPException):
        return Refusal(_ERRORS.get(exc.status_code, "refused"), str(exc.detail), exc.status_code)
    if isinstance(exc, WorkflowError):
        extra: dict[str, object] = {}
        if exc.reason is not None:
            extra["reason"] = exc.reason.value
        if exc.state is not None:
            extra["state"] = HandoffState.of(exc.state).model_dump(mode="json")
        return Refusal(_ERRORS.get(exc.status, "refused"), exc.detail, exc.status, **extra)
    if isinstance(exc, ValidationError):
        return Refusal("bad_request", "; ".join(str(e["msg"]) for e in exc.errors()), 400)
    return None


async def _answer(tool: str, work: Awaitable[BaseModel]) -> CallToolResult:
    """Run a tool's work: its result as structured content, or its refusal as a tool error."""
    try:
        result = await work
    except Exception as exc:
        refusal = _refusal_of(exc)
        if refusal is None:
            metrics.MCP_CALLS.labels(tool=tool, outcome="error").inc()
            raise
        metrics.MCP_CALLS.labels(tool=tool, outcome="refused").inc()
        text = orjson.dumps(refusal.body).decode()
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
    metrics.MCP_CALLS.labels(tool=tool, outcome="ok").inc()
    return CallToolResult(
        content=[TextContent(type="text", text=result.model_dump_json())],
        structured_content=result.model_dump(mode="json"),
    )


async def _visible(
    console: Console, principal: Principal, cid: ConversationId
) -> ConversationSummary:
    """The conversation if the caller may see it; out of scope reads as not found."""
    summary = await console.store.conversation_summary(cid)
    if summary is None or not principal.may_see(summary.phone_number_id):
        raise Refusal("not_found", "no conversation with this id is visible to you", 404)
    return summary


def _agents_only(principal: Principal, what: str) -> None:
    if principal.kind is not Kind.AGENT:
        raise forbidden(
            f"only agents may {what}; a bot token may only send_message in bot mode"
            " with expected_epoch"
        )


async def _hand_over(
    console: Console,
    principal: Principal,
    cid: ConversationId,
    action: str,
    event: AgentTookOver | AgentReleased,
    what: str,
) -> HandoffState:
    """Takeover and return-to-bot: agents only, on a conversation they may see."""
    _agents_only(principal, what)
    await _visible(console, principal, cid)
    return await routes.take_or_release(console, principal, cid, action, event, via=Via.MCP)


async def conversation_detail(
    console: Console, principal: Principal, cid: ConversationId
) -> ConversationDetail:
    """get_conversation's answer: the API's summary plus the customer-service window."""
    summary = await routes.conversation_summary(console, principal, cid)
    state = await console.conversations.state(cid)
    now = datetime.now(UTC)
    window = CustomerWindow(
        open=state is not None and customer_window_open(state, now),
        expires_at=state.customer_window_expires_at if state is not None else None,
        last_customer_at=state.last_customer_at if state is not None else None,
    )
    return ConversationDetail(**summary.model_dump(), window=window)


def _transcript_line(message: HistoryMessage) -> str:
    who = message.author.value
    if message.agent_id and who in ("human", "note"):
        who = f"{who}:{message.agent_id}"
    marks = [m for m in ("imported" if message.imported else None, message.status) if m]
    suffix = f" ({', '.join(marks)})" if marks else ""
    body = message.body if message.body else f"[{message.type}]"
    return f"- {message.sent_at.isoformat()} **{who}**{suffix}: {body}"


async def transcript(console: Console, principal: Principal, cid: ConversationId) -> str:
    """The conversation as Markdown: who holds it, why, and its newest messages, oldest first."""
    summary = await routes.conversation_summary(console, principal, cid)
    messages: list[HistoryMessage] = []
    before: str | None = None
    while len(messages) < TRANSCRIPT_MAX_MESSAGES:
        page = await routes.message_history(
            console, principal, cid, before=before, limit=routes.MAX_PAGE
        )
        messages[:0] = page.items
        before = page.next_before
        if before is None:
            break
    messages = messages[-TRANSCRIPT_MAX_MESSAGES:]
    name = summary.customer_name or summary.wa_id
    lines = [
        f"# Conversation {summary.id} with {name} (wa_id {summary.wa_id})",
        f"Business number {summary.phone_number_id}; mode {summary.mode.value}, epoch"
        f" {summary.epoch}, held by {summary.assignee or 'nobody'}.",
    ]
    if summary.handoff_reason or summary.handoff_summary:
        lines.append(f"Handoff reason: {summary.handoff_reason or '-'}.")
        lines.append(f"Handoff summary: {summary.handoff_summary or '-'}")
    if before is not None:
        lines.append(f"(Only the newest {len(messages)} messages; get_messages pages further.)")
    lines.append("")
    lines.extend(_transcript_line(m) for m in messages)
    return "\n".join(lines) + "\n"


async def add_note(
    console: Console,
    directory: Directory,
    principal: Principal,
    cid: ConversationId,
    text: str,
    idempotency_key: str | None = None,
) -> NoteView:
    """add_note: the workflow's private note, audited `via: mcp`."""
    await _visible(console, principal, cid)
    note = await Workflow(console, directory).add_note(
        principal, cid, text, idempotency_key=idempotency_key
    )
    state = await console.conversations.state(cid)
    if state is not None:
        await audit.record(
            console,
            principal,
            "note",
            via=Via.MCP,
            conversation_id=cid,
            phone_number_id=state.phone_number_id,
            wa_id=state.wa_id,
            mode=state.mode,
            epoch=state.epoch,
            changed=note.created_now,
            detail={"note_id": str(note.id)},
        )
    return NoteView(
        id=note.id, conversation_id=cid, agent=note.agent_id, text=note.body, at=note.at
    )


def build_server(
    console: Console, directory: Directory, principal_of: PrincipalOf
) -> MCPServer[Any]:
    """Baton's MCP server over `console`; `principal_of` names the caller of each request."""
    server: MCPServer[Any] = MCPServer(
        "baton", title="Baton", instructions=INSTRUCTIONS, version="1"
    )
    reading = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(
        name="list_conversations",
        annotations=reading,
        description=(
            "List conversations you may see, most recent live activity first. Changes nothing."
            " Filters combine: mode (bot|human|paused), waiting=true (a customer message no"
            " human answered yet: the queue), number (a business phone_number_id), assignee"
            " (an agent id, `me`, or `none` for human conversations no agent holds). Returns"
            " {items: [{id, phone_number_id, wa_id, customer_name, mode, epoch, assignee,"
            " waiting_since, handoff_reason, handoff_summary, last_message, …}], next_cursor};"
            " pass next_cursor back as `cursor` for the next page (null: last page). Refuses"
            " (forbidden) a `number` outside your scope."
        ),
    )
    async def list_conversations(
        ctx: Context[Any, Any],
        mode: Mode | None = None,
        waiting: bool = False,
        number: Annotated[PhoneNumberId | None, Field(description="A phone_number_id.")] = None,
        assignee: Annotated[str | None, Field(description="Agent id, `me` or `none`.")] = None,
        cursor: Annotated[str | None, Field(description="`next_cursor` of a page.")] = None,
        limit: LimitArg = None,
    ) -> Annotated[CallToolResult, ConversationList]:
        principal = principal_of(ctx)

        async def work() -> ConversationList:
            return await routes.conversation_page(
                console,
                principal,
                mode=mode,
                number=number,
                assignee=assignee,
                waiting=waiting,
                cursor_=cursor,
                limit=limit,
            )

        return await _answer("list_conversations", work())

    @server.tool(
        name="get_conversation",
        annotations=reading,
        description=(
            "One conversation's state. Changes nothing. Returns the same fields as"
            " list_conversations (mode, epoch, assignee = the holding agent, waiting_since,"
            " handoff_reason and handoff_summary = why the bot handed off and what it"
            " gathered) plus `window`: {open, expires_at, last_customer_at}, WhatsApp's"
            " 24-hour customer-service window (free text may be sent only while open)."
            " Refuses with not_found when the id does not exist or is outside your scope."
        ),
    )
    async def get_conversation(
        ctx: Context[Any, Any], conversation_id: ConversationArg
    ) -> Annotated[CallToolResult, ConversationDetail]:
        principal = principal_of(ctx)

        async def work() -> ConversationDetail:
            await _visible(console, principal, conversation_id)
            return await conversation_detail(console, principal, conversation_id)

        return await _answer("get_conversation", work())

    @server.tool(
        name="get_messages",
        annotations=reading,
        description=(
            "A conversation's messages, both directions, newest page first and oldest first"
            " within a page. Changes nothing. Each item: {id, wamid, direction (in|out), author"
            " (customer|bot|human|app|system|note), type, body, sent_at, imported (true:"
            " imported from the WhatsApp Business App's history, not live), status, agent_id}."
            " Pass `next_before` back as `before` for older messages (null: no more). Refuses"
            " with not_found when the id does not exist or is outside your scope."
        ),
    )
    async def get_messages(
        ctx: Context[Any, Any],
        conversation_id: ConversationArg,
        before: Annotated[str | None, Field(description="`next_before` of a page.")] = None,
        limit: LimitArg = None,
    ) -> Annotated[CallToolResult, MessageList]:
        principal = principal_of(ctx)

        async def work() -> MessageList:
            await _visible(console, principal, conversation_id)
            return await routes.message_history(
                console, principal, conversation_id, before=before, limit=limit
            )

        return await _answer("get_messages", work())

    @server.tool(
        name="take_over",
        annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True),
        description=(
            "Take the conversation over as yourself (an agent): its mode becomes human with you"
            " as assignee, the epoch grows, the bot stops answering (a bot reply already being"
            " written is dropped) and the customer may get a takeover notice. Taking over one"
            " you already hold changes nothing (changed=false). Refuses: conflict"
            " held_by_another_agent (another agent holds it; returns its state), forbidden"
            " (bot tokens), not_found. Returns the new state {conversation_id, mode, epoch,"
            " assignee, changed, …}."
        ),
    )
    async def take_over(
        ctx: Context[Any, Any], conversation_id: ConversationArg
    ) -> Annotated[CallToolResult, HandoffState]:
        principal = principal_of(ctx)
        event = AgentTookOver(agent_id=principal.id)
        work = _hand_over(console, principal, conversation_id, "takeover", event, "take over")
        return await _answer("take_over", work)

    @server.tool(
        name="return_to_bot",
        annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True),
        description=(
            "Give the conversation back to the bot: mode becomes bot, the epoch grows, the"
            " customer may get a back-to-bot notice, and the bot answers the next message."
            " Allowed for the holding agent, or any agent while no agent holds it (waiting, or"
            " paused by the owner). Already with the bot: changes nothing (changed=false)."
            " Refuses: conflict held_by_another_agent, forbidden (bot tokens), not_found."
            " Returns the new state."
        ),
    )
    async def return_to_bot(
        ctx: Context[Any, Any], conversation_id: ConversationArg
    ) -> Annotated[CallToolResult, HandoffState]:
        principal = principal_of(ctx)
        event = AgentReleased(agent_id=principal.id)
        what = "return a conversation to the bot"
        work = _hand_over(console, principal, conversation_id, "release", event, what)
        return await _answer("return_to_bot", work)

    @server.tool(
        name="send_message",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
        description=(
            "Send the customer a WhatsApp text. As an agent you must hold the conversation"
            " (take_over first): refused with conflict not_holder otherwise. As an external bot"
            " token you send as the bot and must pass expected_epoch: refused with conflict"
            " not_bot_mode (a human or the owner holds it) or stale_epoch (it moved on); the"
            " outbox checks again before the message leaves. Reuse the same idempotency_key"
            " when retrying and the customer gets it once. Returns {idempotency_key,"
            " conversation_id, author, state}: accepted for sending; delivery shows in"
            " get_messages (status). Refuses: forbidden, not_found, bad_request, busy (retry)."
        ),
    )
    async def send_message(
        ctx: Context[Any, Any],
        conversation_id: ConversationArg,
        text: Annotated[str, Field(min_length=1, max_length=4096, description="The text.")],
        idempotency_key: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=200,
                pattern=r"^[\x21-\x7e]+$",
                description="Any printable ASCII key: retries with it send once.",
            ),
        ] = None,
        expected_epoch: Annotated[
            int | None, Field(ge=0, description="Bots only: the epoch you answer under.")
        ] = None,
        reply_to: Annotated[str | None, Field(description="Quote this message's wamid.")] = None,
    ) -> Annotated[CallToolResult, SendAccepted]:
        principal = principal_of(ctx)

        async def work() -> SendAccepted:
            await _visible(console, principal, conversation_id)
            bot = principal.kind is Kind.BOT
            body = SendMessage(
                text=text,
                author="bot" if bot else "human",
                expected_epoch=expected_epoch if bot else None,
                reply_to=reply_to,
            )
            if not bot and expected_epoch is not None:
                raise Refusal("bad_request", "expected_epoch is for bot tokens", 400)
            return await routes.send_text(
                console, principal, conversation_id, body, idempotency_key, via=Via.MCP
            )

        return await _answer("send_message", work())

    @server.tool(
        name="add_note",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=False),
        description=(
            "Add a private note to the conversation for the agents: stored in its history"
            " (author `note`) and shown to agents, never sent to the customer. Allowed to any"
            " caller who may see the conversation, holding it or not. Reuse the same"
            " idempotency_key when retrying and the note is stored once. Returns {id,"
            " conversation_id, author, agent, text, at}. Refuses: not_found, bad_request."
        ),
    )
    async def add_note_tool(
        ctx: Context[Any, Any],
        conversation_id: ConversationArg,
        text: Annotated[str, Field(min_length=1, max_length=4096, description="The note.")],
        idempotency_key: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=200,
                pattern=r"^[\x21-\x7e]+$",
                description="Any printable ASCII key: retries with it store once.",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, NoteView]:
        principal = principal_of(ctx)
        work = add_note(console, directory, principal, conversation_id, text, idempotency_key)
        return await _answer("add_note", work)

    @server.tool(
        name="search_messages",
        annotations=reading,
        description=(
            "Full-text search over a business number's message history (live and imported),"
            " in the number's language (Portuguese, Spanish or English stemming). Changes"
            ' nothing. `query` uses web-search syntax: words, "exact phrase", -excluded, or.'
            " Give `number` (a phone_number_id) or `conversation_id` (searches that one"
            " conversation). Returns {items: [{id, conversation_id, wa_id, direction, author,"
            " body, sent_at, imported, snippet (matches in «»), …}], next_cursor} newest first;"
            " pass next_cursor back as `cursor`. Refuses: forbidden (number outside your"
            " scope), not_found, bad_request."
        ),
    )
    async def search_messages(
        ctx: Context[Any, Any],
        query: Annotated[str, Field(min_length=1, max_length=500, description="What to find.")],
        number: Annotated[PhoneNumberId | None, Field(description="A phone_number_id.")] = None,
        conversation_id: Annotated[
            ConversationId | None, Field(description="Only this conversation.")
        ] = None,
        cursor: Annotated[str | None, Field(description="`next_cursor` of a page.")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Page size.")] = 20,
    ) -> Annotated[CallToolResult, SearchResults]:
        principal = principal_of(ctx)

        async def work() -> SearchResults:
            return await search(
                console,
                principal,
                query,
                number=number,
                conversation_id=conversation_id,
                cursor_=cursor,
                limit=limit,
            )

        return await _answer("search_messages", work())

    @server.resource(
        "conversation://{conversation_id}",
        name="conversation_transcript",
        title="Conversation transcript",
        description=(
            "A conversation as Markdown: customer, business number, mode and holder, the"
            " handoff reason and summary, then its newest messages oldest first (imported ones"
            " marked). Attach it as context before answering the customer."
        ),
        mime_type="text/markdown",
    )
    async def conversation_resource(conversation_id: str, ctx: Context[Any, Any]) -> str:
        principal = principal_of(ctx)
        if not conversation_id.isdigit():
            raise ResourceError("conversation ids are integers")
        cid = int(conversation_id)
        try:
            await _visible(console, principal, cid)
            return await transcript(console, principal, cid)
        except (Refusal, HTTPException) as exc:
            raise ResourceError("no conversation with this id is visible to you") from exc

    return server


async def search(
    console: Console,
    principal: Principal,
    text: str,
    *,
    number: PhoneNumberId | None = None,
    conversation_id: ConversationId | None = None,
    cursor_: str | None = None,
    limit: int = 20,
) -> SearchResults:
    """search_messages: full-text in the number's language, within the caller's scope."""
    if conversation_id is not None:
        summary = await _visible(console, principal, conversation_id)
        if number is not None and number != summary.phone_number_id:
            raise Refusal("bad_request", "that conversation belongs to another number", 400)
        number = summary.phone_number_id
    if number is None:
        raise Refusal("bad_request", "give a number (phone_number_id) or a conversation_id", 400)
    check_number(principal, number)
    before = None
    if cursor_ is not None:
        at, row_id = cursor.decode(cursor_)
        if at is None:
            raise cursor.BadCursor
        before = (at, row_id)
    page = await console.store.search_messages(
        MessageSearch(
            phone_number_id=number,
            text=text,
            language=console.conversations.policy(number).language.value,
            conversation_id=conversation_id,
            limit=limit,
            before=before,
        )
    )
    last = page.items[-1] if page.items else None
    return SearchResults(
        items=list(page.items),
        next_cursor=(
            cursor.encode(last.sent_at, last.id) if page.has_more and last is not None else None
        ),
    )
