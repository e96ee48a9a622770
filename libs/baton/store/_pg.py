"""What the PostgreSQL adapter's area mixins share: the connection type, row mappers, touches."""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

import asyncpg

from baton.store.records import Conversation, StoredMessage
from baton.types import Author, ConversationId, Direction, Mode

Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"

CONVERSATION_COLUMNS = "id, phone_number_id, wa_id, customer_name, mode, epoch, last_activity_at"
MESSAGE_COLUMNS = (
    "id, conversation_id, wamid, direction, author, type, body, sent_at, imported, status,"
    " error_code, agent_id"
)


def to_conversation(row: asyncpg.Record) -> Conversation:
    """A row holding `CONVERSATION_COLUMNS`."""
    return Conversation(
        id=row["id"],
        phone_number_id=row["phone_number_id"],
        wa_id=row["wa_id"],
        customer_name=row["customer_name"],
        mode=Mode(row["mode"]),
        epoch=row["epoch"],
        last_activity_at=row["last_activity_at"],
    )


def to_stored_message(row: asyncpg.Record) -> StoredMessage:
    """A row holding `MESSAGE_COLUMNS` (extra columns are ignored)."""
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


async def touch_conversation(
    conn: Connection, conversation_id: ConversationId, at: datetime
) -> None:
    """Move the conversation's last activity to `at`, never back (messages arrive out of order)."""
    await conn.execute(
        "UPDATE conversations SET last_activity_at = GREATEST(last_activity_at, $2),"
        " updated_at = now() WHERE id = $1",
        conversation_id,
        at,
    )
