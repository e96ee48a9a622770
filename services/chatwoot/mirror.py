"""Baton → Chatwoot: each conversation event becomes Chatwoot contacts, messages and statuses.

Events arrive in order on `chatwoot.events` (one active consumer, one delivery at a time), so
Chatwoot sees a conversation's messages and state changes in the order Baton made them. Every
post is recorded in the store's links once it succeeded and never repeated; a call Chatwoot may
have done despite an error (timeout, 5xx) is looked up before it is tried again. While Chatwoot
is down or slow the bridge retries the same event with the project's backoff and lags behind
(`baton_chatwoot_lag_seconds`); the WhatsApp side never waits for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from baton.backoff import Backoff, wait_or_stop
from baton.broker import Delivery, Poison
from baton.conversations import Conversations
from baton.handoff import ConversationState
from baton.messages import (
    AssigneeChanged,
    MessageReceived,
    MessageSent,
    ModeChanged,
    SendFailed,
    utcnow,
)
from baton.store.chatwoot_records import ChatwootConversation
from baton.store.port import Store
from baton.types import Author, ConversationId, Mode, PhoneNumberId, WaId
from services.chatwoot import metrics
from services.chatwoot.client import ChatwootRejected, ChatwootUnavailable
from services.chatwoot.inboxes import Inbox, Inboxes
from services.chatwoot.sync import TEAM_AGENT, status_for

log = structlog.get_logger()

T = TypeVar("T")

# Our own sends from Chatwoot agents carry this idempotency key prefix: already in Chatwoot.
CHATWOOT_SEND_PREFIX = "chatwoot:"
ECHO_TTL = timedelta(seconds=60)
# The project's one retry policy; a Chatwoot outage is retried at least every 10 s.
RETRY = Backoff(base=0.2, cap=10.0)
HISTORY_LINES_PER_NOTE = 50

# How an agent in Chatwoot tells who spoke: outgoing messages start with a marker.
MARKERS = {
    Author.BOT: "🤖 Bot",
    Author.APP: "📱 Business App (owner)",
    Author.SYSTEM: "📣 Baton notice",
    Author.HUMAN: "👤",
    Author.CUSTOMER: "",
}


def marked(author: Author, body: str, agent_id: str | None = None) -> str:
    """An outgoing message's text as Chatwoot shows it, saying who wrote it."""
    if author is Author.CUSTOMER:
        return body
    if author is Author.HUMAN:
        return f"👤 {agent_id or 'agent'}: {body}"
    return f"{MARKERS[author]}: {body}"


class Mirror:
    """Writes Baton's conversations into each bridged number's Chatwoot inbox."""

    def __init__(
        self,
        store: Store,
        conversations: Conversations,
        inboxes: Inboxes,
        *,
        retry_for_seconds: float,
        history_limit: int,
        stop: asyncio.Event,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._conversations = conversations
        self._inboxes = inboxes
        self._retry_for = retry_for_seconds
        self._history_limit = history_limit
        self._stop = stop
        self._clock = clock
        # Keeps one conversation's changes in order when a callback re-asserts Baton's state
        # while the consumer mirrors the same conversation.
        self._locks: dict[ConversationId, asyncio.Lock] = {}

    # --- the consumer ---------------------------------------------------------------------

    async def on_event(self, delivery: Delivery) -> None:
        """Mirror one `baton.events` delivery (ack when done; Poison when Chatwoot refuses it)."""
        parsed = _parse(delivery)
        if parsed is None:
            return
        inbox = self._inboxes.get(parsed.phone_number_id)
        if inbox is None:
            return  # a number that is not bridged
        happened = getattr(parsed, "at", None)
        started = happened.timestamp() if isinstance(happened, datetime) else time.time()
        metrics.LAG_SECONDS.set(max(0.0, time.time() - started))
        try:
            async with self._lock(parsed.conversation_id):
                await self._mirror(inbox, parsed, started)
        finally:
            metrics.LAG_SECONDS.set(0)

    def _lock(self, conversation_id: ConversationId) -> asyncio.Lock:
        lock = self._locks.get(conversation_id)
        if lock is None:
            if len(self._locks) > 10_000:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[conversation_id] = asyncio.Lock()
        return lock

    async def _mirror(
        self,
        inbox: Inbox,
        event: MessageReceived | ModeChanged | AssigneeChanged | MessageSent | SendFailed,
        started: float,
    ) -> None:
        if isinstance(event, MessageSent) and event.idempotency_key.startswith(
            CHATWOOT_SEND_PREFIX
        ):
            return  # written in Chatwoot by its agent: nothing to mirror
        wa_id = await self._wa_id(event)
        if wa_id is None:
            return
        twin = await self._twin(inbox, event.conversation_id, event.phone_number_id, wa_id, started)
        match event:
            case MessageReceived():
                await self._customer_or_owner(inbox, twin, event, started)
            case MessageSent():
                await self._sent(inbox, twin, event, started)
            case SendFailed():
                await self._failed(inbox, twin, event, started)
            case ModeChanged():
                if event.cause == "bot_handoff":
                    note = f"🤝 Handed to a person: {event.reason or 'no reason given'}"
                    if event.summary:
                        note += f"\n\n{event.summary}"
                    key = f"handoff:{event.conversation_id}:{event.epoch}"
                    await self._post(inbox, twin, key, note, "outgoing", started, private=True)
                await self.show_state(
                    inbox,
                    twin,
                    event.to_mode,
                    event.assignee,
                    event.paused_until,
                    started,
                    occasion=f"epoch{event.epoch}",
                )
            case AssigneeChanged():
                await self.show_state(
                    inbox,
                    twin,
                    Mode.HUMAN,
                    event.assignee,
                    None,
                    started,
                    occasion=f"{event.at:%Y%m%d%H%M%S%f}",
                )

    async def _wa_id(
        self, event: MessageReceived | ModeChanged | AssigneeChanged | MessageSent | SendFailed
    ) -> WaId | None:
        if isinstance(event, MessageReceived | ModeChanged | AssigneeChanged):
            return event.wa_id
        conversation = await self._store.conversation_by_id(event.conversation_id)
        return conversation.wa_id if conversation is not None else None

    # --- what each event writes --------------------------------------------------------------

    async def _customer_or_owner(
        self, inbox: Inbox, twin: ChatwootConversation, event: MessageReceived, started: float
    ) -> None:
        key = f"wamid:{event.wamid}"
        if event.author is Author.CUSTOMER:
            await self._post(inbox, twin, key, event.body, "incoming", started)
        elif event.type == "command":
            note = f"📱 The owner typed a command in the Business App: {event.body}"
            await self._post(inbox, twin, key, note, "outgoing", started, private=True)
        else:
            await self._post(inbox, twin, key, marked(Author.APP, event.body), "outgoing", started)

    async def _sent(
        self, inbox: Inbox, twin: ChatwootConversation, event: MessageSent, started: float
    ) -> None:
        stored = await self._store.outbound_by_key(event.idempotency_key)
        if stored is None:
            log.warning("chatwoot.sent_message_unknown", conversation_id=event.conversation_id)
            return
        text = marked(stored.author, stored.body, stored.agent_id)
        await self._post(inbox, twin, f"out:{event.idempotency_key}", text, "outgoing", started)

    async def _failed(
        self, inbox: Inbox, twin: ChatwootConversation, event: SendFailed, started: float
    ) -> None:
        code = f" (error {event.error_code})" if event.error_code is not None else ""
        stored = await self._store.outbound_by_key(event.idempotency_key)
        what = f": “{stored.body[:200]}”" if stored is not None else ""
        note = f"⚠️ Not delivered to WhatsApp{what}\nReason: {event.reason}{code}"
        key = f"failed:{event.idempotency_key}"
        await self._post(inbox, twin, key, note, "outgoing", started, private=True)

    async def show_state(
        self,
        inbox: Inbox,
        twin: ChatwootConversation,
        mode: Mode,
        assignee: str | None,
        paused_until: datetime | None,
        started: float,
        *,
        occasion: str,
    ) -> None:
        """Make Chatwoot's status and assignee show Baton's mode and holder.

        `occasion` names the Baton change shown, so the note about a holder outside Chatwoot
        is posted once per change.
        """
        status = status_for(mode)
        if twin.remote_status != status:
            until = int(paused_until.timestamp()) if paused_until is not None else None
            await self._expect(inbox, twin, f"status:{status}")
            await self._persist(
                lambda: inbox.client.toggle_status(
                    twin.chatwoot_conversation_id, status, snoozed_until=until
                ),
                started,
            )
            await self._store.note_chatwoot_remote(twin.conversation_id, status=status)
            metrics.MIRRORED.labels(kind="status", outcome="done").inc()
        holder = assignee if mode is Mode.HUMAN else None
        user_id: int | None = None
        if holder is not None and holder != TEAM_AGENT:
            user_id = await self._persist(lambda: inbox.agents.user_id(holder), started)
            if user_id is None:
                note = f"👤 {holder} holds this conversation in Baton (not a Chatwoot agent)."
                key = f"holder:{twin.conversation_id}:{holder}:{occasion}"
                await self._post(inbox, twin, key, note, "outgoing", started, private=True)
        if twin.remote_assignee_id != user_id:
            await self._expect(inbox, twin, f"assignee:{user_id or ''}")
            await self._persist(
                lambda: inbox.client.assign(twin.chatwoot_conversation_id, user_id), started
            )
            await self._store.note_chatwoot_remote(
                twin.conversation_id, assignee_id=user_id, set_assignee=True
            )
            metrics.MIRRORED.labels(kind="assignee", outcome="done").inc()

    async def restore(self, inbox: Inbox, state: ConversationState) -> None:
        """Put Chatwoot back the way Baton has it (a refused or meaningless Chatwoot change)."""
        async with self._lock(state.conversation_id):
            twin = await self._store.chatwoot_twin(state.conversation_id)
            if twin is None:
                return
            await self.show_state(
                inbox,
                twin,
                state.mode,
                state.assignee,
                state.paused_until,
                time.time(),
                occasion=f"epoch{state.epoch}",
            )

    async def _expect(self, inbox: Inbox, twin: ChatwootConversation, change: str) -> None:
        await self._store.expect_chatwoot_echo(
            inbox.scope,
            twin.chatwoot_conversation_id,
            change,
            expires_at=self._clock() + ECHO_TTL,
        )

    # --- contacts and conversations ------------------------------------------------------

    async def twin(
        self, inbox: Inbox, conversation_id: ConversationId, started: float
    ) -> ChatwootConversation | None:
        """The Chatwoot conversation of a Baton conversation, created if needed."""
        conversation = await self._store.conversation_by_id(conversation_id)
        if conversation is None:
            return None
        return await self._twin(
            inbox, conversation_id, conversation.phone_number_id, conversation.wa_id, started
        )

    async def _twin(
        self,
        inbox: Inbox,
        conversation_id: ConversationId,
        phone_number_id: PhoneNumberId,
        wa_id: WaId,
        started: float,
    ) -> ChatwootConversation:
        twin = await self._store.chatwoot_twin(conversation_id)
        if twin is None or twin.scope != inbox.scope:
            contact_id = await self._contact(inbox, conversation_id, wa_id, started)
            state = await self._conversations.state(conversation_id)
            status = status_for(state.mode if state is not None else Mode.BOT)
            remote_id = await self._persist(
                lambda: self._find_or_create_conversation(
                    inbox, contact_id, conversation_id, phone_number_id, wa_id, status
                ),
                started,
            )
            twin = await self._store.save_chatwoot_twin(
                conversation_id, inbox.scope, remote_id, status=status
            )
        if inbox.config.import_history:
            await self._history(inbox, twin, started)
        return twin

    async def _contact(
        self, inbox: Inbox, conversation_id: ConversationId, wa_id: WaId, started: float
    ) -> int:
        known = await self._store.chatwoot_link(inbox.scope, "contact", wa_id)
        if known is not None:
            return known
        conversation = await self._store.conversation_by_id(conversation_id)
        name = (conversation.customer_name if conversation is not None else None) or f"+{wa_id}"

        async def find_or_create() -> int:
            for contact in await inbox.client.search_contacts(wa_id):
                if str(contact.get("identifier")) == wa_id:
                    return int(contact["id"])
            try:
                return await inbox.client.create_contact(
                    name=name, phone_number=f"+{wa_id}", identifier=wa_id
                )
            except ChatwootRejected as exc:
                if exc.status != 422:
                    raise
                # Taken: created meanwhile (or its phone number belongs to a contact without
                # our identifier); search again, by phone too.
                for contact in await inbox.client.search_contacts(f"+{wa_id}"):
                    if (
                        str(contact.get("identifier")) == wa_id
                        or contact.get("phone_number") == f"+{wa_id}"
                    ):
                        return int(contact["id"])
                raise

        contact_id = await self._persist(find_or_create, started)
        metrics.MIRRORED.labels(kind="contact", outcome="done").inc()
        return await self._store.save_chatwoot_link(inbox.scope, "contact", wa_id, contact_id)

    async def _find_or_create_conversation(
        self,
        inbox: Inbox,
        contact_id: int,
        conversation_id: ConversationId,
        phone_number_id: PhoneNumberId,
        wa_id: WaId,
        status: str,
    ) -> int:
        # A conversation created by a bridge that died before recording it carries our id.
        for found in await inbox.client.contact_conversations(contact_id):
            attributes = found.get("custom_attributes") or {}
            if found.get("inbox_id") == inbox.config.inbox_id and str(
                attributes.get("baton_conversation_id")
            ) == str(conversation_id):
                return int(found["id"])
        created = await inbox.client.create_conversation(
            contact_id=contact_id,
            source_id=wa_id,
            status=status,
            custom_attributes={
                "baton_conversation_id": conversation_id,
                "whatsapp_number": phone_number_id,
            },
        )
        metrics.MIRRORED.labels(kind="conversation", outcome="done").inc()
        return created

    async def _history(self, inbox: Inbox, twin: ChatwootConversation, started: float) -> None:
        done_key = f"history:{twin.conversation_id}:done"
        if await self._store.chatwoot_link(inbox.scope, "message", done_key) is not None:
            return
        backlog = await self._store.imported_messages(
            twin.conversation_id, limit=self._history_limit
        )
        lines = [
            f"[{m.sent_at:%Y-%m-%d %H:%M}] "
            f"{'Customer' if m.author is Author.CUSTOMER else 'Business'}: {m.body}"
            for m in backlog
        ]
        # Private notes: the whole backlog in a few posts, and no agent is notified.
        for index in range(0, len(lines), HISTORY_LINES_PER_NOTE):
            chunk = lines[index : index + HISTORY_LINES_PER_NOTE]
            note = "🗂 Imported WhatsApp history\n" + "\n".join(chunk)
            key = f"history:{twin.conversation_id}:{index}"
            await self._post(inbox, twin, key, note, "outgoing", started, private=True)
        await self._store.save_chatwoot_link(inbox.scope, "message", done_key, 0)

    # --- posting and retrying ------------------------------------------------------------

    async def post_note(
        self, inbox: Inbox, twin: ChatwootConversation, key: str, text: str
    ) -> None:
        """A private note, once per key (callbacks use it to explain a refusal)."""
        await self._post(inbox, twin, key, text, "outgoing", time.time(), private=True)

    async def _post(
        self,
        inbox: Inbox,
        twin: ChatwootConversation,
        key: str,
        content: str,
        message_type: str,
        started: float,
        *,
        private: bool = False,
    ) -> None:
        kind = "note" if private else "message"
        if await self._store.chatwoot_link(inbox.scope, "message", key) is not None:
            metrics.MIRRORED.labels(kind=kind, outcome="duplicate").inc()
            return
        maybe_posted = False

        async def post() -> int:
            nonlocal maybe_posted
            if maybe_posted:
                # The previous attempt may have landed: look before posting again.
                for message in await inbox.client.messages(twin.chatwoot_conversation_id):
                    attributes = message.get("content_attributes") or {}
                    if isinstance(attributes, dict) and attributes.get("baton_key") == key:
                        return int(message["id"])
            try:
                return await inbox.client.create_message(
                    twin.chatwoot_conversation_id,
                    content=content or "(empty message)",
                    message_type=message_type,
                    private=private,
                    content_attributes={"baton_key": key},
                )
            except ChatwootUnavailable as exc:
                maybe_posted = maybe_posted or exc.ambiguous
                raise

        remote_id = await self._persist(post, started)
        await self._store.save_chatwoot_link(inbox.scope, "message", key, remote_id)
        metrics.MIRRORED.labels(kind=kind, outcome="done").inc()

    async def _persist(self, call: Callable[[], Awaitable[T]], started: float) -> T:
        """Call Chatwoot until it answers; a refusal is Poison (retrying cannot help)."""
        attempt = 0
        first_failure: float | None = None
        while True:
            attempt += 1
            try:
                return await call()
            except ChatwootRejected as exc:
                metrics.API_ERRORS.labels(error="rejected").inc()
                raise Poison(f"Chatwoot refused: {exc}") from exc
            except ChatwootUnavailable as exc:
                metrics.API_ERRORS.labels(error="unavailable").inc()
                now = time.monotonic()
                first_failure = first_failure if first_failure is not None else now
                metrics.LAG_SECONDS.set(max(0.0, time.time() - started))
                if self._stop.is_set() or now - first_failure > self._retry_for:
                    raise  # the consumer requeues the delivery; nothing is lost
                delay = RETRY.delay(attempt)
                log.info("chatwoot.retrying", attempt=attempt, error=str(exc), delay=delay)
                await wait_or_stop(self._stop, delay)


_TYPES: dict[
    str,
    type[MessageReceived]
    | type[ModeChanged]
    | type[AssigneeChanged]
    | type[MessageSent]
    | type[SendFailed],
] = {
    cls.TYPE: cls
    for cls in (MessageReceived, ModeChanged, AssigneeChanged, MessageSent, SendFailed)
}


def _parse(
    delivery: Delivery,
) -> MessageReceived | ModeChanged | AssigneeChanged | MessageSent | SendFailed | None:
    cls = _TYPES.get(delivery.type or delivery.routing_key)
    if cls is None:
        return None  # an event the bridge does not mirror (statuses, waiting, ...)
    return cls.model_validate_json(delivery.body)  # a ValidationError dead-letters it
