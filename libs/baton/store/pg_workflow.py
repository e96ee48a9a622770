"""The agent workflow (issue 12) on PostgreSQL: presence, the fair queue, notes, resolutions,
handoff summaries, and the lock that makes auto-assignment exact across replicas.

Who holds a conversation is only ever written by the handoff shell's compare-and-set save:
this area reads loads and queues, and serializes every decision that gives an agent one more
conversation under one advisory lock, so a load read under the lock stays true until the
assignment is saved (loads only shrink without the lock).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import asyncpg

from baton.store.console_records import ConversationPage, ConversationQuery
from baton.store.pg_console import _SUMMARY_SELECT, _summary
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
from baton.types import Author, ConversationId, PhoneNumberId

# Any constant works; it only has to be the same for every process assigning conversations.
ASSIGNMENT_LOCK = 0x6261746F6E_0C  # "baton" + issue 12

_SET_PRESENCE = """
WITH old AS (SELECT status FROM agent_presence WHERE agent_id = $1 FOR UPDATE)
INSERT INTO agent_presence (agent_id, status, heartbeat_at, changed_at)
VALUES ($1, $2, $3, $3)
ON CONFLICT (agent_id) DO UPDATE SET status = EXCLUDED.status, heartbeat_at = EXCLUDED.heartbeat_at,
    changed_at = CASE WHEN agent_presence.status = EXCLUDED.status
                      THEN agent_presence.changed_at ELSE EXCLUDED.changed_at END
RETURNING (SELECT status FROM old) AS previous
"""

_EXPIRE = """
WITH stale AS (
    SELECT agent_id, status FROM agent_presence
    WHERE status <> 'offline' AND heartbeat_at < $2
    FOR UPDATE SKIP LOCKED
)
UPDATE agent_presence p SET status = 'offline', changed_at = $1
FROM stale WHERE p.agent_id = stale.agent_id
RETURNING p.agent_id, stale.status AS previous
"""

# Keyset on (waiting_since, id): the longest wait first, a page never repeats or skips one.
_WAITING = (
    _SUMMARY_SELECT
    + """
 WHERE c.waiting_since IS NOT NULL
   AND ($1::text IS NULL OR c.mode = $1)
   AND ($2::text[] IS NULL OR c.phone_number_id = ANY($2))
   AND ($3::text IS NULL OR c.assignee = $3)
   AND (NOT $4 OR (c.mode = 'human' AND c.assignee IS NULL))
   AND ($6::bigint IS NULL OR (c.waiting_since, c.id) > ($5, $6))
 ORDER BY c.waiting_since, c.id
 LIMIT $7
"""
)

_ADD_NOTE = """
INSERT INTO messages (conversation_id, phone_number_id, direction, author, type, body, sent_at,
                      idempotency_key, agent_id)
VALUES ($1, $2, 'out', $3, 'note', $4, $5, $6, $7)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, sent_at
"""


def _presence(row: asyncpg.Record) -> AgentPresence:
    return AgentPresence(
        agent_id=row["agent_id"],
        status=Presence(row["status"]),
        heartbeat_at=row["heartbeat_at"],
        changed_at=row["changed_at"],
        last_assigned_at=row["last_assigned_at"],
    )


class PostgresWorkflowStore:
    """Mixin of `PostgresStore` for the agent workflow (uses `self._pool`)."""

    _pool: asyncpg.Pool
    _assigning: asyncio.Lock  # this process's turn at the assignment lock

    # --- presence ------------------------------------------------------------------------

    async def set_presence(self, agent_id: str, status: Presence, now: datetime) -> PresenceChange:
        async with self._pool.acquire() as conn, conn.transaction():
            previous = await conn.fetchval(_SET_PRESENCE, agent_id, status.value, now)
        return PresenceChange(
            agent_id=agent_id,
            status=status,
            previous=Presence(previous) if previous is not None else None,
        )

    async def heartbeat(self, agent_id: str, now: datetime) -> bool:
        updated = await self._pool.fetchval(
            "UPDATE agent_presence SET heartbeat_at = GREATEST(heartbeat_at, $2)"
            " WHERE agent_id = $1 RETURNING status",
            agent_id,
            now,
        )
        return updated is not None

    async def expire_presence(self, now: datetime, *, timeout: timedelta) -> list[PresenceChange]:
        rows = await self._pool.fetch(_EXPIRE, now, now - timeout)
        return [
            PresenceChange(
                agent_id=r["agent_id"], status=Presence.OFFLINE, previous=Presence(r["previous"])
            )
            for r in rows
        ]

    async def agent_presences(self) -> list[AgentPresence]:
        rows = await self._pool.fetch("SELECT * FROM agent_presence ORDER BY agent_id")
        return [_presence(r) for r in rows]

    # --- loads, the queue and the assignment lock -------------------------------------------

    async def agent_loads(self) -> dict[str, int]:
        rows = await self._pool.fetch(
            "SELECT assignee, count(*) AS n FROM conversations"
            " WHERE mode = 'human' AND assignee IS NOT NULL GROUP BY assignee"
        )
        return {r["assignee"]: r["n"] for r in rows}

    async def held_conversations(self, agent_id: str) -> list[ConversationId]:
        rows = await self._pool.fetch(
            "SELECT id FROM conversations WHERE mode = 'human' AND assignee = $1 ORDER BY id",
            agent_id,
        )
        return [r["id"] for r in rows]

    async def mark_assigned(self, agent_id: str, at: datetime) -> None:
        await self._pool.execute(
            "UPDATE agent_presence SET last_assigned_at = GREATEST(last_assigned_at, $2)"
            " WHERE agent_id = $1",
            agent_id,
            at,
        )

    async def unassigned_queue(
        self, phone_number_ids: Sequence[PhoneNumberId], *, limit: int
    ) -> list[QueuedConversation]:
        rows = await self._pool.fetch(
            "SELECT id, phone_number_id, waiting_since FROM conversations"
            " WHERE mode = 'human' AND assignee IS NULL AND phone_number_id = ANY($1::text[])"
            " ORDER BY waiting_since NULLS LAST, id LIMIT $2",
            list(phone_number_ids),
            limit,
        )
        return [
            QueuedConversation(
                conversation_id=r["id"],
                phone_number_id=r["phone_number_id"],
                waiting_since=r["waiting_since"],
            )
            for r in rows
        ]

    @contextlib.asynccontextmanager
    async def assignment_lock(self) -> AsyncIterator[None]:
        # A session lock on a connection held for the block: a crashed holder's connection
        # closes and the lock with it. Callers of one process queue in memory first: each one
        # waiting in PostgreSQL would hold a pooled connection, and with more waiters than
        # connections the holder could never get the one it needs to finish.
        async with self._assigning, self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", ASSIGNMENT_LOCK)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", ASSIGNMENT_LOCK)

    async def waiting_queue(self, query: ConversationQuery) -> ConversationPage:
        """Waiting conversations, longest wait first; the query's keyset is (waiting_since, id)."""
        rows = await self._pool.fetch(
            _WAITING,
            query.mode.value if query.mode is not None else None,
            list(query.phone_number_ids) if query.phone_number_ids is not None else None,
            query.assignee,
            query.unassigned,
            query.after_activity,
            query.after_id,
            query.limit + 1,
        )
        return ConversationPage(
            items=tuple(_summary(r) for r in rows[: query.limit]),
            has_more=len(rows) > query.limit,
        )

    async def customer_window_expires_at(self, conversation_id: ConversationId) -> datetime | None:
        # Only the last 72 h can hold an open window (24 h, or 72 h after an ad referral).
        return await self._pool.fetchval(  # type: ignore[no-any-return]
            "SELECT max(sent_at + CASE WHEN payload ? 'referral' THEN interval '72 hours'"
            " ELSE interval '24 hours' END) FROM messages"
            " WHERE conversation_id = $1 AND author = 'customer' AND NOT imported"
            " AND sent_at > now() - interval '72 hours'",
            conversation_id,
        )

    # --- notes, resolutions, summaries ---------------------------------------------------

    async def add_note(self, note: NewNote) -> StoredNote:
        row = await self._pool.fetchrow(
            _ADD_NOTE,
            note.conversation_id,
            note.phone_number_id,
            Author.NOTE.value,
            note.body,
            note.at,
            note.idempotency_key,
            note.agent_id,
        )
        created = row is not None
        if row is None:
            row = await self._pool.fetchrow(
                "SELECT id, sent_at, body, agent_id, conversation_id FROM messages"
                " WHERE idempotency_key = $1",
                note.idempotency_key,
            )
            assert row is not None
            if row["conversation_id"] != note.conversation_id or row["agent_id"] != note.agent_id:
                raise ValueError("idempotency key reused for another note")
        return StoredNote(
            id=row["id"],
            conversation_id=note.conversation_id,
            agent_id=note.agent_id,
            body=note.body if created else row["body"],
            at=row["sent_at"],
            created_now=created,
        )

    async def record_resolution(self, resolution: ServiceResolution) -> bool:
        inserted = await self._pool.fetchval(
            "INSERT INTO conversation_resolutions (conversation_id, epoch, phone_number_id,"
            " agent_id, outcome, started_at, first_response_at, first_response_seconds,"
            " handling_seconds, resolved_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT DO NOTHING RETURNING true",
            resolution.conversation_id,
            resolution.epoch,
            resolution.phone_number_id,
            resolution.agent_id,
            resolution.outcome,
            resolution.started_at,
            resolution.first_response_at,
            resolution.first_response_seconds,
            resolution.handling_seconds,
            resolution.resolved_at,
        )
        return bool(inserted)

    async def resolutions(self, conversation_id: ConversationId) -> list[ServiceResolution]:
        rows = await self._pool.fetch(
            "SELECT * FROM conversation_resolutions WHERE conversation_id = $1 ORDER BY epoch",
            conversation_id,
        )
        return [ServiceResolution.model_validate(dict(r)) for r in rows]

    async def save_handoff_summary(
        self, conversation_id: ConversationId, epoch: int, summary: dict[str, object]
    ) -> bool:
        inserted = await self._pool.fetchval(
            "INSERT INTO handoff_summaries (conversation_id, epoch, summary) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true",
            conversation_id,
            epoch,
            summary,
        )
        return bool(inserted)

    async def handoff_summary(self, conversation_id: ConversationId) -> StoredSummary | None:
        row = await self._pool.fetchrow(
            "SELECT conversation_id, epoch, summary, created_at FROM handoff_summaries"
            " WHERE conversation_id = $1 ORDER BY epoch DESC LIMIT 1",
            conversation_id,
        )
        return StoredSummary.model_validate(dict(row)) if row is not None else None
