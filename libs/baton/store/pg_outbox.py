"""The outbox area on PostgreSQL: outbound sends keyed by idempotency key, their attempts, the
numbers the outbox serves and its live replicas.

A send is claimed (attempt opened) right before the Graph API call and closed with its outcome
in the same row, so "was this key sent?" is one lookup and a crash between Meta's answer and
our record leaves a visible open attempt instead of a silent guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from baton.store._pg import MESSAGE_COLUMNS, Connection, to_stored_message
from baton.store.outbox_records import AttemptRow, ClaimStatus, OutboundClaim, decide_claim
from baton.store.records import DeliveryStatus, NewOutbound, StoredMessage
from baton.types import PhoneNumberId, Wamid

_OUTBOUND_COLUMNS = (
    f"{MESSAGE_COLUMNS}, send_attempts, attempt_open,"
    " EXTRACT(EPOCH FROM clock_timestamp() - attempt_started_at)::float8 AS attempt_age"
)
_INSERT_OUTBOUND = (
    "INSERT INTO messages (conversation_id, phone_number_id, direction, author, type,"
    " body, sent_at, status, idempotency_key, epoch, agent_id)"
    " VALUES ($1, $2, 'out', $3, $8, $4, now(), 'pending', $5, $6, $7)"
    " ON CONFLICT (idempotency_key) DO NOTHING"
)
_INSERT_CLAIMED = (
    "INSERT INTO messages (conversation_id, phone_number_id, direction, author, type,"
    " body, sent_at, status, idempotency_key, epoch, agent_id,"
    " send_attempts, attempt_open, attempt_started_at)"
    " VALUES ($1, $2, 'out', $3, $8, $4, now(), 'pending', $5, $6, $7,"
    " 1, true, clock_timestamp())"
    f" ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_OUTBOUND_COLUMNS}"
)
# One statement: the wamid, any status that overtook the send's own record (Meta's `sent` may
# arrive first), and the conversation's last activity.
_COMPLETE = """
WITH target AS (
    SELECT id, phone_number_id, conversation_id, status_rank FROM messages
    WHERE idempotency_key = $1
), overtaking AS (
    SELECT s.status, s.status_rank, s.at, s.error_code, s.error_title
    FROM message_statuses s, target t
    WHERE s.phone_number_id = t.phone_number_id AND s.wamid = $2
      AND s.status_rank > t.status_rank
    ORDER BY s.status_rank DESC LIMIT 1
), done AS (
    UPDATE messages m SET wamid = $2, sent_at = $3, attempt_open = false,
        status = COALESCE(o.status, 'accepted'),
        status_rank = COALESCE(o.status_rank, m.status_rank),
        status_at = COALESCE(o.at, m.status_at),
        error_code = COALESCE(o.error_code, m.error_code),
        error_reason = COALESCE(o.error_title, m.error_reason)
    FROM target t LEFT JOIN overtaking o ON true
    WHERE m.id = t.id
    RETURNING m.conversation_id, m.sent_at
), touched AS (
    UPDATE conversations c
    SET last_activity_at = GREATEST(c.last_activity_at, done.sent_at), updated_at = now()
    FROM done WHERE c.id = done.conversation_id
)
SELECT count(*) FROM done
"""


def _outbound_args(message: NewOutbound) -> tuple[object, ...]:
    # $1 … $8 of both _INSERT_OUTBOUND and _INSERT_CLAIMED.
    return (
        message.conversation_id,
        message.phone_number_id,
        message.author.value,
        message.body,
        message.idempotency_key,
        message.epoch,
        message.agent_id,
        message.type,
    )


class PostgresOutboxStore:
    """Mixin of `PostgresStore` for the outbox area (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def _insert_outbound(self, conn: Connection, message: NewOutbound) -> None:
        await conn.execute(_INSERT_OUTBOUND, *_outbound_args(message))

    async def begin_outbound(self, message: NewOutbound) -> StoredMessage:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._insert_outbound(conn, message)
            row = await conn.fetchrow(
                f"SELECT {_OUTBOUND_COLUMNS} FROM messages WHERE idempotency_key = $1",
                message.idempotency_key,
            )
        assert row is not None
        return to_stored_message(row)

    async def claim_outbound(
        self, message: NewOutbound, *, abandon_after_seconds: float
    ) -> OutboundClaim:
        # The common case, a first attempt, is one statement: the row is born claimed.
        fresh = await self._pool.fetchrow(_INSERT_CLAIMED, *_outbound_args(message))
        if fresh is not None:
            return OutboundClaim(
                status=ClaimStatus.CLAIMED, message=to_stored_message(fresh), attempt=1
            )
        async with self._pool.acquire() as conn, conn.transaction():
            await self._insert_outbound(conn, message)
            row = await conn.fetchrow(
                f"SELECT {_OUTBOUND_COLUMNS} FROM messages WHERE idempotency_key = $1 FOR UPDATE",
                message.idempotency_key,
            )
            assert row is not None
            status, wait = decide_claim(
                AttemptRow(
                    has_wamid=row["wamid"] is not None,
                    status=row["status"],
                    attempt_open=row["attempt_open"],
                    attempt_age_seconds=row["attempt_age"],
                ),
                abandon_after_seconds=abandon_after_seconds,
            )
            if status is not ClaimStatus.CLAIMED:
                return OutboundClaim(
                    status=status,
                    message=to_stored_message(row),
                    attempt=row["send_attempts"],
                    busy_seconds=wait,
                )
            claimed = await conn.fetchrow(
                "UPDATE messages SET send_attempts = send_attempts + 1, attempt_open = true,"
                " attempt_started_at = clock_timestamp(), status = 'pending'"
                f" WHERE id = $1 RETURNING {_OUTBOUND_COLUMNS}",
                row["id"],
            )
        assert claimed is not None
        return OutboundClaim(
            status=ClaimStatus.CLAIMED,
            message=to_stored_message(claimed),
            attempt=claimed["send_attempts"],
            in_doubt=row["attempt_open"],
        )

    async def release_outbound_attempt(self, idempotency_key: str) -> None:
        await self._pool.execute(
            "UPDATE messages SET attempt_open = false WHERE idempotency_key = $1", idempotency_key
        )

    async def complete_outbound(
        self, idempotency_key: str, wamid: Wamid, sent_at: datetime
    ) -> None:
        if not await self._pool.fetchval(_COMPLETE, idempotency_key, wamid, sent_at):
            raise LookupError(f"no outbound message with idempotency key {idempotency_key!r}")

    async def fail_outbound(
        self, idempotency_key: str, *, error_code: int | None, reason: str
    ) -> None:
        await self._pool.execute(
            "UPDATE messages SET status = 'failed', status_rank = $4, error_code = $2,"
            " error_reason = $3, attempt_open = false WHERE idempotency_key = $1",
            idempotency_key,
            error_code,
            reason,
            int(DeliveryStatus.FAILED),
        )

    async def give_up_outbound(
        self, idempotency_key: str, *, error_code: int | None, reason: str
    ) -> None:
        # Not `failed`: a dead-lettered send replayed from its DLQ may be claimed again.
        await self._pool.execute(
            "UPDATE messages SET status = 'dead_lettered', error_code = $2, error_reason = $3,"
            " attempt_open = false WHERE idempotency_key = $1 AND wamid IS NULL",
            idempotency_key,
            error_code,
            reason,
        )

    async def register_outbox_number(self, phone_number_id: PhoneNumberId) -> bool:
        inserted = await self._pool.fetchval(
            "INSERT INTO outbox_numbers (phone_number_id) VALUES ($1)"
            " ON CONFLICT DO NOTHING RETURNING true",
            phone_number_id,
        )
        return bool(inserted)

    async def outbox_numbers(self) -> Sequence[PhoneNumberId]:
        rows = await self._pool.fetch(
            "SELECT phone_number_id FROM outbox_numbers ORDER BY phone_number_id"
        )
        return [r["phone_number_id"] for r in rows]

    async def outbox_heartbeat(self, replica_id: str, *, ttl_seconds: float) -> Sequence[str]:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO outbox_replicas (replica_id) VALUES ($1) ON CONFLICT (replica_id)"
                " DO UPDATE SET heartbeat_at = now()",
                replica_id,
            )
            await conn.execute(
                "DELETE FROM outbox_replicas WHERE heartbeat_at < now() - make_interval(secs => $1)",
                ttl_seconds * 10,  # long gone: keep the table small
            )
            rows = await conn.fetch(
                "SELECT replica_id FROM outbox_replicas"
                " WHERE heartbeat_at >= now() - make_interval(secs => $1) ORDER BY replica_id",
                ttl_seconds,
            )
        return [r["replica_id"] for r in rows]

    async def outbox_leave(self, replica_id: str) -> None:
        await self._pool.execute("DELETE FROM outbox_replicas WHERE replica_id = $1", replica_id)
