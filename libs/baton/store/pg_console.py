"""The console area on PostgreSQL: conversations as agents list them, and paged history.

Listing is newest activity first (conversations with no live traffic yet, e.g. imported only,
come last) and paged by keyset on (last_activity_at, id), so a page never repeats or skips a
conversation whose activity did not change meanwhile. History pages go back in time by keyset
on (sent_at, id).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from baton.store.console_records import (
    PREVIEW_CHARS,
    ConversationPage,
    ConversationQuery,
    ConversationSummary,
    HistoryMessage,
    LastMessage,
    MessagePage,
)
from baton.store.pg_media import MESSAGE_MEDIA_COLUMNS, MESSAGE_MEDIA_JOIN, message_media
from baton.types import Author, ConversationId, Direction, Mode

# The Business App's address-book name (Coexistence contacts sync) wins over the WhatsApp
# profile name: it is what the business calls the customer on the phone.
_SUMMARY_SELECT = f"""
SELECT c.id, c.phone_number_id, c.wa_id,
       COALESCE(NULLIF(ct.full_name, ''), NULLIF(ct.first_name, ''), c.customer_name)
           AS customer_name,
       c.mode, c.epoch, c.assignee, c.waiting_since, c.paused_until, c.handoff_reason,
       c.handoff_summary, c.last_activity_at,
       m.preview AS last_preview, m.author AS last_author, m.direction AS last_direction,
       m.sent_at AS last_at, m.imported AS last_imported
  FROM conversations c
  LEFT JOIN contacts ct
         ON ct.phone_number_id = c.phone_number_id AND ct.wa_id = c.wa_id AND NOT ct.removed
  LEFT JOIN LATERAL (
        SELECT left(body, {PREVIEW_CHARS}) AS preview, author, direction, sent_at, imported
          FROM messages
         WHERE conversation_id = c.id
         ORDER BY sent_at DESC, id DESC
         LIMIT 1) m ON true
"""

_LIST = (
    _SUMMARY_SELECT
    + """
 WHERE ($1::text IS NULL OR c.mode = $1)
   AND ($2::text[] IS NULL OR c.phone_number_id = ANY($2))
   AND ($3::text IS NULL OR c.assignee = $3)
   AND (NOT $4 OR (c.mode = 'human' AND c.assignee IS NULL))
   AND (NOT $5 OR c.waiting_since IS NOT NULL)
   AND ($7::bigint IS NULL
        OR ($6::timestamptz IS NOT NULL
            AND (c.last_activity_at < $6
                 OR (c.last_activity_at = $6 AND c.id < $7)
                 OR c.last_activity_at IS NULL))
        OR ($6::timestamptz IS NULL AND c.last_activity_at IS NULL AND c.id < $7))
 ORDER BY c.last_activity_at DESC NULLS LAST, c.id DESC
 LIMIT $8
"""
)

_MESSAGES = f"""
SELECT id, wamid, direction, author, type, body, sent_at, imported, status, error_code,
       error_reason, agent_id, {MESSAGE_MEDIA_COLUMNS}
  FROM messages
{MESSAGE_MEDIA_JOIN}
 WHERE conversation_id = $1
   AND ($2::timestamptz IS NULL OR (sent_at, id) < ($2, $3))
 ORDER BY sent_at DESC, id DESC
 LIMIT $4
"""


def _summary(row: asyncpg.Record) -> ConversationSummary:
    last = None
    if row["last_at"] is not None:
        last = LastMessage(
            preview=row["last_preview"],
            author=Author(row["last_author"]),
            direction=Direction(row["last_direction"]),
            at=row["last_at"],
            imported=row["last_imported"],
        )
    return ConversationSummary(
        id=row["id"],
        phone_number_id=row["phone_number_id"],
        wa_id=row["wa_id"],
        customer_name=row["customer_name"],
        mode=Mode(row["mode"]),
        epoch=row["epoch"],
        assignee=row["assignee"],
        waiting_since=row["waiting_since"],
        paused_until=row["paused_until"],
        handoff_reason=row["handoff_reason"],
        handoff_summary=row["handoff_summary"],
        last_activity_at=row["last_activity_at"],
        last_message=last,
    )


def _history_message(row: asyncpg.Record) -> HistoryMessage:
    return HistoryMessage(
        id=row["id"],
        wamid=row["wamid"],
        direction=Direction(row["direction"]),
        author=Author(row["author"]),
        type=row["type"],
        body=row["body"],
        sent_at=row["sent_at"],
        imported=row["imported"],
        status=row["status"],
        error_code=row["error_code"],
        error_reason=row["error_reason"],
        agent_id=row["agent_id"],
        media=message_media(row),
    )


class PostgresConsoleStore:
    """Mixin of `PostgresStore` for the console area (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def list_conversations(self, query: ConversationQuery) -> ConversationPage:
        rows = await self._pool.fetch(
            _LIST,
            query.mode.value if query.mode is not None else None,
            list(query.phone_number_ids) if query.phone_number_ids is not None else None,
            query.assignee,
            query.unassigned,
            query.waiting,
            query.after_activity,
            query.after_id,
            query.limit + 1,
        )
        return ConversationPage(
            items=tuple(_summary(r) for r in rows[: query.limit]),
            has_more=len(rows) > query.limit,
        )

    async def conversation_summary(
        self, conversation_id: ConversationId
    ) -> ConversationSummary | None:
        row = await self._pool.fetchrow(_SUMMARY_SELECT + " WHERE c.id = $1", conversation_id)
        return _summary(row) if row is not None else None

    async def message_page(
        self,
        conversation_id: ConversationId,
        *,
        limit: int,
        before: tuple[datetime, int] | None = None,
    ) -> MessagePage:
        before_at, before_id = before if before is not None else (None, None)
        rows = await self._pool.fetch(_MESSAGES, conversation_id, before_at, before_id, limit + 1)
        page = rows[:limit]
        return MessagePage(
            items=tuple(_history_message(r) for r in reversed(page)),
            has_more=len(rows) > limit,
        )
