"""The store port: the only way services reach persistent state. No SQL beyond the adapters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from baton.handoff.state import ConversationState
from baton.handoff.timers import Timer, TimerKind
from baton.store.console_records import (
    ConversationPage,
    ConversationQuery,
    ConversationSummary,
    MessagePage,
)
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
from baton.store.outbox_records import OutboundClaim
from baton.store.records import (
    Conversation,
    NewInbound,
    NewOutbound,
    StatusUpdate,
    StoredMessage,
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

    # --- stats (aggregate counts behind the services' gauges, issue 6) ----------------------

    async def conversations_by_mode(self) -> dict[Mode, int]:
        """How many conversations each mode holds now (every mode present, 0 when none)."""
        ...
