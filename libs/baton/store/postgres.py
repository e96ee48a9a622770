"""The store port on PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import structlog

from baton.store import migrations
from baton.store._pg import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    Connection,
    to_conversation,
    to_stored_message,
)
from baton.store.handoff_records import StoredInbound
from baton.store.pg_accounts import PostgresAccountsStore
from baton.store.pg_audit import PostgresAuditStore
from baton.store.pg_chatwoot import PostgresChatwootStore
from baton.store.pg_console import PostgresConsoleStore
from baton.store.pg_desk import PostgresDeskStore
from baton.store.pg_event_log import PostgresEventLogStore
from baton.store.pg_handoff import PostgresHandoffStore, state_of
from baton.store.pg_history import PostgresHistoryStore
from baton.store.pg_knowledge import PostgresKnowledgeStore
from baton.store.pg_media import PostgresMediaStore
from baton.store.pg_ops import PostgresOpsStore
from baton.store.pg_outbox import PostgresOutboxStore
from baton.store.pg_search import PostgresSearchStore
from baton.store.pg_stats import PostgresStatsStore
from baton.store.pg_waba import PostgresWabaStore
from baton.store.pg_workflow import PostgresWorkflowStore
from baton.store.records import (
    Conversation,
    NewInbound,
    StatusUpdate,
    StoredMessage,
)
from baton.types import ConversationId, PhoneNumberId, WaId

log = structlog.get_logger()

# `record_inbound` and the state load in one statement, for a conversation that exists and
# needs no rename (no name given, or the stored one: every message but a customer's first).
# No explicit transaction: one statement is atomic. The state comes from the touch's RETURNING
# when the message is new (the row as of the touch, after any concurrent save it waited for),
# else from the statement's snapshot (a duplicate touches nothing); either way the caller's
# save is a compare-and-set on its version.
_INBOUND_WITH_STATE = f"""
WITH conv AS (
    SELECT id FROM conversations
    WHERE phone_number_id = $1 AND wa_id = $2 AND ($3::text IS NULL OR customer_name = $3)
), ins AS (
    INSERT INTO messages (conversation_id, phone_number_id, wamid, direction, author, type,
                          body, payload, sent_at)
    SELECT conv.id, $1, $4, 'in', 'customer', $5::text, $6::text, $7::jsonb, $8::timestamptz
    FROM conv
    ON CONFLICT (phone_number_id, wamid) DO NOTHING
    RETURNING id
), touched AS (
    UPDATE conversations SET last_activity_at = GREATEST(last_activity_at, $8), updated_at = now()
    WHERE id = (SELECT id FROM conv) AND EXISTS (SELECT 1 FROM ins)
    RETURNING {CONVERSATION_COLUMNS}, version, state
)
SELECT c.*, EXISTS (SELECT 1 FROM ins) AS stored_now,
    (SELECT m.routed_at IS NOT NULL FROM messages m
     WHERE m.phone_number_id = $1 AND m.wamid = $4) AS routed
FROM (
    SELECT * FROM touched
    UNION ALL
    SELECT {CONVERSATION_COLUMNS}, version, state FROM conversations
    WHERE id = (SELECT id FROM conv) AND NOT EXISTS (SELECT 1 FROM touched)
) AS c
"""


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def ensure_database(url: str) -> None:
    """Create the database named in `url` if it does not exist yet."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise ValueError(f"store URL names no database: {url!r}")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                log.info("store.database_created", database=name)
            except asyncpg.DuplicateDatabaseError:
                pass  # another process created it first
    finally:
        await conn.close()


class PostgresStore(
    PostgresHistoryStore,
    PostgresHandoffStore,
    PostgresOutboxStore,
    PostgresConsoleStore,
    PostgresStatsStore,
    PostgresEventLogStore,  # reliability: the console's shared event log
    PostgresWabaStore,  # reliability: template statuses, marketing opt-outs, number changes
    PostgresMediaStore,  # media: files of media messages and their downloads
    PostgresAccountsStore,  # the desk: accounts, sessions, failed sign-ins
    PostgresDeskStore,  # the desk: inbox views and read markers
    PostgresAuditStore,  # mcp/search: the console's audit log
    PostgresSearchStore,  # mcp/search: full-text message search
    PostgresChatwootStore,  # chatwoot: id links, conversation twins, expected echoes
    PostgresKnowledgeStore,  # knowledge: stored knowledge bases, past-answer retrieval
    PostgresOpsStore,  # operations: dead-letter replays
    PostgresWorkflowStore,  # workflow: presence, the fair queue, assignment, notes, resolve
):
    """asyncpg pool behind the Store protocol."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._assigning = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> Self:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=_init_connection
        )
        return cls(pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def migrate(self) -> list[int]:
        async with self._pool.acquire() as conn:
            return await migrations.migrate(conn)

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> bool:
        try:
            return bool(await self._pool.fetchval("SELECT 1"))
        except (OSError, asyncpg.PostgresError):
            return False

    async def conversation(self, phone_number_id: PhoneNumberId, wa_id: WaId) -> Conversation:
        async with self._pool.acquire() as conn:
            return await self._upsert_conversation(conn, phone_number_id, wa_id, None)

    async def conversation_by_id(self, conversation_id: ConversationId) -> Conversation | None:
        row = await self._pool.fetchrow(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1", conversation_id
        )
        return to_conversation(row) if row is not None else None

    async def _upsert_conversation(
        self,
        conn: Connection,
        phone_number_id: PhoneNumberId,
        wa_id: WaId,
        customer_name: str | None,
    ) -> Conversation:
        # A plain SELECT first: the conversation almost always exists, and an upsert would take a
        # row lock on every message.
        row = await conn.fetchrow(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations"
            " WHERE phone_number_id = $1 AND wa_id = $2",
            phone_number_id,
            wa_id,
        )
        if row is None or (customer_name and row["customer_name"] != customer_name):
            row = await conn.fetchrow(
                "INSERT INTO conversations (phone_number_id, wa_id, customer_name)"
                " VALUES ($1, $2, $3)"
                " ON CONFLICT (phone_number_id, wa_id) DO UPDATE"
                " SET customer_name = COALESCE(EXCLUDED.customer_name, conversations.customer_name)"
                f" RETURNING {CONVERSATION_COLUMNS}",
                phone_number_id,
                wa_id,
                customer_name,
            )
        assert row is not None
        return to_conversation(row)

    async def record_inbound(self, message: NewInbound) -> tuple[Conversation, bool]:
        stored = await self.record_inbound_for_routing(message)
        return stored.conversation, stored.stored_now

    async def record_inbound_for_routing(self, message: NewInbound) -> StoredInbound:
        name = message.customer_name or None  # as `_upsert_conversation`: "" is no name
        args = [
            message.phone_number_id,
            message.wa_id,
            name,
            message.wamid,
            message.type,
            message.body,
            message.payload,
            message.sent_at,
        ]
        row = await self._pool.fetchrow(_INBOUND_WITH_STATE, *args)
        if row is None:
            # A customer's first message, or a new name: create or rename the conversation,
            # then the same statement again, asking for no name (the row now exists).
            async with self._pool.acquire() as conn:
                await self._upsert_conversation(conn, message.phone_number_id, message.wa_id, name)
            args[2] = None
            row = await self._pool.fetchrow(_INBOUND_WITH_STATE, *args)
            assert row is not None  # conversations are never deleted
        return StoredInbound(
            conversation=to_conversation(row),
            stored_now=row["stored_now"],
            routed=bool(row["routed"]),
            state=state_of(row),
        )

    async def recent_messages(
        self, conversation_id: ConversationId, *, limit: int, before: datetime | None = None
    ) -> Sequence[StoredMessage]:
        rows = await self._pool.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages"
            " WHERE conversation_id = $1 AND ($3::timestamptz IS NULL OR sent_at < $3)"
            " ORDER BY sent_at DESC, id DESC LIMIT $2",
            conversation_id,
            limit,
            before,
        )
        return [to_stored_message(r) for r in reversed(rows)]

    async def record_status(self, update: StatusUpdate) -> bool:
        # Both statements number the update's fields alike ($1 … $7).
        args = (
            update.phone_number_id,
            update.wamid,
            update.status.name.lower(),
            int(update.status),
            update.at,
            update.error_code,
            update.error_title,
        )
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO message_statuses (phone_number_id, wamid, status, status_rank, at,"
                " error_code, error_title) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT DO NOTHING RETURNING true",
                *args,
            )
            if not fresh:
                return False
            await conn.execute(
                "UPDATE messages SET status = $3, status_rank = $4, status_at = $5,"
                " error_code = COALESCE($6, error_code), error_reason = COALESCE($7, error_reason)"
                " WHERE phone_number_id = $1 AND wamid = $2 AND status_rank < $4",
                *args,
            )
            return True

    async def hand_to_human(self, conversation_id: ConversationId, *, expected_epoch: int) -> bool:
        changed = await self._pool.fetchval(
            "UPDATE conversations SET mode = 'human', epoch = epoch + 1, version = version + 1,"
            " updated_at = now() WHERE id = $1 AND epoch = $2 AND mode = 'bot' RETURNING true",
            conversation_id,
            expected_epoch,
        )
        return bool(changed)

    async def record_raw_change(
        self,
        *,
        field: str,
        phone_number_id: PhoneNumberId | None,
        dedupe_key: str,
        value: dict[str, Any],
    ) -> bool:
        inserted = await self._pool.fetchval(
            "INSERT INTO raw_changes (dedupe_key, field, phone_number_id, value)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
            dedupe_key,
            field,
            phone_number_id,
            value,
        )
        return bool(inserted)
