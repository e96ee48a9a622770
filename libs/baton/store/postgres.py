"""The store port on PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import structlog

from baton.store import migrations
from baton.store.pg_console import PostgresConsoleStore
from baton.store.pg_handoff import PostgresHandoffStore
from baton.store.pg_history import PostgresHistoryStore
from baton.store.pg_outbox import PostgresOutboxStore
from baton.store.records import (
    Conversation,
    NewInbound,
    StatusUpdate,
    StoredMessage,
)
from baton.types import Author, ConversationId, Direction, Mode, PhoneNumberId, WaId

log = structlog.get_logger()

_CONVERSATION_COLUMNS = "id, phone_number_id, wa_id, customer_name, mode, epoch, last_activity_at"
_MESSAGE_COLUMNS = (
    "id, conversation_id, wamid, direction, author, type, body, sent_at, imported, status,"
    " error_code, agent_id"
)


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


def _conversation(row: asyncpg.Record) -> Conversation:
    return Conversation(
        id=row["id"],
        phone_number_id=row["phone_number_id"],
        wa_id=row["wa_id"],
        customer_name=row["customer_name"],
        mode=Mode(row["mode"]),
        epoch=row["epoch"],
        last_activity_at=row["last_activity_at"],
    )


def _message(row: asyncpg.Record) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        wamid=row["wamid"],
        direction=Direction(row["direction"]),
        author=Author(row["author"]),
        type=row["type"],
        body=row["body"],
        sent_at=row["sent_at"],
        imported=row["imported"],
        status=row["status"],
        error_code=row["error_code"],
        agent_id=row["agent_id"],
    )


class PostgresStore(
    PostgresHistoryStore, PostgresHandoffStore, PostgresOutboxStore, PostgresConsoleStore
):
    """asyncpg pool behind the Store protocol."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

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
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = $1", conversation_id
        )
        return _conversation(row) if row is not None else None

    async def _upsert_conversation(
        self,
        conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        phone_number_id: PhoneNumberId,
        wa_id: WaId,
        customer_name: str | None,
    ) -> Conversation:
        # A plain SELECT first: the conversation almost always exists, and an upsert would take a
        # row lock on every message.
        row = await conn.fetchrow(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations"
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
                f" RETURNING {_CONVERSATION_COLUMNS}",
                phone_number_id,
                wa_id,
                customer_name,
            )
        assert row is not None
        return _conversation(row)

    async def record_inbound(self, message: NewInbound) -> tuple[Conversation, bool]:
        async with self._pool.acquire() as conn, conn.transaction():
            conversation = await self._upsert_conversation(
                conn, message.phone_number_id, message.wa_id, message.customer_name
            )
            inserted = await conn.fetchval(
                "INSERT INTO messages (conversation_id, phone_number_id, wamid, direction, author,"
                " type, body, payload, sent_at)"
                " VALUES ($1, $2, $3, 'in', 'customer', $4, $5, $6, $7)"
                " ON CONFLICT (phone_number_id, wamid) DO NOTHING RETURNING id",
                conversation.id,
                message.phone_number_id,
                message.wamid,
                message.type,
                message.body,
                message.payload,
                message.sent_at,
            )
            if inserted is None:
                return conversation, False
            await conn.execute(
                "UPDATE conversations SET last_activity_at = GREATEST(last_activity_at, $2),"
                " updated_at = now() WHERE id = $1",
                conversation.id,
                message.sent_at,
            )
            return conversation, True

    async def recent_messages(
        self, conversation_id: ConversationId, *, limit: int, before: datetime | None = None
    ) -> Sequence[StoredMessage]:
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages"
            " WHERE conversation_id = $1 AND ($3::timestamptz IS NULL OR sent_at < $3)"
            " ORDER BY sent_at DESC, id DESC LIMIT $2",
            conversation_id,
            limit,
            before,
        )
        return [_message(r) for r in reversed(rows)]

    async def record_status(self, update: StatusUpdate) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO message_statuses (phone_number_id, wamid, status, status_rank, at,"
                " error_code, error_title) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT DO NOTHING RETURNING true",
                update.phone_number_id,
                update.wamid,
                update.status.name.lower(),
                int(update.status),
                update.at,
                update.error_code,
                update.error_title,
            )
            if not fresh:
                return False
            await conn.execute(
                "UPDATE messages SET status = $3, status_rank = $4, status_at = $5,"
                " error_code = COALESCE($6, error_code), error_reason = COALESCE($7, error_reason)"
                " WHERE phone_number_id = $1 AND wamid = $2 AND status_rank < $4",
                update.phone_number_id,
                update.wamid,
                update.status.name.lower(),
                int(update.status),
                update.at,
                update.error_code,
                update.error_title,
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
