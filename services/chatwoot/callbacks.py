"""Chatwoot → Baton: the inbox's callback URL, `POST /chatwoot/{phone_number_id}/callback`.

- Authenticated first (`signature.authentic`): 401 with nothing read or changed otherwise.
- `message_created`, outgoing, not private, written by a user (an agent): sent to the customer
  through the outbox as that agent (`SendText`, idempotency key `chatwoot:<scope>:<message id>`,
  so a duplicate callback sends nothing twice). The agent takes the conversation over first if
  they do not hold it (the bot's reply in flight is fenced). Private notes, the customer's
  messages and the bridge's own posts are ignored.
- `conversation_status_changed` / `conversation_updated` (and the other conversation events): an
  agent opening or assigning it takes it over; `resolved` / `pending` give it back to the bot.
  A callback older than one already applied (Chatwoot's `updated_at`) changes nothing, and so
  does the echo of a change the bridge made itself: one transition per change, never a loop.
- Baton-side failures answer 503: Chatwoot then marks an agent's message as failed.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, Request, Response

from baton.broker import Broker, BrokerUnavailable, Poison, PublishFailed
from baton.conversations import (
    ConcurrentUpdate,
    Conversations,
    PreconditionFailed,
    UnknownConversation,
    held_by,
)
from baton.handoff import AgentSent, AgentTookOver, ConversationState
from baton.messages import SendText, utcnow
from baton.store.chatwoot_records import ChatwootConversation
from baton.store.port import Store
from baton.types import JSON, Author, Mode
from services.chatwoot import metrics
from services.chatwoot.client import ChatwootError
from services.chatwoot.inboxes import Inbox, Inboxes
from services.chatwoot.mirror import CHATWOOT_SEND_PREFIX, Mirror
from services.chatwoot.signature import authentic
from services.chatwoot.sync import chatwoot_may_act, remote_action

log = structlog.get_logger()

CONVERSATION_EVENTS = frozenset(
    {
        "conversation_status_changed",
        "conversation_updated",
        "conversation_opened",
        "conversation_resolved",
        "assignee_changed",
    }
)


class Callbacks:
    """Applies Chatwoot's callbacks to Baton."""

    def __init__(
        self,
        store: Store,
        broker: Broker,
        conversations: Conversations,
        inboxes: Inboxes,
        mirror: Mirror,
    ) -> None:
        self._store = store
        self._broker = broker
        self._conversations = conversations
        self._inboxes = inboxes
        self._mirror = mirror

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.post("/chatwoot/{phone_number_id}/callback", include_in_schema=False)
        async def callback(phone_number_id: str, request: Request) -> Response:
            return await self.handle(phone_number_id, request)

        return router

    async def handle(self, phone_number_id: str, request: Request) -> Response:
        inbox = self._inboxes.get(phone_number_id)
        body = await request.body()
        secret = inbox.config.webhook_secret.get_secret_value() if inbox is not None else None
        headers = {k.lower(): v for k, v in request.headers.items()}
        token = request.query_params.get("token")
        # An unknown number is refused like a bad signature: nothing tells a caller which exist.
        if (
            inbox is None
            or secret is None
            or not authentic(secret, headers, body, token, now=time.time())
        ):
            metrics.CALLBACKS.labels(event="unknown", outcome="unauthorized").inc()
            log.warning("chatwoot.callback_refused", signed="x-chatwoot-signature" in headers)
            return Response(status_code=401)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Response(status_code=400)
        if not isinstance(payload, dict):
            return Response(status_code=400)
        event = str(payload.get("event", ""))
        label = event if event in CONVERSATION_EVENTS | {"message_created"} else "other"
        try:
            if not _same_inbox(payload, inbox):
                outcome = "ignored"
            elif event == "message_created":
                outcome = await self._message(inbox, payload)
            elif event in CONVERSATION_EVENTS:
                outcome = await self._conversation(inbox, payload)
            else:
                outcome = "ignored"
        except (BrokerUnavailable, PublishFailed, ConcurrentUpdate, ChatwootError, OSError) as exc:
            metrics.CALLBACKS.labels(event=label, outcome="failed").inc()
            log.warning("chatwoot.callback_failed", chatwoot_event=event, error=str(exc))
            return Response(status_code=503, headers={"Retry-After": "1"})
        metrics.CALLBACKS.labels(event=label, outcome=outcome).inc()
        log.info("chatwoot.callback", chatwoot_event=event, outcome=outcome)
        return Response(status_code=200)

    # --- an agent's reply -----------------------------------------------------------------

    async def _message(self, inbox: Inbox, payload: JSON) -> str:
        sender = payload.get("sender") or {}
        attributes = payload.get("content_attributes") or {}
        if (
            payload.get("message_type") not in ("outgoing", 1)
            or payload.get("private")
            or sender.get("type") != "user"
            or (isinstance(attributes, dict) and "baton_key" in attributes)
        ):
            return "ignored"  # the customer, a private note, a bot, or the bridge's own post
        if inbox.profile_id is None:
            inbox.profile_id = await inbox.client.profile_id()
        if sender.get("id") == inbox.profile_id:
            return "ignored"
        conversation = payload.get("conversation") or {}
        twin = await self._store.chatwoot_twin_by_remote(inbox.scope, int(conversation["id"]))
        if twin is None:
            return "ignored"  # a conversation Baton did not create
        key = f"{CHATWOOT_SEND_PREFIX}{inbox.scope}:{payload['id']}"
        if await self._store.chatwoot_link(inbox.scope, "message", f"out:{key}") is not None:
            metrics.AGENT_SENDS.labels(outcome="duplicate").inc()
            return "duplicate"
        agent = await inbox.agents.agent_id(int(sender["id"]), sender.get("email"))
        state = await self._conversations.state(twin.conversation_id)
        if state is None:
            return "ignored"
        holds = state.mode is Mode.HUMAN and state.assignee == agent
        if not holds and not await self._take_over(inbox, twin, state, agent):
            await self._mirror.post_note(
                inbox,
                twin,
                f"refused:{key}",
                f"⚠️ Not sent to WhatsApp: {state.assignee} holds this conversation in Baton.",
            )
            metrics.AGENT_SENDS.labels(outcome="refused").inc()
            return "refused"
        try:
            decision = await self._conversations.apply(
                twin.conversation_id, AgentSent(agent_id=agent), precondition=held_by(agent)
            )
        except PreconditionFailed:
            metrics.AGENT_SENDS.labels(outcome="refused").inc()
            return "refused"  # someone took it between the takeover and the send
        await self._broker.publish_command(
            SendText(
                idempotency_key=key,
                conversation_id=twin.conversation_id,
                phone_number_id=decision.state.phone_number_id,
                to=decision.state.wa_id,
                body=str(payload.get("content") or ""),
                author=Author.HUMAN,
                agent_id=agent,
            )
        )
        # After the publish: a crash in between re-sends on Chatwoot's retry, and the outbox
        # sends one idempotency key once.
        await self._store.save_chatwoot_link(
            inbox.scope, "message", f"out:{key}", int(payload["id"])
        )
        metrics.AGENT_SENDS.labels(outcome="queued").inc()
        log.info("chatwoot.agent_reply", conversation_id=twin.conversation_id)
        return "applied"

    async def _take_over(
        self, inbox: Inbox, twin: ChatwootConversation, state: ConversationState, agent: str
    ) -> bool:
        try:
            await self._conversations.apply(
                twin.conversation_id,
                AgentTookOver(agent_id=agent),
                precondition=lambda s: chatwoot_may_act(s, inbox.agents.is_chatwoot_agent),
                loaded=state,
            )
        except PreconditionFailed:
            return False
        return True

    # --- status and assignee -----------------------------------------------------------------

    async def _conversation(self, inbox: Inbox, payload: JSON) -> str:
        remote_id = payload.get("id")
        if remote_id is None:
            return "ignored"
        twin = await self._store.chatwoot_twin_by_remote(inbox.scope, int(remote_id))
        if twin is None:
            return "ignored"
        updated_at = _timestamp(payload.get("updated_at") or payload.get("timestamp"))
        if updated_at is not None and not await self._store.advance_chatwoot_clock(
            twin.conversation_id, updated_at
        ):
            return "stale"  # delivered out of order: a newer change was applied already
        status = str(payload.get("status", ""))
        assignee = ((payload.get("meta") or {}).get("assignee")) or None
        assignee_id = (
            int(assignee["id"]) if isinstance(assignee, dict) and "id" in assignee else None
        )
        now = utcnow()
        status_news = status != twin.remote_status
        # The bridge notes what it set before the echo comes back: look for an echo even
        # when the status is what it noted.
        echoed = await self._store.take_chatwoot_echo(
            inbox.scope, twin.chatwoot_conversation_id, f"status:{status}", now=now
        )
        assignee_news = assignee_id != twin.remote_assignee_id
        if assignee_news and await self._store.take_chatwoot_echo(
            inbox.scope, twin.chatwoot_conversation_id, f"assignee:{assignee_id or ''}", now=now
        ):
            echoed = True
        if echoed:
            # The bridge's own change coming back. Its snapshot may be half-way (the status
            # set, the assignee not yet): the rest is the bridge's next change, not news.
            return "echo"
        await self._store.note_chatwoot_remote(
            twin.conversation_id, status=status or None, assignee_id=assignee_id, set_assignee=True
        )
        if not (status_news or assignee_news):
            return "unchanged"
        agent = None
        if assignee_id is not None:
            agent = await inbox.agents.agent_id(assignee_id, _email(assignee))
        state = await self._conversations.state(twin.conversation_id)
        if state is None:
            return "ignored"
        event = remote_action(
            status, agent, state, inbox.agents.is_chatwoot_agent, assigned=assignee_news
        )
        if event is None:
            # Not an agent's decision, or nothing for Baton to do, yet Chatwoot now shows
            # something else than Baton has (Chatwoot reopens a snoozed or resolved
            # conversation by itself when the customer writes; an agent resolved a conversation
            # the bot already holds): show Baton's state again.
            await self._restore(inbox, state)
            return "ignored"
        try:
            await self._conversations.apply(
                twin.conversation_id,
                event,
                precondition=lambda s: chatwoot_may_act(s, inbox.agents.is_chatwoot_agent),
                loaded=state,
            )
        except PreconditionFailed as exc:
            await self._restore(inbox, exc.state)
            return "refused"
        except UnknownConversation:
            return "ignored"
        return "applied"

    async def _restore(self, inbox: Inbox, state: ConversationState) -> None:
        try:
            await self._mirror.restore(inbox, state)
        except Poison as exc:
            log.warning("chatwoot.restore_refused", error=str(exc))


def _same_inbox(payload: JSON, inbox: Inbox) -> bool:
    """Whether a callback is about the inbox this number is bridged to (when it says)."""
    account = payload.get("account")
    if isinstance(account, dict) and account.get("id") not in (None, inbox.config.account_id):
        return False
    inbox_id: Any = payload.get("inbox_id")
    if inbox_id is None and isinstance(payload.get("inbox"), dict):
        inbox_id = payload["inbox"].get("id")
    if inbox_id is None and isinstance(payload.get("conversation"), dict):
        inbox_id = payload["conversation"].get("inbox_id")
    return inbox_id in (None, inbox.config.inbox_id)


def _timestamp(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            from datetime import datetime

            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return None
    return None


def _email(user: Any) -> str | None:
    return str(user["email"]) if isinstance(user, dict) and user.get("email") else None
