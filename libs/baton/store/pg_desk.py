"""The desk's inbox on PostgreSQL: views, search, unread counts, read markers.

Built on the console's conversation summary (one row per conversation, as the agent API lists
it) so the desk and the API never disagree about a conversation.
"""

from __future__ import annotations

import asyncpg

from baton.store.account_records import (
    ConversationExtras,
    InboxCounts,
    InboxItem,
    InboxQuery,
    InboxView,
)

# The agent API's summary query and row mapper: the desk lists exactly what the API lists.
from baton.store.pg_console import _SUMMARY_SELECT, _summary
from baton.types import ConversationId

_VIEW_FILTER = {
    InboxView.WAITING: "c.waiting_since IS NOT NULL AND c.mode <> 'bot'",
    InboxView.MINE: "c.mode = 'human' AND c.assignee = $1",
    InboxView.BOT: "c.mode = 'bot'",
    InboxView.PAUSED: "c.mode = 'paused'",
    InboxView.ALL: "true",
}
_VIEW_ORDER = {
    # The fair queue: whoever has waited longest comes first.
    InboxView.WAITING: "s.waiting_since ASC, s.id ASC",
}
_DEFAULT_ORDER = "s.last_activity_at DESC NULLS LAST, s.id DESC"

_UNREAD = """
(SELECT count(*) FROM messages m
  WHERE m.conversation_id = s.id AND m.direction = 'in' AND m.author = 'customer'
    AND NOT m.imported AND m.id > COALESCE(r.read_through, 0)) AS unread
"""


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _inbox_sql(view: InboxView) -> str:
    return f"""
SELECT s.*, {_UNREAD}
  FROM ({_SUMMARY_SELECT}
        WHERE {_VIEW_FILTER[view]}
          AND ($2::text[] IS NULL OR c.phone_number_id = ANY($2))) s
  LEFT JOIN desk_reads r ON r.conversation_id = s.id AND r.agent_id = $1
 WHERE ($3::text IS NULL OR s.customer_name ILIKE $3 OR s.wa_id LIKE $4)
 ORDER BY {_VIEW_ORDER.get(view, _DEFAULT_ORDER)}
 LIMIT $5
"""


class PostgresDeskStore:
    """Mixin of `PostgresStore` for the desk's inbox (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def desk_inbox(self, query: InboxQuery) -> list[InboxItem]:
        search = (query.search or "").strip()
        digits = "".join(ch for ch in search if ch.isdigit())
        rows = await self._pool.fetch(
            _inbox_sql(query.view),
            query.agent_id,
            list(query.phone_number_ids) if query.phone_number_ids is not None else None,
            _like_pattern(search) if search else None,
            _like_pattern(digits) if digits else "",
            query.limit,
        )
        return [InboxItem(summary=_summary(r), unread=int(r["unread"])) for r in rows]

    async def desk_counts(
        self, agent_id: str, phone_number_ids: tuple[str, ...] | None
    ) -> InboxCounts:
        row = await self._pool.fetchrow(
            """
            SELECT count(*) FILTER (WHERE c.waiting_since IS NOT NULL AND c.mode <> 'bot')
                       AS waiting,
                   count(*) FILTER (WHERE c.mode = 'human' AND c.assignee = $1) AS mine,
                   COALESCE(sum((SELECT count(*) FROM messages m
                                   WHERE m.conversation_id = c.id AND m.direction = 'in'
                                     AND m.author = 'customer' AND NOT m.imported
                                     AND m.id > COALESCE(r.read_through, 0)))
                            FILTER (WHERE c.mode = 'human' AND c.assignee = $1), 0)
                       AS unread_mine
              FROM conversations c
              LEFT JOIN desk_reads r ON r.conversation_id = c.id AND r.agent_id = $1
             WHERE $2::text[] IS NULL OR c.phone_number_id = ANY($2)
            """,
            agent_id,
            list(phone_number_ids) if phone_number_ids is not None else None,
        )
        assert row is not None
        return InboxCounts(
            waiting=int(row["waiting"]), mine=int(row["mine"]), unread_mine=int(row["unread_mine"])
        )

    async def conversation_extras(self, conversation_id: ConversationId) -> ConversationExtras:
        row = await self._pool.fetchrow(
            """
            SELECT max(sent_at) FILTER (WHERE direction = 'in' AND author = 'customer')
                       AS last_customer_at,
                   max(id) AS newest
              FROM messages WHERE conversation_id = $1
            """,
            conversation_id,
        )
        assert row is not None
        return ConversationExtras(
            conversation_id=conversation_id,
            last_customer_at=row["last_customer_at"],
            newest_message_id=row["newest"],
        )

    async def desk_numbers(self) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT phone_number_id FROM conversations ORDER BY phone_number_id"
        )
        return [r["phone_number_id"] for r in rows]

    async def mark_read(self, agent_id: str, conversation_id: ConversationId, through: int) -> None:
        await self._pool.execute(
            "INSERT INTO desk_reads (agent_id, conversation_id, read_through) VALUES ($1, $2, $3)"
            " ON CONFLICT (agent_id, conversation_id)"
            " DO UPDATE SET read_through = GREATEST(desk_reads.read_through, $3)",
            agent_id,
            conversation_id,
            through,
        )
