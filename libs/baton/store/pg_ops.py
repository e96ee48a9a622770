"""Operators' records on PostgreSQL: dead-letter replays."""

from __future__ import annotations

import asyncpg

from baton.store.ops_records import DlqReplay


class PostgresOpsStore:
    """Mixin of `PostgresStore` for operators' records (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def record_dlq_replay(self, replay: DlqReplay) -> None:
        await self._pool.execute(
            "INSERT INTO dlq_replays (operator, queue, message_id, message_type, failure)"
            " VALUES ($1, $2, $3, $4, $5)",
            replay.operator,
            replay.queue,
            replay.message_id,
            replay.message_type,
            replay.failure,
        )

    async def dlq_replays(self, queue: str | None = None, *, limit: int = 100) -> list[DlqReplay]:
        rows = await self._pool.fetch(
            "SELECT at, operator, queue, message_id, message_type, failure FROM dlq_replays"
            " WHERE $1::text IS NULL OR queue = $1 ORDER BY id DESC LIMIT $2",
            queue,
            limit,
        )
        return [DlqReplay(**dict(row)) for row in rows]
