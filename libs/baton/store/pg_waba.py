"""Account-level WhatsApp updates on PostgreSQL: template statuses, marketing opt-outs, new numbers."""

from __future__ import annotations

import asyncpg

from baton.store.waba_records import (
    MarketingPreference,
    NumberChange,
    NumberChangeOutcome,
    NumberChangeResult,
    TemplateCategoryUpdate,
    TemplateStatus,
    TemplateStatusUpdate,
)
from baton.types import PhoneNumberId, WaId

_TEMPLATE_COLUMNS = "waba_id, template_id, name, language, category, status, reason, status_at"


def _template(row: asyncpg.Record) -> TemplateStatus:
    return TemplateStatus(
        waba_id=row["waba_id"],
        template_id=row["template_id"],
        name=row["name"],
        language=row["language"],
        category=row["category"],
        status=row["status"],
        reason=row["reason"],
        status_at=row["status_at"],
    )


class PostgresWabaStore:
    """Mixin of `PostgresStore` for template statuses, opt-outs and number changes."""

    _pool: asyncpg.Pool

    async def record_template_status(self, update: TemplateStatusUpdate) -> bool:
        # Webhooks arrive out of order: an older status never overwrites a newer one.
        row = await self._pool.fetchval(
            "INSERT INTO template_statuses AS t"
            " (waba_id, template_id, name, language, category, status, reason, status_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (waba_id, template_id) DO UPDATE SET"
            "  name = coalesce(EXCLUDED.name, t.name),"
            "  language = coalesce(EXCLUDED.language, t.language),"
            "  category = CASE WHEN t.category_at IS NULL OR t.category_at <= EXCLUDED.status_at"
            "   THEN coalesce(EXCLUDED.category, t.category) ELSE t.category END,"
            "  status = EXCLUDED.status, reason = EXCLUDED.reason, status_at = EXCLUDED.status_at"
            " WHERE t.status_at IS NULL OR t.status_at <= EXCLUDED.status_at"
            " RETURNING 1",
            update.waba_id,
            update.template_id,
            update.name,
            update.language,
            update.category,
            update.status,
            update.reason,
            update.at,
        )
        return row is not None

    async def record_template_category(self, update: TemplateCategoryUpdate) -> bool:
        row = await self._pool.fetchval(
            "INSERT INTO template_statuses AS t"
            " (waba_id, template_id, name, language, category, category_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (waba_id, template_id) DO UPDATE SET"
            "  name = coalesce(EXCLUDED.name, t.name),"
            "  language = coalesce(EXCLUDED.language, t.language),"
            "  category = EXCLUDED.category, category_at = EXCLUDED.category_at"
            " WHERE t.category_at IS NULL OR t.category_at <= EXCLUDED.category_at"
            " RETURNING 1",
            update.waba_id,
            update.template_id,
            update.name,
            update.language,
            update.category,
            update.at,
        )
        return row is not None

    async def template_status(
        self, waba_id: str, name: str, language: str | None = None
    ) -> TemplateStatus | None:
        row = await self._pool.fetchrow(
            f"SELECT {_TEMPLATE_COLUMNS} FROM template_statuses"
            " WHERE waba_id = $1 AND name = $2 AND ($3::text IS NULL OR language = $3)"
            " ORDER BY status_at DESC NULLS LAST LIMIT 1",
            waba_id,
            name,
            language,
        )
        return _template(row) if row is not None else None

    async def template_statuses(self, waba_id: str) -> tuple[TemplateStatus, ...]:
        rows = await self._pool.fetch(
            f"SELECT {_TEMPLATE_COLUMNS} FROM template_statuses WHERE waba_id = $1"
            " ORDER BY name, language",
            waba_id,
        )
        return tuple(_template(row) for row in rows)

    async def record_marketing_preference(self, preference: MarketingPreference) -> bool:
        row = await self._pool.fetchval(
            "INSERT INTO marketing_preferences AS p"
            " (phone_number_id, wa_id, opted_out, detail, changed_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET opted_out = EXCLUDED.opted_out,"
            "  detail = EXCLUDED.detail, changed_at = EXCLUDED.changed_at"
            " WHERE p.changed_at < EXCLUDED.changed_at"
            " RETURNING 1",
            preference.phone_number_id,
            preference.wa_id,
            preference.opted_out,
            preference.detail,
            preference.at,
        )
        return row is not None

    async def marketing_opted_out(self, phone_number_id: PhoneNumberId, wa_id: WaId) -> bool:
        opted_out: bool | None = await self._pool.fetchval(
            "SELECT opted_out FROM marketing_preferences WHERE phone_number_id = $1 AND wa_id = $2",
            phone_number_id,
            wa_id,
        )
        return bool(opted_out)

    async def move_customer(self, change: NumberChange) -> NumberChangeResult:
        async with self._pool.acquire() as conn, conn.transaction():
            done = await conn.fetchrow(
                "SELECT outcome, conversation_id FROM customer_number_changes"
                " WHERE phone_number_id = $1 AND wamid = $2",
                change.phone_number_id,
                change.wamid,
            )
            if done is not None:
                return NumberChangeResult(
                    outcome=NumberChangeOutcome(done["outcome"]),
                    conversation_id=done["conversation_id"],
                    recorded_now=False,
                )
            # Both rows locked in a fixed order, so two notices at once cannot deadlock.
            rows = await conn.fetch(
                "SELECT id, wa_id FROM conversations WHERE phone_number_id = $1"
                " AND wa_id = ANY($2::text[]) ORDER BY id FOR UPDATE",
                change.phone_number_id,
                [change.old_wa_id, change.new_wa_id],
            )
            by_wa_id = {row["wa_id"]: row["id"] for row in rows}
            old = by_wa_id.get(change.old_wa_id)
            if old is None:
                outcome = NumberChangeOutcome.NO_CONVERSATION
                conversation_id = by_wa_id.get(change.new_wa_id)
            elif change.new_wa_id in by_wa_id:
                outcome, conversation_id = NumberChangeOutcome.KEPT_BOTH, old
            else:
                # The handoff state keeps its own copy of wa_id (sends go to it). The version
                # moves too, so a router saving a state it read before this fails its
                # compare-and-set, reloads and keeps the new number.
                await conn.execute(
                    "UPDATE conversations SET wa_id = $2, version = version + 1, updated_at = now(),"
                    " state = CASE WHEN state ? 'wa_id'"
                    "  THEN jsonb_set(state, '{wa_id}', to_jsonb($2::text)) ELSE state END"
                    " WHERE id = $1",
                    old,
                    change.new_wa_id,
                )
                outcome, conversation_id = NumberChangeOutcome.MOVED, old
            inserted = await conn.fetchval(
                "INSERT INTO customer_number_changes (phone_number_id, wamid, old_wa_id,"
                " new_wa_id, conversation_id, outcome, changed_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (phone_number_id, wamid) DO NOTHING RETURNING 1",
                change.phone_number_id,
                change.wamid,
                change.old_wa_id,
                change.new_wa_id,
                conversation_id,
                outcome.value,
                change.at,
            )
            if inserted is None:
                # A concurrent delivery of the same notice got there first: undo ours.
                raise _AppliedConcurrently
            return NumberChangeResult(
                outcome=outcome, conversation_id=conversation_id, recorded_now=True
            )


class _AppliedConcurrently(Exception):
    """Rolls the transaction back; the caller's retry finds the first one's record."""
