"""The media area on PostgreSQL: one row per media message and its download's fate."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from baton.store.media_records import MediaRecord, MediaStatus, MessageMedia, NewMedia
from baton.types import Direction, PhoneNumberId, Wamid

MEDIA_COLUMNS = (
    "id, phone_number_id, conversation_id, direction, kind, wamid, idempotency_key, media_id,"
    " mime_type, expected_sha256, caption, filename, voice, size, sha256, blob_key, status,"
    " reason, attempts, transcript, description"
)


def to_media(row: asyncpg.Record) -> MediaRecord:
    """A row holding `MEDIA_COLUMNS`."""
    return MediaRecord(
        id=row["id"],
        phone_number_id=row["phone_number_id"],
        conversation_id=row["conversation_id"],
        direction=Direction(row["direction"]),
        kind=row["kind"],
        wamid=row["wamid"],
        idempotency_key=row["idempotency_key"],
        media_id=row["media_id"],
        mime_type=row["mime_type"],
        expected_sha256=row["expected_sha256"],
        caption=row["caption"],
        filename=row["filename"],
        voice=row["voice"],
        size=row["size"],
        sha256=row["sha256"],
        blob_key=row["blob_key"],
        status=MediaStatus(row["status"]),
        reason=row["reason"],
        attempts=row["attempts"],
        transcript=row["transcript"],
        description=row["description"],
    )


# A message's file, for the console's history query: joined by wamid (inbound) or send key
# (outbound); columns prefixed so they never shadow the message's own.
MESSAGE_MEDIA_JOIN = """
  LEFT JOIN LATERAL (
        SELECT md.id AS media_ref, md.kind AS media_kind, md.mime_type AS media_mime_type,
               md.size AS media_size, md.caption AS media_caption,
               md.filename AS media_filename, md.voice AS media_voice,
               md.status AS media_status, md.reason AS media_reason,
               md.transcript AS media_transcript, md.description AS media_description
          FROM media md
         WHERE md.phone_number_id = messages.phone_number_id
           AND (md.wamid = messages.wamid OR md.idempotency_key = messages.idempotency_key)
         LIMIT 1) md ON true
"""
MESSAGE_MEDIA_COLUMNS = (
    "media_ref, media_kind, media_mime_type, media_size, media_caption, media_filename,"
    " media_voice, media_status, media_reason, media_transcript, media_description"
)


def message_media(row: asyncpg.Record) -> MessageMedia | None:
    """The file of a history row selected with `MESSAGE_MEDIA_JOIN`, if it has one."""
    if row["media_ref"] is None:
        return None
    return MessageMedia(
        id=row["media_ref"],
        kind=row["media_kind"],
        mime_type=row["media_mime_type"],
        size=row["media_size"],
        caption=row["media_caption"],
        filename=row["media_filename"],
        voice=row["media_voice"],
        status=MediaStatus(row["media_status"]),
        reason=row["media_reason"],
        transcript=row["media_transcript"],
        description=row["media_description"],
    )


_REGISTER = f"""
INSERT INTO media (phone_number_id, conversation_id, direction, kind, wamid, idempotency_key,
                   media_id, mime_type, expected_sha256, caption, filename, voice, blob_key,
                   size, sha256, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
        CASE WHEN $13::text IS NULL THEN 'pending' ELSE 'available' END)
ON CONFLICT DO NOTHING
RETURNING {MEDIA_COLUMNS}
"""


class PostgresMediaStore:
    """Mixin of `PostgresStore` for the media area (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def register_media(self, media: NewMedia) -> MediaRecord:
        row = await self._pool.fetchrow(
            _REGISTER,
            media.phone_number_id,
            media.conversation_id,
            media.direction.value,
            media.kind,
            media.wamid,
            media.idempotency_key,
            media.media_id,
            media.mime_type,
            media.expected_sha256,
            media.caption,
            media.filename,
            media.voice,
            media.blob_key,
            media.size,
            media.sha256,
        )
        if row is None:  # registered before: by wamid, or by send key
            row = await self._pool.fetchrow(
                f"SELECT {MEDIA_COLUMNS} FROM media"
                " WHERE (phone_number_id = $1 AND wamid = $2) OR idempotency_key = $3",
                media.phone_number_id,
                media.wamid,
                media.idempotency_key,
            )
        assert row is not None
        return to_media(row)

    async def media_by_id(self, media_id: int) -> MediaRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {MEDIA_COLUMNS} FROM media WHERE id = $1", media_id
        )
        return to_media(row) if row is not None else None

    async def media_by_wamids(
        self, phone_number_id: PhoneNumberId, wamids: Sequence[Wamid]
    ) -> dict[Wamid, MediaRecord]:
        rows = await self._pool.fetch(
            f"SELECT {MEDIA_COLUMNS} FROM media WHERE phone_number_id = $1 AND wamid = ANY($2)",
            phone_number_id,
            list(wamids),
        )
        return {row["wamid"]: to_media(row) for row in rows}

    async def media_attempted(self, media_id: int) -> int:
        attempts = await self._pool.fetchval(
            "UPDATE media SET attempts = attempts + 1, updated_at = now() WHERE id = $1"
            " RETURNING attempts",
            media_id,
        )
        return int(attempts or 0)

    async def media_available(
        self, media_id: int, *, blob_key: str, size: int, sha256: str, mime_type: str | None
    ) -> None:
        await self._pool.execute(
            "UPDATE media SET status = 'available', blob_key = $2, size = $3, sha256 = $4,"
            " mime_type = COALESCE($5, mime_type), reason = NULL, updated_at = now()"
            " WHERE id = $1",
            media_id,
            blob_key,
            size,
            sha256,
            mime_type,
        )

    async def media_unavailable(self, media_id: int, *, reason: str) -> None:
        # Never downgrades a file that made it: a late failure of a duplicate changes nothing.
        await self._pool.execute(
            "UPDATE media SET status = 'unavailable', reason = $2, updated_at = now()"
            " WHERE id = $1 AND status <> 'available'",
            media_id,
            reason[:500],
        )

    async def media_uploaded(self, media_id: int, *, meta_media_id: str) -> None:
        await self._pool.execute(
            "UPDATE media SET media_id = $2, updated_at = now() WHERE id = $1",
            media_id,
            meta_media_id,
        )

    async def media_described(
        self, media_id: int, *, transcript: str | None = None, description: str | None = None
    ) -> None:
        await self._pool.execute(
            "UPDATE media SET transcript = COALESCE($2, transcript),"
            " description = COALESCE($3, description), updated_at = now() WHERE id = $1",
            media_id,
            transcript,
            description,
        )
