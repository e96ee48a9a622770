"""The console's shared event log on PostgreSQL: one numbering of agents' events for every replica.

Ids are assigned as max + 1 under an advisory transaction lock, which is released only at
commit: ids have no gaps and become visible in increasing order, so a reader that has seen id N
has seen every id below it. That is what makes `Last-Event-ID` mean the same on every replica.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from baton.store.event_log_records import EventLogBounds, LoggedEvent, NewLoggedEvent
from baton.types import ConversationId, PhoneNumberId

# Any constant works; it only has to be the same for every process appending to this database.
_APPEND_LOCK = 0x6576656E746C6F67  # "eventlog"

_COLUMNS = "id, type, data, phone_number_id, conversation_id, logged_at"


def _logged(row: asyncpg.Record) -> LoggedEvent:
    return LoggedEvent(
        id=row["id"],
        type=row["type"],
        data=row["data"],
        phone_number_id=row["phone_number_id"],
        conversation_id=row["conversation_id"],
        logged_at=row["logged_at"],
    )


class PostgresEventLogStore:
    """Mixin of `PostgresStore` for the console's event log (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def append_console_event(self, event: NewLoggedEvent) -> int | None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _APPEND_LOCK)
            id_: int | None = await conn.fetchval(
                "INSERT INTO console_events"
                " (id, message_id, type, data, phone_number_id, conversation_id)"
                " SELECT coalesce(max(id), 0) + 1, $1, $2, $3, $4, $5 FROM console_events"
                " ON CONFLICT (message_id) DO NOTHING RETURNING id",
                event.message_id,
                event.type,
                event.data,
                event.phone_number_id,
                event.conversation_id,
            )
            return id_

    async def console_events_after(
        self,
        after: int,
        *,
        limit: int,
        numbers: frozenset[PhoneNumberId] | None = None,
        conversation_id: ConversationId | None = None,
    ) -> list[LoggedEvent]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM console_events WHERE id > $1"
            " AND ($2::text[] IS NULL OR phone_number_id = ANY($2))"
            " AND ($3::bigint IS NULL OR conversation_id = $3)"
            " ORDER BY id LIMIT $4",
            after,
            sorted(numbers) if numbers is not None else None,
            conversation_id,
            limit,
        )
        return [_logged(row) for row in rows]

    async def console_event_bounds(self) -> EventLogBounds:
        row = await self._pool.fetchrow(
            "SELECT min(id) AS oldest, max(id) AS newest FROM console_events"
        )
        assert row is not None
        return EventLogBounds(oldest=row["oldest"], newest=row["newest"])

    async def prune_console_events(self, *, older_than: datetime, keep: int) -> int:
        # The newest row always stays: ids continue from it, so an id a client holds never
        # comes back for another event.
        result: str = await self._pool.execute(
            "WITH newest AS (SELECT max(id) AS id FROM console_events)"
            " DELETE FROM console_events e USING newest"
            " WHERE e.id < newest.id AND (e.id <= newest.id - $2 OR e.logged_at < $1)",
            older_than,
            max(keep, 1),
        )
        return int(result.rsplit(" ", 1)[-1])
