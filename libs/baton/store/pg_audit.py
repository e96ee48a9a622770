"""The console's audit log on PostgreSQL: append one row per accepted action, read them back."""

from __future__ import annotations

import asyncpg

from baton.store.audit_records import AuditEntry, Via
from baton.types import ConversationId, Mode

_INSERT = """
INSERT INTO console_audit (at, principal, principal_kind, via, action, conversation_id,
                           phone_number_id, changed, mode, epoch, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""

_TRAIL = """
SELECT at, principal, principal_kind, via, action, conversation_id, phone_number_id, changed,
       mode, epoch, detail
  FROM console_audit
 WHERE conversation_id = $1
 ORDER BY id
 LIMIT $2
"""


def _entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        at=row["at"],
        principal=row["principal"],
        principal_kind=row["principal_kind"],
        via=Via(row["via"]),
        action=row["action"],
        conversation_id=row["conversation_id"],
        phone_number_id=row["phone_number_id"],
        changed=row["changed"],
        mode=Mode(row["mode"]),
        epoch=row["epoch"],
        detail=row["detail"],
    )


class PostgresAuditStore:
    """Mixin of `PostgresStore` for the console's audit log (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def record_audit(self, entry: AuditEntry) -> None:
        await self._pool.execute(
            _INSERT,
            entry.at,
            entry.principal,
            entry.principal_kind,
            entry.via.value,
            entry.action,
            entry.conversation_id,
            entry.phone_number_id,
            entry.changed,
            entry.mode.value,
            entry.epoch,
            entry.detail,
        )

    async def audit_trail(
        self, conversation_id: ConversationId, *, limit: int = 500
    ) -> tuple[AuditEntry, ...]:
        rows = await self._pool.fetch(_TRAIL, conversation_id, limit)
        return tuple(_entry(r) for r in rows)
