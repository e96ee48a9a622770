"""The handoff area on PostgreSQL: conversation state (compare-and-set), timers, queued effects.

`conversations.state` holds the core's `ConversationState` as JSON; `mode`, `epoch`, `version`,
`assignee`, `paused_until`, `waiting_since`, `handoff_reason`, `handoff_summary` and
`last_activity_at` mirror it for queries, written by the same UPDATE.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from baton.handoff.state import ConversationState, new_conversation
from baton.handoff.timers import Timer, TimerKind
from baton.store._pg import (
    CONVERSATION_COLUMNS,
    Connection,
    to_conversation,
    touch_conversation,
)
from baton.store.handoff_records import (
    DueTimer,
    EchoOutcome,
    NewEcho,
    OutgoingMessage,
    PendingEffect,
)
from baton.store.records import Conversation
from baton.types import Author, ConversationId, Mode, PhoneNumberId, WaId, Wamid

# One statement, so one round trip and atomic without a transaction: the compare-and-set
# UPDATE, then (only if it matched) the timers, the routed marks and the queued effects.
# A timer whose due time did not move keeps its lease: the process firing it is still at work.
_SAVE = """
WITH saved AS (
    UPDATE conversations SET state = $2, mode = $3, epoch = $4, version = $5, assignee = $6,
        paused_until = $7, waiting_since = $8, handoff_reason = $9, handoff_summary = $10,
        last_activity_at = GREATEST(last_activity_at, $11), updated_at = now()
    WHERE id = $1 AND version = $12
    RETURNING id
), disarmed AS (
    DELETE FROM conversation_timers
    WHERE $13::boolean AND conversation_id = $1 AND NOT (kind = ANY($14::text[]))
      AND EXISTS (SELECT 1 FROM saved)
), armed AS (
    INSERT INTO conversation_timers (conversation_id, kind, due_at)
    SELECT $1, u.k, u.d FROM unnest($14::text[], $15::timestamptz[]) AS u(k, d)
    WHERE $13::boolean AND EXISTS (SELECT 1 FROM saved)
    ON CONFLICT (conversation_id, kind) DO UPDATE SET due_at = EXCLUDED.due_at,
        leased_until = CASE WHEN conversation_timers.due_at = EXCLUDED.due_at
                            THEN conversation_timers.leased_until END
), routed AS (
    UPDATE messages SET routed_at = now()
    WHERE phone_number_id = $16 AND wamid = ANY($17::text[]) AND routed_at IS NULL
      AND EXISTS (SELECT 1 FROM saved)
), queued AS (
    INSERT INTO pending_effects (conversation_id, exchange, routing_key, message_type,
                                 message_id, body, claimed_until)
    SELECT $1, u.e, u.r, u.t, u.m, u.b, $23
    FROM unnest($18::text[], $19::text[], $20::text[], $21::text[], $22::bytea[])
         WITH ORDINALITY AS u(e, r, t, m, b, n)
    WHERE EXISTS (SELECT 1 FROM saved)
    ORDER BY u.n
    RETURNING id, conversation_id, exchange, routing_key, message_type, message_id, body
)
SELECT (SELECT count(*) FROM saved) AS saved, q.*
FROM (SELECT 1) AS one LEFT JOIN queued AS q ON true
"""

_DELETE_PENDING = "DELETE FROM pending_effects WHERE id = ANY($1::bigint[])"

_UPSERT_TIMERS = """
INSERT INTO conversation_timers (conversation_id, kind, due_at)
SELECT $1, u.k, u.d FROM unnest($2::text[], $3::timestamptz[]) AS u(k, d)
ON CONFLICT (conversation_id, kind) DO UPDATE SET due_at = EXCLUDED.due_at, leased_until = NULL
"""

_CLAIM_DUE_TIMERS = """
UPDATE conversation_timers t SET leased_until = $2
FROM (SELECT conversation_id, kind FROM conversation_timers
      WHERE due_at <= $1 AND (leased_until IS NULL OR leased_until <= $1)
      ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) due
WHERE t.conversation_id = due.conversation_id AND t.kind = due.kind
RETURNING t.conversation_id, t.kind, t.due_at
"""

_CLAIM_PENDING = """
UPDATE pending_effects p SET claimed_until = $2
FROM (SELECT id FROM pending_effects WHERE claimed_until <= $1
      ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) due
WHERE p.id = due.id
RETURNING p.id, p.conversation_id, p.exchange, p.routing_key, p.message_type, p.message_id, p.body
"""


def _pending(row: asyncpg.Record) -> PendingEffect:
    return PendingEffect(
        id=row["id"],
        conversation_id=row["conversation_id"],
        exchange=row["exchange"],
        routing_key=row["routing_key"],
        type=row["message_type"],
        message_id=row["message_id"],
        body=bytes(row["body"]),
    )


def state_of(row: asyncpg.Record) -> ConversationState:
    """The state of a row holding id, phone_number_id, wa_id, mode, epoch, version, state."""
    raw = row["state"]
    if not raw:  # never saved: the bot holds it (mode/epoch as the columns say)
        state = new_conversation(row["id"], row["phone_number_id"], row["wa_id"])
        return state.model_copy(
            update={"mode": Mode(row["mode"]), "epoch": row["epoch"], "version": row["version"]}
        )
    # The column is the compare-and-set's source of truth for the version.
    return ConversationState.model_validate({**raw, "version": row["version"]})


async def _replace_timers(
    conn: Connection, conversation_id: ConversationId, timers: Sequence[Timer]
) -> None:
    kinds = [t.kind.value for t in timers]
    await conn.execute(
        "DELETE FROM conversation_timers WHERE conversation_id = $1 AND NOT (kind = ANY($2::text[]))",
        conversation_id,
        kinds,
    )
    if timers:
        await conn.execute(_UPSERT_TIMERS, conversation_id, kinds, [t.due_at for t in timers])


class PostgresHandoffStore:
    """Mixin of `PostgresStore` for the handoff area (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def warm_up(self) -> int:
        """Open every pool connection and prepare the router's array statements on each.

        Otherwise the first burst of messages pays, inside its latency, for opening the
        connections and for the first preparation on each of the statements with array
        parameters (the state save, the effects' cleanup), whose types asyncpg introspects
        (tens of ms each on a busy machine). Returns how many connections are open.
        """
        held = []
        try:
            for _ in range(self._pool.get_max_size()):
                held.append(await self._pool.acquire())  # held: the next acquire opens another
            for conn in held:
                for statement in (_SAVE, _DELETE_PENDING):
                    await conn.prepare(statement)
        finally:
            for conn in held:
                await self._pool.release(conn)
        return len(held)

    async def load_conversation_state(
        self, conversation_id: ConversationId
    ) -> ConversationState | None:
        row = await self._pool.fetchrow(
            "SELECT id, phone_number_id, wa_id, mode, epoch, version, state FROM conversations"
            " WHERE id = $1",
            conversation_id,
        )
        return None if row is None else state_of(row)

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
        rows = await self._pool.fetch(
            _SAVE,
            state.conversation_id,
            state.model_dump(mode="json"),
            state.mode.value,
            state.epoch,
            state.version,
            state.assignee,
            state.paused_until,
            state.waiting_since,
            state.handoff_reason,
            state.handoff_summary,
            state.last_activity_at,
            expected_version,
            timers is not None,
            [t.kind.value for t in timers or ()],
            [t.due_at for t in timers or ()],
            state.phone_number_id,
            list(routed),
            [e.exchange for e in effects],
            [e.routing_key for e in effects],
            [e.type for e in effects],
            [e.message_id for e in effects],
            [e.body for e in effects],
            relay_after,
        )
        if not rows[0]["saved"]:
            return None
        return sorted((_pending(r) for r in rows if r["id"] is not None), key=lambda p: p.id)

    async def mark_routed(self, phone_number_id: PhoneNumberId, wamids: Sequence[Wamid]) -> None:
        async with self._pool.acquire() as conn:
            await _mark_routed(conn, phone_number_id, wamids)

    async def record_echo(self, echo: NewEcho) -> tuple[Conversation, EchoOutcome]:
        async with self._pool.acquire() as conn, conn.transaction():
            conversation = await _get_or_create(conn, echo.phone_number_id, echo.wa_id)
            inserted = await conn.fetchval(
                "INSERT INTO messages (conversation_id, phone_number_id, wamid, direction, author,"
                " type, body, payload, sent_at) VALUES ($1, $2, $3, 'out', $4, $5, $6, $7, $8)"
                " ON CONFLICT (phone_number_id, wamid) DO NOTHING RETURNING id",
                conversation.id,
                echo.phone_number_id,
                echo.wamid,
                Author.APP.value,
                echo.type,
                echo.body,
                echo.payload,
                echo.sent_at,
            )
            if inserted is not None:
                await touch_conversation(conn, conversation.id, echo.sent_at)
                return conversation, EchoOutcome.NEW
            found = await conn.fetchrow(
                "SELECT author, routed_at FROM messages WHERE phone_number_id = $1 AND wamid = $2",
                echo.phone_number_id,
                echo.wamid,
            )
        assert found is not None
        if found["author"] != Author.APP.value:
            return conversation, EchoOutcome.OWN_SEND
        if found["routed_at"] is None:
            return conversation, EchoOutcome.UNROUTED
        return conversation, EchoOutcome.DUPLICATE

    async def conversation_of_message(
        self, phone_number_id: PhoneNumberId, wamid: Wamid
    ) -> Conversation | None:
        row = await self._pool.fetchrow(
            f"SELECT {', '.join('c.' + c for c in CONVERSATION_COLUMNS.split(', '))}"
            " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE m.phone_number_id = $1 AND m.wamid = $2",
            phone_number_id,
            wamid,
        )
        return None if row is None else to_conversation(row)

    async def claim_due_timers(
        self, now: datetime, *, lease_until: datetime, limit: int
    ) -> list[DueTimer]:
        rows = await self._pool.fetch(_CLAIM_DUE_TIMERS, now, lease_until, limit)
        return sorted((_timer(r) for r in rows), key=lambda t: t.due_at)

    async def claim_timer(
        self,
        conversation_id: ConversationId,
        kind: TimerKind,
        now: datetime,
        *,
        lease_until: datetime,
    ) -> DueTimer | None:
        row = await self._pool.fetchrow(
            "UPDATE conversation_timers SET leased_until = $4"
            " WHERE conversation_id = $1 AND kind = $2 AND due_at <= $3"
            " AND (leased_until IS NULL OR leased_until <= $3)"
            " RETURNING conversation_id, kind, due_at",
            conversation_id,
            kind.value,
            now,
            lease_until,
        )
        return None if row is None else _timer(row)

    async def sync_timers(
        self, conversation_id: ConversationId, *, version: int, timers: Sequence[Timer]
    ) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval(
                "SELECT version FROM conversations WHERE id = $1 FOR UPDATE", conversation_id
            )
            if current != version:
                return False  # a newer save replaced the timers already
            await _replace_timers(conn, conversation_id, timers)
            return True

    async def claim_pending_effects(
        self, now: datetime, *, lease_until: datetime, limit: int
    ) -> list[PendingEffect]:
        rows = await self._pool.fetch(_CLAIM_PENDING, now, lease_until, limit)
        return sorted((_pending(r) for r in rows), key=lambda p: p.id)

    async def delete_pending_effects(self, ids: Sequence[int]) -> None:
        await self._pool.execute(_DELETE_PENDING, ids)


def _timer(row: asyncpg.Record) -> DueTimer:
    return DueTimer(
        conversation_id=row["conversation_id"], kind=TimerKind(row["kind"]), due_at=row["due_at"]
    )


async def _mark_routed(
    conn: Connection, phone_number_id: PhoneNumberId, wamids: Sequence[Wamid]
) -> None:
    await conn.execute(
        "UPDATE messages SET routed_at = now()"
        " WHERE phone_number_id = $1 AND wamid = ANY($2::text[]) AND routed_at IS NULL",
        phone_number_id,
        list(wamids),
    )


async def _get_or_create(
    conn: Connection, phone_number_id: PhoneNumberId, wa_id: WaId
) -> Conversation:
    select = (
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations"
        " WHERE phone_number_id = $1 AND wa_id = $2"
    )
    row = await conn.fetchrow(select, phone_number_id, wa_id)
    if row is None:
        await conn.execute(
            "INSERT INTO conversations (phone_number_id, wa_id) VALUES ($1, $2)"
            " ON CONFLICT (phone_number_id, wa_id) DO NOTHING",
            phone_number_id,
            wa_id,
        )
        row = await conn.fetchrow(select, phone_number_id, wa_id)
    assert row is not None
    return to_conversation(row)
