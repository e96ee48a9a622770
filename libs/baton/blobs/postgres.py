"""Blobs in PostgreSQL: the default adapter, needing nothing beyond the store's database.

A blob is split into fixed-size chunks (`blob_chunks`), so a Range read fetches only the chunks
it covers and no row grows past a few hundred kilobytes (TOAST handles those well).
"""

from __future__ import annotations

from typing import Self

import asyncpg

from baton.blobs.port import BlobNotFound, BlobStat, ByteRange

CHUNK_BYTES = 512 * 1024


class PostgresBlobStore:
    """`BlobStore` on an asyncpg pool (tables from migration 0040)."""

    def __init__(self, pool: asyncpg.Pool, *, owns_pool: bool = False) -> None:
        self._pool = pool
        self._owns_pool = owns_pool

    @classmethod
    async def open(cls, url: str) -> Self:
        """A store with its own small pool on the database at `url`."""
        return cls(await asyncpg.create_pool(url, min_size=1, max_size=4), owns_pool=True)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        chunks = [
            (key, seq, data[offset : offset + CHUNK_BYTES])
            for seq, offset in enumerate(range(0, len(data), CHUNK_BYTES))
        ]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM blob_chunks WHERE key = $1", key)
            await conn.execute(
                "INSERT INTO blobs (key, size, content_type) VALUES ($1, $2, $3)"
                " ON CONFLICT (key) DO UPDATE SET size = EXCLUDED.size,"
                " content_type = EXCLUDED.content_type, created_at = now()",
                key,
                len(data),
                content_type,
            )
            if chunks:
                await conn.copy_records_to_table(
                    "blob_chunks", records=chunks, columns=("key", "seq", "data")
                )

    async def stat(self, key: str) -> BlobStat | None:
        row = await self._pool.fetchrow("SELECT size, content_type FROM blobs WHERE key = $1", key)
        if row is None:
            return None
        return BlobStat(size=row["size"], content_type=row["content_type"])

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        stat = await self.stat(key)
        if stat is None:
            raise BlobNotFound(key)
        if stat.size == 0:
            return b""
        wanted = byte_range or ByteRange(0, stat.size - 1)
        end = min(wanted.end, stat.size - 1)
        first, last = wanted.start // CHUNK_BYTES, end // CHUNK_BYTES
        rows = await self._pool.fetch(
            "SELECT data FROM blob_chunks WHERE key = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
            key,
            first,
            last,
        )
        joined = b"".join(bytes(row["data"]) for row in rows)
        offset = wanted.start - first * CHUNK_BYTES
        return joined[offset : offset + (end - wanted.start + 1)]

    async def delete(self, key: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM blob_chunks WHERE key = $1", key)
            await conn.execute("DELETE FROM blobs WHERE key = $1", key)

    async def close(self) -> None:
        if self._owns_pool:
            await self._pool.close()
