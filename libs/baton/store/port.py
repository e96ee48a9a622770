"""The store port: the only way services reach persistent state. No SQL beyond the adapters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

from baton.handoff.state import ConversationState
from baton.handoff.timers import Timer, TimerKind
from baton.knowledge import Knowledge
from baton.store.account_records import (
    AgentAccount,
    ConversationExtras,
    DeskSession,
    InboxCounts,
    InboxItem,
    InboxQuery,
    NewSession,
)
from baton.store.audit_records import AuditEntry
from baton.store.chatwoot_records import ChatwootConversation, MirroredMessage
from baton.store.console_records import (
    ConversationPage,
    ConversationQuery,
    ConversationSummary,
    MessagePage,
)
from baton.store.event_log_records import EventLogBounds, LoggedEvent, NewLoggedEvent
from baton.store.handoff_records import (
    DueTimer,
    EchoOutcome,
    NewEcho,
    OutgoingMessage,
    PendingEffect,
    StoredInbound,
)
from baton.store.history_records import (
    ChunkStart,
    ContactChange,
    HistoryRow,
    NumberHistory,
    Onboarding,
    Resolution,
    SyncClaim,
    SyncExpiry,
    SyncOutcome,
    SyncRequestState,
    SyncType,
)
from baton.store.knowledge_records import PastAnswer, StoredKnowledge
from baton.store.media_records import MediaRecord, NewMedia
from baton.store.ops_records import DlqReplay
from baton.store.outbox_records import OutboundClaim
from baton.store.records import (
    Conversation,
    NewInbound,
    NewOutbound,
    StatusUpdate,
    StoredMessage,
)
from baton.store.search_records import MessageSearch, SearchPage
from baton.store.waba_records import (
    MarketingPreference,
    NumberChange,
    NumberChangeResult,
    TemplateCategoryUpdate,
    TemplateStatus,
    TemplateStatusUpdate,
)
from baton.store.workflow_records import (
    AgentPresence,
    NewNote,
    Presence,
    PresenceChange,
    QueuedConversation,
    ServiceResolution,
    StoredNote,
    StoredSummary,
)
from baton.types import ConversationId, Mode, PhoneNumberId, WaId, Wamid


class Store(Protocol):
    """Persistence contract of every store adapter (PostgreSQL today; see `open_store`)."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the backing database answers."""
        ...

    async def conversation(self, phone_number_id: PhoneNumberId, wa_id: WaId) -> Conversation:
        """Get or create the conversation of one customer with one business number."""
        ...

    async def conversation_by_id(self, conversation_id: ConversationId) -> Conversation | None: ...

    async def record_inbound(self, message: NewInbound) -> tuple[Conversation, bool]:
        """Store a live customer message once; returns (conversation, stored_now)."""
        ...

    async def recent_messages(
        self, conversation_id: ConversationId, *, limit: int, before: datetime | None = None
    ) -> Sequence[StoredMessage]:
        """The latest messages of a conversation, oldest first."""
        ...

    async def record_status(self, update: StatusUpdate) -> bool:
        """Remember a delivery status once; applies it to the message if it ranks higher."""
        ...

    async def begin_outbound(self, message: NewOutbound) -> StoredMessage:
        """Record an outbound send before calling Meta; returns the existing row on a repeat."""
        ...

    async def complete_outbound(
        self, idempotency_key: str, wamid: Wamid, sent_at: datetime
    ) -> None:
        """Attach WhatsApp's id to a sent message (and any status that arrived before it)."""
        ...

    async def fail_outbound(
        self, idempotency_key: str, *, error_code: int | None, reason: str
    ) -> None: ...

    async def hand_to_human(self, conversation_id: ConversationId, *, expected_epoch: int) -> bool:
        """Bot mode → human mode (new epoch), only if still in bot mode at `expected_epoch`."""
        ...

    async def record_raw_change(
        self,
        *,
        field: str,
        phone_number_id: PhoneNumberId | None,
        dedupe_key: str,
        value: dict[str, Any],
    ) -> bool:
        """Keep a webhook change verbatim (history, contacts) once per dedupe key."""
        ...

    # --- history (Coexistence onboarding, sync requests, backlog import, contacts) ---------

    async def onboard_number(
        self,
        phone_number_id: PhoneNumberId,
        *,
        now: datetime,
        deadline: datetime,
        display_phone_number: str | None = None,
        waba_id: str | None = None,
    ) -> tuple[Onboarding, bool]:
        """Record an onboarding and queue both syncs; (existing, False) if already onboarded."""
        ...

    async def learn_number(
        self, phone_number_id: PhoneNumberId, *, display_phone_number: str, waba_id: str | None
    ) -> None:
        """Remember the display number and WABA seen in a webhook."""
        ...

    async def disable_number(
        self,
        *,
        phone_number_id: PhoneNumberId | None,
        display_phone_number: str | None,
        reason: str,
        now: datetime,
    ) -> list[PhoneNumberId]:
        """Offboard (PARTNER_REMOVED): returns the numbers newly disabled."""
        ...

    async def number_disabled(self, phone_number_id: PhoneNumberId) -> bool:
        """True once the number was offboarded and not onboarded again (router/outbox check)."""
        ...

    async def number_history(self, phone_number_id: PhoneNumberId) -> NumberHistory | None:
        """Onboarding, sync requests and import progress of one number."""
        ...

    async def numbers_history(
        self, *, onboarded_since: datetime | None = None
    ) -> list[NumberHistory]:
        """The same for every number onboarded (since a time) or sending history."""
        ...

    async def claim_sync_requests(
        self, *, now: datetime, limit: int = 10, phone_number_id: PhoneNumberId | None = None
    ) -> list[SyncClaim]:
        """Move due sync requests to `sending`; only the claimer may send them."""
        ...

    async def finish_sync_request(
        self, claim: SyncClaim, outcome: SyncOutcome, *, now: datetime
    ) -> bool:
        """Record what became of a claimed attempt."""
        ...

    async def expire_sync_requests(
        self, *, now: datetime, lease_seconds: float
    ) -> list[SyncExpiry]:
        """Pending past the deadline → missed; sending past the lease → unclear."""
        ...

    async def resolve_sync_request(
        self,
        phone_number_id: PhoneNumberId,
        sync_type: SyncType,
        resolution: Resolution,
        *,
        note: str,
        now: datetime,
    ) -> SyncRequestState | None:
        """A person's decision on an unclear or failed sync request."""
        ...

    async def note_history_arrived(self, phone_number_id: PhoneNumberId, *, now: datetime) -> bool:
        """History is arriving: settle a history sync request still open as accepted."""
        ...

    async def begin_history_chunk(self, chunk: ChunkStart) -> bool:
        """Register a change item; False if it was imported completely before."""
        ...

    async def store_history_rows(
        self,
        phone_number_id: PhoneNumberId,
        chunk_key: str,
        rows: Sequence[HistoryRow],
        *,
        fill_placeholders: bool = False,
    ) -> int:
        """Store one batch of backlog messages once each; returns how many were new."""
        ...

    async def complete_history_chunk(
        self, phone_number_id: PhoneNumberId, chunk_key: str, *, rejected: int, now: datetime
    ) -> None: ...

    async def record_contacts(
        self, phone_number_id: PhoneNumberId, changes: Sequence[ContactChange]
    ) -> int:
        """Apply Business App address-book changes; newer wins."""
        ...

    async def contact_names(
        self, phone_number_id: PhoneNumberId, wa_ids: Sequence[WaId]
    ) -> dict[WaId, str]:
        """Address-book names of these customers (for the agent view)."""
        ...

    # --- handoff: conversation state, timers, transactional outbox (issue 3) ---------------

    async def load_conversation_state(
        self, conversation_id: ConversationId
    ) -> ConversationState | None:
        """The conversation's handoff state (a fresh bot state if never saved); None if unknown."""
        ...

    async def save_conversation_state(
        self,
        state: ConversationState,
        *,
        expected_version: int,
        timers: Sequence[Timer] | None,
        effects: Sequence[OutgoingMessage],
        relay_after: datetime,
        routed: Sequence[Wamid] = (),
    ) -> list[PendingEffect] | None:
        """Compare-and-set save: state, timers, queued effects and routed marks in one transaction.

        `timers` replaces the conversation's armed timers (None: they did not change).
        Returns the queued effects (held by the caller until `relay_after`), or None if the
        stored version is no longer `expected_version` (nothing was written).
        """
        ...

    async def mark_routed(self, phone_number_id: PhoneNumberId, wamids: Sequence[Wamid]) -> None:
        """Remember that these messages went through the state machine (no state change)."""
        ...

    async def record_inbound_for_routing(self, message: NewInbound) -> StoredInbound:
        """Store a live customer message once by wamid and read, with it, its conversation's
        state and whether it already went through the state machine (one round trip unless
        the conversation must be created or renamed first)."""
        ...

    async def record_echo(self, echo: NewEcho) -> tuple[Conversation, EchoOutcome]:
        """Store a Business App echo once (author `app`), or say what its wamid already is."""
        ...

    async def conversation_of_message(
        self, phone_number_id: PhoneNumberId, wamid: Wamid
    ) -> Conversation | None:
        """The conversation a stored message belongs to."""
        ...

    async def claim_due_timers(
        self, now: datetime, *, lease_until: datetime, limit: int
    ) -> list[DueTimer]:
        """Lease timers due at `now` that no live process holds (SKIP LOCKED across routers)."""
        ...

    async def claim_timer(
        self,
        conversation_id: ConversationId,
        kind: TimerKind,
        now: datetime,
        *,
        lease_until: datetime,
    ) -> DueTimer | None:
        """Lease one timer if it is due at `now` and nobody holds it."""
        ...

    async def sync_timers(
        self, conversation_id: ConversationId, *, version: int, timers: Sequence[Timer]
    ) -> bool:
        """Replace the conversation's timers if its state is still at `version`."""
        ...

    async def claim_pending_effects(
        self, now: datetime, *, lease_until: datetime, limit: int
    ) -> list[PendingEffect]:
        """Lease queued effects whose holder let go (crashed or failed to publish), oldest first."""
        ...

    async def delete_pending_effects(self, ids: Sequence[int]) -> None:
        """Forget effects whose publish the broker confirmed."""
        ...

    # --- outbox: claimed sends and their attempts, known numbers, replicas (issue 4) --------

    async def claim_outbound(
        self, message: NewOutbound, *, abandon_after_seconds: float
    ) -> OutboundClaim:
        """Record the send once and open an attempt, unless it is sent, failed or in flight.

        An attempt left open longer than `abandon_after_seconds` (its holder crashed or lost
        Meta's answer) may be claimed again; the claim then says `in_doubt`.
        """
        ...

    async def release_outbound_attempt(self, idempotency_key: str) -> None:
        """Close an open attempt that Meta certainly did not accept (a retryable error)."""
        ...

    async def give_up_outbound(
        self, idempotency_key: str, *, error_code: int | None, reason: str
    ) -> None:
        """Mark a send dead-lettered after bounded retries (a replay may claim it again)."""
        ...

    async def register_outbox_number(self, phone_number_id: PhoneNumberId) -> bool:
        """Remember a business number the outbox has a queue for; True if it is new."""
        ...

    async def outbox_numbers(self) -> Sequence[PhoneNumberId]:
        """Every business number the outbox has a queue for."""
        ...

    async def outbox_heartbeat(self, replica_id: str, *, ttl_seconds: float) -> Sequence[str]:
        """Say this outbox replica is alive; returns the replicas seen within `ttl_seconds`."""
        ...

    async def outbox_leave(self, replica_id: str) -> None:
        """Forget a replica that stops cleanly, so the others rebalance at once."""
        ...

    # --- console (the agent API: listing and paged history) ---------------------------------

    async def list_conversations(self, query: ConversationQuery) -> ConversationPage:
        """Conversations matching `query`, newest live activity first, one keyset page."""
        ...

    async def conversation_summary(
        self, conversation_id: ConversationId
    ) -> ConversationSummary | None:
        """One conversation as agents list it (None if unknown)."""
        ...

    async def message_page(
        self,
        conversation_id: ConversationId,
        *,
        limit: int,
        before: tuple[datetime, int] | None = None,
    ) -> MessagePage:
        """Up to `limit` messages older than `before` (sent_at, id), oldest first."""
        ...

    # --- desk (issue 11: agents' accounts, browser sessions, the inbox) ---------------------

    async def create_account(self, account: AgentAccount) -> bool:
        """Add an agent account; False if one with that id exists (nothing changes)."""
        ...

    async def account(self, agent_id: str) -> AgentAccount | None:
        """One account, enabled or not."""
        ...

    async def list_accounts(self) -> Sequence[AgentAccount]:
        """Every account, by id."""
        ...

    async def set_account_password(self, agent_id: str, password_hash: str) -> bool:
        """Replace the password hash and end the account's sessions; False if unknown."""
        ...

    async def set_account_disabled(self, agent_id: str, disabled: bool) -> bool:
        """Disable (ending its sessions) or enable an account; False if unknown."""
        ...

    async def create_session(self, session: NewSession) -> None:
        """Record a signed-in browser session."""
        ...

    async def desk_session(self, token_hash: bytes, now: datetime) -> DeskSession | None:
        """The unexpired session of an enabled account with this token hash, if any."""
        ...

    async def renew_session(
        self, token_hash: bytes, seen_at: datetime, expires_at: datetime
    ) -> None:
        """Move a session's last use and expiry."""
        ...

    async def delete_session(self, token_hash: bytes) -> None:
        """Sign a session out."""
        ...

    async def delete_expired_sessions(self, now: datetime) -> int:
        """Forget sessions that expired; returns how many."""
        ...

    async def record_sign_in_failure(
        self, keys: Sequence[str], at: datetime, *, forget_before: datetime
    ) -> None:
        """Count one failed sign-in under each key, forgetting those older than the window."""
        ...

    async def sign_in_failures(self, keys: Sequence[str], since: datetime) -> dict[str, int]:
        """Failed sign-ins per key since `since` (every key present)."""
        ...

    async def clear_sign_in_failures(self, key: str) -> None:
        """Forget a key's failures (a successful sign-in)."""
        ...

    async def desk_inbox(self, query: InboxQuery) -> list[InboxItem]:
        """Conversations of one inbox view, with this agent's unread counts."""
        ...

    async def desk_counts(
        self, agent_id: str, phone_number_ids: tuple[str, ...] | None
    ) -> InboxCounts:
        """How many conversations wait, are the agent's, and unread among them."""
        ...

    async def conversation_extras(self, conversation_id: ConversationId) -> ConversationExtras:
        """The newest customer message time and newest message id of a conversation."""
        ...

    async def desk_numbers(self) -> list[str]:
        """Every business number that has conversations."""
        ...

    async def mark_read(self, agent_id: str, conversation_id: ConversationId, through: int) -> None:
        """The agent has seen the conversation's messages up to id `through` (never moves back)."""
        ...

    # --- mcp/search: the console's audit log and full-text message search (issue 14) ------

    async def record_audit(self, entry: AuditEntry) -> None:
        """Append one accepted console action (API or MCP) to the audit log."""
        ...

    async def audit_trail(
        self, conversation_id: ConversationId, *, limit: int = 500
    ) -> tuple[AuditEntry, ...]:
        """A conversation's audit log, oldest first."""
        ...

    async def search_messages(self, search: MessageSearch) -> SearchPage:
        """Messages of one number matching a full-text query in its language, newest first."""
        ...

    # --- operations: dead-letter replays (issue 17) ----------------------------------------

    async def record_dlq_replay(self, replay: DlqReplay) -> None:
        """Record that an operator sent a dead-lettered message back."""
        ...

    async def dlq_replays(self, queue: str | None = None, *, limit: int = 100) -> list[DlqReplay]:
        """The latest replays, newest first."""
        ...

    # --- knowledge: per-number knowledge bases and past-answer retrieval (issue 15) --------

    async def load_knowledge(self, phone_number_id: PhoneNumberId) -> StoredKnowledge | None:
        """The knowledge base saved through the console for this number, if any."""
        ...

    async def save_knowledge(
        self, phone_number_id: PhoneNumberId, knowledge: Knowledge, *, by: str
    ) -> StoredKnowledge:
        """Replace this number's stored knowledge base."""
        ...

    async def delete_knowledge(self, phone_number_id: PhoneNumberId) -> bool:
        """Forget the stored knowledge base (the numbers file's applies again)."""
        ...

    async def index_past_answers(
        self,
        *,
        languages: Mapping[PhoneNumberId, str],
        default_language: str,
        skip_bot_prefixes: Sequence[str] = (),
        batch: int = 5000,
    ) -> tuple[int, bool]:
        """One pass pairing new business answers with the customer's words before them:
        how many pairs it added, and whether more new rows wait."""
        ...

    async def retrieve_past_answers(
        self,
        phone_number_id: PhoneNumberId,
        text: str,
        *,
        language: str,
        limit: int,
        candidates: int = 50,
    ) -> list[PastAnswer]:
        """This number's past answers whose questions best match `text` (never another's)."""
        ...

    # --- chatwoot: the bridge's id links, conversation twins and expected echoes (issue 13) --

    async def chatwoot_link(self, scope: str, kind: str, baton_key: str) -> int | None:
        """The Chatwoot id recorded for a Baton contact or message key, if any."""
        ...

    async def save_chatwoot_link(
        self, scope: str, kind: str, baton_key: str, chatwoot_id: int
    ) -> int:
        """Record a link once; returns the id recorded first (this one, or an earlier one)."""
        ...

    async def chatwoot_twin(self, conversation_id: ConversationId) -> ChatwootConversation | None:
        """The Chatwoot conversation mirroring this Baton conversation, if any."""
        ...

    async def chatwoot_twin_by_remote(
        self, scope: str, chatwoot_conversation_id: int
    ) -> ChatwootConversation | None:
        """The twin of a Chatwoot conversation of this inbox, if Baton created it."""
        ...

    async def save_chatwoot_twin(
        self,
        conversation_id: ConversationId,
        scope: str,
        chatwoot_conversation_id: int,
        *,
        status: str | None,
    ) -> ChatwootConversation:
        """Link a Baton conversation to its Chatwoot conversation (the first link in a scope wins)."""
        ...

    async def note_chatwoot_remote(
        self,
        conversation_id: ConversationId,
        *,
        status: str | None = None,
        assignee_id: int | None = None,
        set_assignee: bool = False,
    ) -> None:
        """Record the status / assignee the Chatwoot conversation now has."""
        ...

    async def advance_chatwoot_clock(
        self, conversation_id: ConversationId, remote_updated_at: float
    ) -> bool:
        """Move the twin's remote clock forward; False for a callback older than one applied."""
        ...

    async def expect_chatwoot_echo(
        self, scope: str, chatwoot_conversation_id: int, change: str, *, expires_at: datetime
    ) -> None:
        """The bridge changed this in Chatwoot: its callback will be an echo, not news."""
        ...

    async def take_chatwoot_echo(
        self, scope: str, chatwoot_conversation_id: int, change: str, *, now: datetime
    ) -> bool:
        """Consume one unexpired expected echo of this change; True if there was one."""
        ...

    async def outbound_by_key(self, idempotency_key: str) -> MirroredMessage | None:
        """An outbound message by its idempotency key (body, author, agent)."""
        ...

    async def imported_messages(
        self, conversation_id: ConversationId, *, limit: int
    ) -> Sequence[MirroredMessage]:
        """A conversation's imported backlog, oldest first."""
        ...

    # --- media: files of media messages and their downloads (issue 18) -----------------------

    async def register_media(self, media: NewMedia) -> MediaRecord:
        """Record a media message once (by wamid or send key); returns the existing row too."""
        ...

    async def media_by_id(self, media_id: int) -> MediaRecord | None: ...

    async def media_by_wamids(
        self, phone_number_id: PhoneNumberId, wamids: Sequence[Wamid]
    ) -> dict[Wamid, MediaRecord]:
        """The media rows of these inbound messages (missing ones are not registered yet)."""
        ...

    async def media_attempted(self, media_id: int) -> int:
        """Count one download attempt; returns the attempts so far."""
        ...

    async def media_available(
        self, media_id: int, *, blob_key: str, size: int, sha256: str, mime_type: str | None
    ) -> None:
        """The file is in the blob store under `blob_key`."""
        ...

    async def media_unavailable(self, media_id: int, *, reason: str) -> None:
        """Given up on the download (never downgrades an available file)."""
        ...

    async def media_uploaded(self, media_id: int, *, meta_media_id: str) -> None:
        """An agent's file was uploaded to Meta under this media id (sent by id)."""
        ...

    async def media_described(
        self, media_id: int, *, transcript: str | None = None, description: str | None = None
    ) -> None:
        """Keep a voice note's transcript or an image's description with the file."""
        ...

    # --- stats (aggregate counts behind the services' gauges, issue 6) ----------------------

    async def conversations_by_mode(self) -> dict[Mode, int]:
        """How many conversations each mode holds now (every mode present, 0 when none)."""
        ...

    # --- reliability: the console's shared event log (issue 10) -------------------------------

    async def append_console_event(self, event: NewLoggedEvent) -> int | None:
        """Log an agents' event once (by message id); its global id, or None if logged before."""
        ...

    async def console_events_after(
        self,
        after: int,
        *,
        limit: int,
        numbers: frozenset[PhoneNumberId] | None = None,
        conversation_id: ConversationId | None = None,
    ) -> list[LoggedEvent]:
        """Logged events with an id above `after`, oldest first, optionally filtered."""
        ...

    async def console_event_bounds(self) -> EventLogBounds:
        """The oldest and newest ids the log still holds."""
        ...

    async def prune_console_events(self, *, older_than: datetime, keep: int) -> int:
        """Drop events older than `older_than` or beyond the newest `keep` (never the newest)."""
        ...

    # --- reliability: account-level webhooks (issue 10) ----------------------------------------

    async def record_template_status(self, update: TemplateStatusUpdate) -> bool:
        """Keep a template's new status (an older one never overwrites a newer); True if applied."""
        ...

    async def record_template_category(self, update: TemplateCategoryUpdate) -> bool:
        """Keep a template's new category; True if applied."""
        ...

    async def template_status(
        self, waba_id: str, name: str, language: str | None = None
    ) -> TemplateStatus | None:
        """What Baton knows of a WABA's template by name (and language), if anything."""
        ...

    async def template_statuses(self, waba_id: str) -> tuple[TemplateStatus, ...]:
        """Every template Baton has heard of for a WABA, by name."""
        ...

    async def record_marketing_preference(self, preference: MarketingPreference) -> bool:
        """Keep a customer's marketing stop/resume (the newest wins); True if applied."""
        ...

    async def marketing_opted_out(self, phone_number_id: PhoneNumberId, wa_id: WaId) -> bool:
        """Whether the customer stopped marketing messages from this number."""
        ...

    async def move_customer(self, change: NumberChange) -> NumberChangeResult:
        """Give the customer's conversation (history and state) their new wa_id, once per notice."""
        ...

    # --- workflow: presence, the fair queue, assignment, notes, resolutions (issue 12) -------

    async def set_presence(self, agent_id: str, status: Presence, now: datetime) -> PresenceChange:
        """Set an agent's presence (a heartbeat too); returns it with the previous one."""
        ...

    async def heartbeat(self, agent_id: str, now: datetime) -> bool:
        """Refresh an agent's heartbeat; False if the agent never set a presence."""
        ...

    async def expire_presence(self, now: datetime, *, timeout: timedelta) -> list[PresenceChange]:
        """Turn agents whose last heartbeat is older than `timeout` offline; returns them."""
        ...

    async def agent_presences(self) -> list[AgentPresence]:
        """Every stored presence (an agent without one is offline)."""
        ...

    async def agent_loads(self) -> dict[str, int]:
        """How many human-mode conversations each agent holds (agents holding none are absent)."""
        ...

    async def held_conversations(self, agent_id: str) -> list[ConversationId]:
        """The human-mode conversations this agent holds."""
        ...

    async def mark_assigned(self, agent_id: str, at: datetime) -> None:
        """Remember the agent's last auto-assignment (round-robin among equally loaded)."""
        ...

    async def unassigned_queue(
        self, phone_number_ids: Sequence[PhoneNumberId], *, limit: int
    ) -> list[QueuedConversation]:
        """Human-mode conversations nobody holds on these numbers, longest wait first."""
        ...

    def assignment_lock(self) -> AbstractAsyncContextManager[None]:
        """Held while deciding anything that gives an agent one more conversation (all replicas)."""
        ...

    async def waiting_queue(self, query: ConversationQuery) -> ConversationPage:
        """Waiting conversations, longest wait first; the keyset is (waiting_since, id)."""
        ...

    async def customer_window_expires_at(self, conversation_id: ConversationId) -> datetime | None:
        """When the customer-service window closes, from the stored customer messages
        (24 h after the newest, 72 h after one from a click-to-WhatsApp ad); None if closed."""
        ...

    async def add_note(self, note: NewNote) -> StoredNote:
        """Store a private note once per idempotency key (author `note`, never sent)."""
        ...

    async def record_resolution(self, resolution: ServiceResolution) -> bool:
        """Record an ended human service once per (conversation, epoch); True if new."""
        ...

    async def resolutions(self, conversation_id: ConversationId) -> list[ServiceResolution]:
        """The conversation's ended services, oldest first."""
        ...

    async def save_handoff_summary(
        self, conversation_id: ConversationId, epoch: int, summary: dict[str, object]
    ) -> bool:
        """Keep the structured summary of the handoff at `epoch` (first one wins)."""
        ...

    async def handoff_summary(self, conversation_id: ConversationId) -> StoredSummary | None:
        """The summary of the conversation's latest handoff, if any."""
        ...
