"""The Chatwoot bridge's area on PostgreSQL: id links, conversation twins, expected echoes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from baton.store.chatwoot_records import ChatwootConversation, MirroredMessage
from baton.types import Author, ConversationId

_TWIN_COLUMNS = (
    "conversation_id, scope, chatwoot_conversation_id, remote_updated_at, remote_status,"
    " remote_assignee_id"
)


def _twin(row: asyncpg.Record) -> ChatwootConversation:
    return ChatwootConversation(**dict(row))


class PostgresChatwootStore:
    """Mixin of `PostgresStore` for the Chatwoot bridge (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def chatwoot_link(self, scope: str, kind: str, baton_key: str) -> int | None:
        value = await self._pool.fetchval(
            "SELECT chatwoot_id FROM chatwoot_links"
            " WHERE scope = $1 AND kind = $2 AND baton_key = $3",
            scope,
            kind,
            baton_key,
        )
        return int(value) if value is not None else None

    async def save_chatwoot_link(
        self, scope: str, kind: str, baton_key: str, chatwoot_id: int
    ) -> int:
        # The first link wins: a concurrent or repeated save returns the id already recorded.
        value = await self._pool.fetchval(
            "WITH ins AS (INSERT INTO chatwoot_links (scope, kind, baton_key, chatwoot_id)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING chatwoot_id)"
            " SELECT chatwoot_id FROM ins UNION ALL SELECT chatwoot_id FROM chatwoot_links"
            " WHERE scope = $1 AND kind = $2 AND baton_key = $3 LIMIT 1",
            scope,
            kind,
            baton_key,
            chatwoot_id,
        )
        return int(value)

    async def chatwoot_twin(self, conversation_id: ConversationId) -> ChatwootConversation | None:
        row = await self._pool.fetchrow(
            f"SELECT {_TWIN_COLUMNS} FROM chatwoot_conversations WHERE conversation_id = $1",
            conversation_id,
        )
        return _twin(row) if row is not None else None

    async def chatwoot_twin_by_remote(
        self, scope: str, chatwoot_conversation_id: int
    ) -> ChatwootConversation | None:
        row = await self._pool.fetchrow(
            f"SELECT {_TWIN_COLUMNS} FROM chatwoot_conversations"
            " WHERE scope = $1 AND chatwoot_conversation_id = $2",
            scope,
            chatwoot_conversation_id,
        )
        return _twin(row) if row is not None else None

    async def save_chatwoot_twin(
        self,
        conversation_id: ConversationId,
        scope: str,
        chatwoot_conversation_id: int,
        *,
        status: str | None,
    ) -> ChatwootConversation:
        row = await self._pool.fetchrow(
            "INSERT INTO chatwoot_conversations"
            " (conversation_id, scope, chatwoot_conversation_id, remote_status)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (conversation_id) DO UPDATE SET scope = EXCLUDED.scope,"
            " chatwoot_conversation_id = EXCLUDED.chatwoot_conversation_id,"
            " remote_status = EXCLUDED.remote_status, remote_assignee_id = NULL,"
            " remote_updated_at = 0"
            " WHERE chatwoot_conversations.scope <> EXCLUDED.scope"
            f" RETURNING {_TWIN_COLUMNS}",
            conversation_id,
            scope,
            chatwoot_conversation_id,
            status,
        )
        if row is None:  # already linked in this scope: keep the first twin
            existing = await self.chatwoot_twin(conversation_id)
            assert existing is not None
            return existing
        return _twin(row)

    async def note_chatwoot_remote(
        self,
        conversation_id: ConversationId,
        *,
        status: str | None = None,
        assignee_id: int | None = None,
        set_assignee: bool = False,
    ) -> None:
        """Record the status / assignee Chatwoot now has (set by the bridge or seen)."""
        await self._pool.execute(
            "UPDATE chatwoot_conversations SET"
            " remote_status = COALESCE($2, remote_status),"
            " remote_assignee_id = CASE WHEN $4 THEN $3 ELSE remote_assignee_id END"
            " WHERE conversation_id = $1",
            conversation_id,
            status,
            assignee_id,
            set_assignee,
        )

    async def advance_chatwoot_clock(
        self, conversation_id: ConversationId, remote_updated_at: float
    ) -> bool:
        """Move the twin's remote clock forward; False if a newer callback was applied first."""
        updated = await self._pool.fetchval(
            "UPDATE chatwoot_conversations SET remote_updated_at = $2"
            " WHERE conversation_id = $1 AND remote_updated_at <= $2 RETURNING 1",
            conversation_id,
            remote_updated_at,
        )
        return updated is not None

    async def expect_chatwoot_echo(
        self, scope: str, chatwoot_conversation_id: int, change: str, *, expires_at: datetime
    ) -> None:
        await self._pool.execute(
            "INSERT INTO chatwoot_echoes (scope, chatwoot_conversation_id, change, expires_at)"
            " VALUES ($1, $2, $3, $4)",
            scope,
            chatwoot_conversation_id,
            change,
            expires_at,
        )

    async def take_chatwoot_echo(
        self, scope: str, chatwoot_conversation_id: int, change: str, *, now: datetime
    ) -> bool:
        """Consume one unexpired expectation of this change; True if there was one."""
        taken = await self._pool.fetchval(
            "DELETE FROM chatwoot_echoes WHERE id = ("
            " SELECT id FROM chatwoot_echoes WHERE scope = $1 AND chatwoot_conversation_id = $2"
            " AND change = $3 AND expires_at > $4 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
            " RETURNING 1",
            scope,
            chatwoot_conversation_id,
            change,
            now,
        )
        await self._pool.execute("DELETE FROM chatwoot_echoes WHERE expires_at <= $1", now)
        return taken is not None

    async def outbound_by_key(self, idempotency_key: str) -> MirroredMessage | None:
        row = await self._pool.fetchrow(
            "SELECT author, body, type, sent_at, agent_id FROM messages WHERE idempotency_key = $1",
            idempotency_key,
        )
        if row is None:
            return None
        return MirroredMessage(
            author=Author(row["author"]),
            body=row["body"],
            type=row["type"],
            sent_at=row["sent_at"],
            agent_id=row["agent_id"],
        )

    async def imported_messages(
        self, conversation_id: ConversationId, *, limit: int
    ) -> Sequence[MirroredMessage]:
        rows = await self._pool.fetch(
            "SELECT author, body, type, sent_at, agent_id FROM messages"
            " WHERE conversation_id = $1 AND imported ORDER BY sent_at, id LIMIT $2",
            conversation_id,
            limit,
        )
        return [
            MirroredMessage(
                author=Author(r["author"]),
                body=r["body"],
                type=r["type"],
                sent_at=r["sent_at"],
                agent_id=r["agent_id"],
            )
            for r in rows
        ]
