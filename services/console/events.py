"""`GET /events`: conversation events as Server-Sent Events, for a UI that updates live."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from baton.types import ConversationId, PhoneNumberId
from services.console.auth import AnyPrincipal, check_number, directory_of
from services.console.context import ConsoleDep
from services.console.hub import EventFilter, sse_stream
from services.console.workflow import Workflow

router = APIRouter(tags=["events"])

_DESCRIPTION = """\
A `text/event-stream` of what happens to conversations. Each event has an `id`, an `event`
name and JSON `data` (the broker message):

| event | when |
|---|---|
| `conversation.message_received` | a live customer message, or the owner's echo (author `app`) |
| `conversation.customer_waiting` | a customer wrote while a human holds the conversation |
| `conversation.mode_changed` | bot / human / paused changed (with the new epoch) |
| `conversation.assignee_changed` | another agent holds it |
| `conversation.message_status` | WhatsApp's delivery status of a message we sent |
| `conversation.notice_skipped` | a notice to the customer was due but not sent |
| `message_sent`, `send_failed` | the outbox sent a message, or gave up |
| `reply_fenced` | a bot reply was dropped because the conversation left the bot |
| `conversation.resolved` | an agent resolved it: times to first response and handling, outcome |
| `conversation.note_added` | an agent wrote a private note (never sent to the customer) |
| `conversation.handoff_summary` | the structured summary of a handoff (reason, topics, ids) |
| `agent.presence_changed` | an agent went online, away or offline |
| `reset` | events were lost for you: refetch what you show, then keep following |

Comment lines (`: keep-alive`) come when nothing else happened for a while. On reconnect,
`Last-Event-ID` replays what was missed when this process still has it; otherwise `reset`.
"""


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "The stream."}},
    description=_DESCRIPTION,
)
async def events(
    request: Request,
    console: ConsoleDep,
    principal: AnyPrincipal,
    number: Annotated[PhoneNumberId | None, Query(description="Only this number.")] = None,
    conversation_id: Annotated[
        ConversationId | None, Query(description="Only this conversation.")
    ] = None,
    last_event_id: Annotated[str | None, Header(max_length=100)] = None,
) -> StreamingResponse:
    """Follow conversation events live."""
    if number is not None:
        check_number(principal, number)
        numbers: frozenset[PhoneNumberId] | None = frozenset({number})
    else:
        numbers = principal.numbers
    stream = sse_stream(
        console.hub,
        EventFilter(numbers=numbers, conversation_id=conversation_id),
        last_event_id,
        heartbeat_seconds=console.settings.console_heartbeat_seconds,
    )
    # An open stream is the agent's presence heartbeat (issue 12).
    stream = Workflow(console, directory_of(request)).beating(principal, stream)
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
