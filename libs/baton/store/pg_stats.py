"""The stats area on PostgreSQL: cheap aggregate counts that services export as gauges."""

from __future__ import annotations

import asyncpg

from baton.types import Mode


class PostgresStatsStore:
    """Mixin of `PostgresStore` for aggregate counts (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def conversations_by_mode(self) -> dict[Mode, int]:
        # One grouped count over the table (three groups at most), no per-row work in Python.
        rows = await self._pool.fetch("SELECT mode, count(*) AS n FROM conversations GROUP BY mode")
        counts = dict.fromkeys(Mode, 0)
        for row in rows:
            counts[Mode(row["mode"])] = row["n"]
        return counts
