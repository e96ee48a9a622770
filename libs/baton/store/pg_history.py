"""The history area on PostgreSQL: onboarding, one-shot sync requests, backlog import, contacts.

Every write here is one short statement (or a tiny transaction): a backlog of millions of messages
is imported as many small idempotent batches, never as one transaction holding locks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime

import asyncpg

from baton.store.history_records import (
    ChunkStart,
    ContactChange,
    HistoryRow,
    ImportProgress,
    ImportState,
    NumberHistory,
    Onboarding,
    Resolution,
    SyncClaim,
    SyncExpiry,
    SyncOutcome,
    SyncRequestState,
    SyncStatus,
    SyncType,
)
from baton.types import ConversationId, PhoneNumberId, WaId

# Conversation ids never change once created, so a bounded cache saves a lookup per batch.
_CONVERSATION_CACHE_SIZE = 200_000

_ONBOARDING_COLUMNS = (
    "phone_number_id, display_phone_number, waba_id, generation, onboarded_at, sync_deadline_at,"
    " disabled_at, disabled_reason"
)
_SYNC_COLUMNS = (
    "phone_number_id, sync_type, status, attempts, next_attempt_at, sending_since, request_id,"
    " error_code, last_error, resolved_by, updated_at"
)

# The rows of one batch as arrays ($3 … $12, in the order `_columns` gives them), $1 the number.
_INSERT_ROWS = """
    INSERT INTO messages (conversation_id, phone_number_id, wamid, direction, author, type, body,
                          payload, sent_at, imported, status, status_rank)
    SELECT u.c, $1, u.w, u.d, u.a, u.t, u.b, u.p::jsonb, u.s, true, u.st, u.sr
    FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::timestamptz[], $11::text[], $12::smallint[])
         AS u(c, w, d, a, t, b, p, s, st, sr)"""

# Rows of one batch: a single INSERT … SELECT FROM unnest(arrays) … ON CONFLICT DO NOTHING, and
# the chunk's counter bumped by what was really inserted, in the same statement.
_INSERT_BATCH = f"""
WITH ins AS ({_INSERT_ROWS}
    ON CONFLICT (phone_number_id, wamid) DO NOTHING
    RETURNING 1
), counted AS (SELECT count(*)::int AS n FROM ins)
UPDATE history_chunks SET messages_stored = messages_stored + counted.n
FROM counted WHERE phone_number_id = $1 AND chunk_key = $2
RETURNING counted.n
"""

# Recent media (last 14 days) arrives apart from the chunks: it fills in the placeholder the
# chunk stored, or is stored itself if it came first (then the placeholder is the duplicate).
_UPSERT_MEDIA = f"""
WITH up AS ({_INSERT_ROWS}
    ON CONFLICT (phone_number_id, wamid) DO UPDATE
        SET type = EXCLUDED.type, body = EXCLUDED.body, payload = EXCLUDED.payload
        WHERE messages.imported AND messages.type = 'media_placeholder'
    RETURNING (xmax = 0) AS inserted
), counted AS (SELECT count(*) FILTER (WHERE inserted)::int AS n FROM up)
UPDATE history_chunks SET messages_stored = messages_stored + counted.n
FROM counted WHERE phone_number_id = $1 AND chunk_key = $2
RETURNING counted.n
"""

_PROGRESS = """
WITH done AS (
    SELECT * FROM history_chunks WHERE phone_number_id = ANY($1::text[])
), gaps AS (
    SELECT phone_number_id,
           sum(max_order - min_order + 1 - orders)::int AS missing
    FROM (SELECT phone_number_id, phase, min(chunk_order) AS min_order,
                 max(chunk_order) AS max_order, count(DISTINCT chunk_order) AS orders
          FROM done WHERE kind = 'chunk' AND completed_at IS NOT NULL
          GROUP BY phone_number_id, phase) per_phase
    GROUP BY phone_number_id
)
SELECT d.phone_number_id,
       bool_or(d.kind = 'declined') AS declined,
       coalesce(max(d.progress) FILTER (WHERE d.kind = 'chunk' AND d.completed_at IS NOT NULL), 0)
           AS percent,
       (array_agg(d.phase ORDER BY d.progress DESC, d.phase DESC, d.chunk_order DESC)
           FILTER (WHERE d.kind = 'chunk' AND d.completed_at IS NOT NULL))[1] AS phase,
       (array_agg(d.chunk_order ORDER BY d.progress DESC, d.phase DESC, d.chunk_order DESC)
           FILTER (WHERE d.kind = 'chunk' AND d.completed_at IS NOT NULL))[1] AS chunk,
       count(DISTINCT (d.phase, d.chunk_order))
           FILTER (WHERE d.kind = 'chunk' AND d.completed_at IS NOT NULL)::int AS chunks,
       count(*) FILTER (WHERE d.completed_at IS NULL)::int AS in_flight,
       coalesce(sum(d.messages_stored), 0)::bigint AS stored,
       coalesce(sum(d.messages_rejected), 0)::bigint AS rejected,
       max(d.completed_at) AS last_at,
       coalesce(max(g.missing), 0) AS missing,
       count(*) AS items
FROM done d LEFT JOIN gaps g USING (phone_number_id)
GROUP BY d.phone_number_id
"""


def _onboarding(row: asyncpg.Record) -> Onboarding:
    return Onboarding(
        phone_number_id=row["phone_number_id"],
        display_phone_number=row["display_phone_number"],
        waba_id=row["waba_id"],
        generation=row["generation"],
        onboarded_at=row["onboarded_at"],
        sync_deadline_at=row["sync_deadline_at"],
        disabled_at=row["disabled_at"],
        disabled_reason=row["disabled_reason"],
    )


def _sync(row: asyncpg.Record) -> SyncRequestState:
    return SyncRequestState(
        sync_type=SyncType(row["sync_type"]),
        status=SyncStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        sending_since=row["sending_since"],
        request_id=row["request_id"],
        error_code=row["error_code"],
        last_error=row["last_error"],
        resolved_by=row["resolved_by"],
        updated_at=row["updated_at"],
    )


def _progress(row: asyncpg.Record | None) -> ImportProgress:
    if row is None or not row["items"]:
        return ImportProgress()
    declined = bool(row["declined"])
    missing = int(row["missing"])
    percent = int(row["percent"])
    in_flight = int(row["in_flight"])
    if declined:
        state = ImportState.DECLINED
    elif percent >= 100 and missing == 0 and in_flight == 0:
        state = ImportState.COMPLETED
    else:
        state = ImportState.IMPORTING
    return ImportProgress(
        state=state,
        phase=row["phase"],
        chunk=row["chunk"],
        percent=percent,
        chunks_imported=int(row["chunks"]),
        chunks_in_flight=in_flight,
        chunks_missing=missing,
        messages_imported=int(row["stored"]),
        messages_rejected=int(row["rejected"]),
        declined=declined,
        last_chunk_at=row["last_at"],
    )


_COPY_COLUMNS = (
    "conversation_id",
    "phone_number_id",
    "wamid",
    "direction",
    "author",
    "type",
    "body",
    "payload",
    "sent_at",
    "imported",
    "status",
    "status_rank",
)


def _copy_field(value: str) -> str:
    # COPY's text format: backslash, tab, newline and carriage return are escaped; PostgreSQL
    # text can hold no NUL at all. The checks are C-speed scans and almost never match.
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value:
        value = value.replace("\t", "\\t")
    if "\n" in value:
        value = value.replace("\n", "\\n")
    if "\r" in value:
        value = value.replace("\r", "\\r")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value


def _copy_text(
    phone_number_id: PhoneNumberId,
    rows: Sequence[HistoryRow],
    conversations: Mapping[WaId, ConversationId],
) -> bytes:
    pnid = _copy_field(phone_number_id)
    lines = [
        "\t".join(
            (
                str(conversations[r.wa_id]),
                pnid,
                _copy_field(r.wamid),
                r.direction,
                r.author,
                _copy_field(r.type),
                _copy_field(r.body),
                _copy_field(r.payload),
                r.sent_at.isoformat(),
                "t",
                "\\N" if r.status is None else _copy_field(r.status),
                str(r.status_rank),
            )
        )
        for r in rows
    ]
    lines.append("")
    return "\n".join(lines).encode()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _columns(
    rows: Sequence[HistoryRow], conversations: Mapping[WaId, ConversationId]
) -> tuple[list[object], ...]:
    return (
        [conversations[r.wa_id] for r in rows],
        [r.wamid for r in rows],
        [r.direction for r in rows],
        [r.author for r in rows],
        [r.type for r in rows],
        [r.body for r in rows],
        [r.payload for r in rows],
        [r.sent_at for r in rows],
        [r.status for r in rows],
        [r.status_rank for r in rows],
    )


class PostgresHistoryStore:
    """Mixin of `PostgresStore` for the history area (uses `self._pool`)."""

    _pool: asyncpg.Pool
    _conversation_ids: dict[tuple[PhoneNumberId, WaId], ConversationId] | None = None

    # --- onboarding and numbers -----------------------------------------------------

    async def onboard_number(
        self,
        phone_number_id: PhoneNumberId,
        *,
        now: datetime,
        deadline: datetime,
        display_phone_number: str | None = None,
        waba_id: str | None = None,
    ) -> tuple[Onboarding, bool]:
        """Record an onboarding and queue both syncs; (existing, False) if already onboarded.

        A disabled (offboarded) number starts a new generation: Meta accepts new syncs after a
        re-onboarding, and only then.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_ONBOARDING_COLUMNS} FROM coexistence_numbers"
                " WHERE phone_number_id = $1 FOR UPDATE",
                phone_number_id,
            )
            if row is not None and row["disabled_at"] is None and row["onboarded_at"] is not None:
                return _onboarding(row), False
            if row is None:
                row = await conn.fetchrow(
                    "INSERT INTO coexistence_numbers (phone_number_id, display_phone_number,"
                    " waba_id, onboarded_at, sync_deadline_at, updated_at)"
                    " VALUES ($1, $2, $3, $4, $5, $4)"
                    f" RETURNING {_ONBOARDING_COLUMNS}",
                    phone_number_id,
                    display_phone_number,
                    waba_id,
                    now,
                    deadline,
                )
            else:
                # Offboarded (or only seen in webhooks so far): a new onboarding starts.
                row = await conn.fetchrow(
                    "UPDATE coexistence_numbers SET generation = generation"
                    " + CASE WHEN onboarded_at IS NULL THEN 0 ELSE 1 END,"
                    " onboarded_at = $2, sync_deadline_at = $3, disabled_at = NULL,"
                    " disabled_reason = NULL, updated_at = $2,"
                    " display_phone_number = coalesce($4, display_phone_number),"
                    " waba_id = coalesce($5, waba_id)"
                    f" WHERE phone_number_id = $1 RETURNING {_ONBOARDING_COLUMNS}",
                    phone_number_id,
                    now,
                    deadline,
                    display_phone_number,
                    waba_id,
                )
                await conn.execute(
                    "DELETE FROM history_sync_requests WHERE phone_number_id = $1",
                    phone_number_id,
                )
            await conn.executemany(
                "INSERT INTO history_sync_requests (phone_number_id, sync_type, next_attempt_at,"
                " updated_at) VALUES ($1, $2, $3, $3)",
                [(phone_number_id, t.value, now) for t in SyncType],
            )
        assert row is not None
        return _onboarding(row), True

    async def learn_number(
        self, phone_number_id: PhoneNumberId, *, display_phone_number: str, waba_id: str | None
    ) -> None:
        """Remember the display number and WABA seen in a webhook (offboarding names only those)."""
        await self._pool.execute(
            "INSERT INTO coexistence_numbers (phone_number_id, display_phone_number, waba_id)"
            " VALUES ($1, $2, $3) ON CONFLICT (phone_number_id) DO UPDATE"
            " SET display_phone_number = EXCLUDED.display_phone_number,"
            "     waba_id = coalesce(EXCLUDED.waba_id, coexistence_numbers.waba_id),"
            "     updated_at = now()"
            " WHERE coexistence_numbers.display_phone_number"
            "         IS DISTINCT FROM EXCLUDED.display_phone_number"
            "    OR (EXCLUDED.waba_id IS NOT NULL"
            "        AND coexistence_numbers.waba_id IS DISTINCT FROM EXCLUDED.waba_id)",
            phone_number_id,
            display_phone_number,
            waba_id,
        )

    async def disable_number(
        self,
        *,
        phone_number_id: PhoneNumberId | None,
        display_phone_number: str | None,
        reason: str,
        now: datetime,
    ) -> list[PhoneNumberId]:
        """Offboard: mark the number(s) disabled; returns those newly disabled."""
        rows = await self._pool.fetch(
            "UPDATE coexistence_numbers SET disabled_at = $3, disabled_reason = $4, updated_at = $3"
            " WHERE disabled_at IS NULL AND (phone_number_id = $1 OR display_phone_number = $2)"
            " RETURNING phone_number_id",
            phone_number_id,
            display_phone_number,
            now,
            reason,
        )
        disabled = [r["phone_number_id"] for r in rows]
        if phone_number_id is not None and not disabled:
            # Never onboarded through Baton (or already disabled): still remember the offboarding.
            row = await self._pool.fetchrow(
                "INSERT INTO coexistence_numbers (phone_number_id, display_phone_number,"
                " disabled_at, disabled_reason, updated_at)"
                " VALUES ($1, $2, $3, $4, $3) ON CONFLICT DO NOTHING"
                " RETURNING phone_number_id",
                phone_number_id,
                display_phone_number,
                now,
                reason,
            )
            if row is not None:
                disabled.append(row["phone_number_id"])
        return disabled

    async def number_disabled(self, phone_number_id: PhoneNumberId) -> bool:
        """True once the number was offboarded (PARTNER_REMOVED) and not onboarded again."""
        return bool(
            await self._pool.fetchval(
                "SELECT disabled_at IS NOT NULL FROM coexistence_numbers"
                " WHERE phone_number_id = $1",
                phone_number_id,
            )
        )

    async def number_history(self, phone_number_id: PhoneNumberId) -> NumberHistory | None:
        """Onboarding, sync requests and import progress of one number (None: never seen)."""
        found = await self._histories([phone_number_id])
        return found[0] if found else None

    async def numbers_history(
        self, *, onboarded_since: datetime | None = None
    ) -> list[NumberHistory]:
        """The same for every number onboarded (since a time) or sending history."""
        if onboarded_since is not None:
            ids = await self._pool.fetch(
                "SELECT phone_number_id FROM coexistence_numbers WHERE onboarded_at >= $1"
                " ORDER BY 1",
                onboarded_since,
            )
        else:
            ids = await self._pool.fetch(
                "SELECT phone_number_id FROM coexistence_numbers"
                " UNION SELECT DISTINCT phone_number_id FROM history_chunks ORDER BY 1"
            )
        return await self._histories([r["phone_number_id"] for r in ids])

    async def _histories(self, ids: Sequence[PhoneNumberId]) -> list[NumberHistory]:
        if not ids:
            return []
        async with self._pool.acquire() as conn:
            numbers = {
                r["phone_number_id"]: _onboarding(r)
                for r in await conn.fetch(
                    f"SELECT {_ONBOARDING_COLUMNS} FROM coexistence_numbers"
                    " WHERE phone_number_id = ANY($1::text[])",
                    list(ids),
                )
            }
            syncs: dict[PhoneNumberId, list[SyncRequestState]] = {}
            for r in await conn.fetch(
                f"SELECT {_SYNC_COLUMNS} FROM history_sync_requests"
                " WHERE phone_number_id = ANY($1::text[])"
                " ORDER BY phone_number_id, sync_type DESC",  # contacts first
                list(ids),
            ):
                syncs.setdefault(r["phone_number_id"], []).append(_sync(r))
            progress = {r["phone_number_id"]: r for r in await conn.fetch(_PROGRESS, list(ids))}
        return [
            NumberHistory(
                phone_number_id=pnid,
                onboarding=numbers.get(pnid),
                syncs=tuple(syncs.get(pnid, ())),
                progress=_progress(progress.get(pnid)),
            )
            for pnid in ids
            if pnid in numbers or pnid in progress
        ]

    # --- sync requests --------------------------------------------------------------

    async def claim_sync_requests(
        self, *, now: datetime, limit: int = 10, phone_number_id: PhoneNumberId | None = None
    ) -> list[SyncClaim]:
        """Move due requests from pending to sending and return them: only the claimer sends.

        Meta's order is contacts, then history: the history request waits until the contacts
        request was attempted and is not in flight (a contacts request waiting to be retried
        does not hold history back: the window is the same for both).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT r.phone_number_id, r.sync_type, n.sync_deadline_at"
                " FROM history_sync_requests r"
                " JOIN coexistence_numbers n USING (phone_number_id)"
                " WHERE r.status = 'pending' AND r.next_attempt_at <= $1"
                "   AND n.disabled_at IS NULL AND n.sync_deadline_at > $1"
                "   AND ($3::text IS NULL OR r.phone_number_id = $3)"
                "   AND (r.sync_type = 'smb_app_state_sync' OR NOT EXISTS ("
                "        SELECT 1 FROM history_sync_requests c"
                "        WHERE c.phone_number_id = r.phone_number_id"
                "          AND c.sync_type = 'smb_app_state_sync'"
                "          AND (c.status = 'sending' OR (c.status = 'pending' AND c.attempts = 0))))"
                " ORDER BY r.next_attempt_at LIMIT $2"
                " FOR UPDATE OF r SKIP LOCKED",
                now,
                limit,
                phone_number_id,
            )
            claims = []
            for row in rows:
                attempt = await conn.fetchval(
                    "UPDATE history_sync_requests SET status = 'sending', sending_since = $3,"
                    " attempts = attempts + 1, updated_at = $3"
                    " WHERE phone_number_id = $1 AND sync_type = $2 RETURNING attempts",
                    row["phone_number_id"],
                    row["sync_type"],
                    now,
                )
                claims.append(
                    SyncClaim(
                        phone_number_id=row["phone_number_id"],
                        sync_type=SyncType(row["sync_type"]),
                        attempt=attempt,
                        deadline=row["sync_deadline_at"],
                    )
                )
        return claims

    async def finish_sync_request(
        self, claim: SyncClaim, outcome: SyncOutcome, *, now: datetime
    ) -> bool:
        """Record what became of a claimed attempt (ignored if a later attempt superseded it)."""
        updated = await self._pool.fetchval(
            "UPDATE history_sync_requests SET status = $4, sending_since = NULL,"
            " next_attempt_at = coalesce($5, next_attempt_at), request_id = coalesce($6, request_id),"
            " error_code = $7, last_error = $8, updated_at = $9,"
            " resolved_by = CASE WHEN $4 = 'accepted' THEN 'meta' ELSE resolved_by END"
            " WHERE phone_number_id = $1 AND sync_type = $2 AND attempts = $3"
            "   AND status IN ('sending', 'unclear')"
            " RETURNING true",
            claim.phone_number_id,
            claim.sync_type.value,
            claim.attempt,
            outcome.status.value,
            outcome.next_attempt_at,
            outcome.request_id,
            outcome.error_code,
            outcome.error,
            now,
        )
        return bool(updated)

    async def expire_sync_requests(
        self, *, now: datetime, lease_seconds: float
    ) -> list[SyncExpiry]:
        """Pending past the deadline → missed; sending with no outcome past the lease → unclear."""
        rows = await self._pool.fetch(
            "UPDATE history_sync_requests r SET"
            " status = CASE WHEN r.status = 'sending' THEN 'unclear' ELSE 'missed' END,"
            " last_error = CASE WHEN r.status = 'sending'"
            "   THEN 'no outcome recorded for the attempt (process stopped mid-request?)'"
            "   ELSE r.last_error END,"
            " sending_since = NULL, updated_at = $1"
            " FROM coexistence_numbers n"
            " WHERE n.phone_number_id = r.phone_number_id AND ("
            "   (r.status = 'pending' AND n.sync_deadline_at <= $1)"
            "   OR (r.status = 'sending' AND r.sending_since <= $1 - make_interval(secs => $2)))"
            " RETURNING r.phone_number_id, r.sync_type, r.status",
            now,
            lease_seconds,
        )
        return [
            SyncExpiry(r["phone_number_id"], SyncType(r["sync_type"]), SyncStatus(r["status"]))
            for r in rows
        ]

    async def resolve_sync_request(
        self,
        phone_number_id: PhoneNumberId,
        sync_type: SyncType,
        resolution: Resolution,
        *,
        note: str,
        now: datetime,
    ) -> SyncRequestState | None:
        """A person's decision on an unclear or failed request; None if it is not waiting on one.

        `retry` is refused once the window closed: Meta would not accept it any more.
        """
        if resolution is Resolution.ACCEPTED:
            sql = (
                "UPDATE history_sync_requests SET status = 'accepted', resolved_by = $4,"
                " updated_at = $3 WHERE phone_number_id = $1 AND sync_type = $2"
                " AND status IN ('unclear', 'failed', 'missed')"
                f" RETURNING {_SYNC_COLUMNS}"
            )
        else:
            sql = (
                "UPDATE history_sync_requests r SET status = 'pending', next_attempt_at = $3,"
                " resolved_by = $4, updated_at = $3 FROM coexistence_numbers n"
                " WHERE r.phone_number_id = $1 AND r.sync_type = $2"
                " AND r.status IN ('unclear', 'failed') AND n.phone_number_id = r.phone_number_id"
                " AND n.sync_deadline_at > $3 AND n.disabled_at IS NULL"
                f" RETURNING {', '.join('r.' + c.strip() for c in _SYNC_COLUMNS.split(','))}"
            )
        row = await self._pool.fetchrow(sql, phone_number_id, sync_type.value, now, note)
        return _sync(row) if row is not None else None

    async def note_history_arrived(self, phone_number_id: PhoneNumberId, *, now: datetime) -> bool:
        """History is arriving, so Meta has the history sync: settle a request still open."""
        updated = await self._pool.fetchval(
            "UPDATE history_sync_requests SET status = 'accepted', resolved_by = 'webhook',"
            " sending_since = NULL, updated_at = $2"
            " WHERE phone_number_id = $1 AND sync_type = 'history'"
            "   AND status IN ('pending', 'unclear', 'missed')"
            " RETURNING true",
            phone_number_id,
            now,
        )
        return bool(updated)

    # --- backlog import -------------------------------------------------------------

    async def begin_history_chunk(self, chunk: ChunkStart) -> bool:
        """Register a change item; False if it was imported completely before (a re-delivery)."""
        row = await self._pool.fetchrow(
            "INSERT INTO history_chunks (phone_number_id, chunk_key, kind, phase, chunk_order,"
            " progress, messages_total) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (phone_number_id, chunk_key)"
            " DO UPDATE SET messages_total = EXCLUDED.messages_total"
            " RETURNING completed_at",
            chunk.phone_number_id,
            chunk.chunk_key,
            chunk.kind,
            chunk.phase,
            chunk.chunk_order,
            chunk.progress,
            chunk.messages_total,
        )
        assert row is not None
        return row["completed_at"] is None

    async def store_history_rows(
        self,
        phone_number_id: PhoneNumberId,
        chunk_key: str,
        rows: Sequence[HistoryRow],
        *,
        fill_placeholders: bool = False,
    ) -> int:
        """Store one batch of backlog messages once each; returns how many were new.

        `fill_placeholders` (recent media) replaces an imported `media_placeholder` with the
        same id instead of skipping it.
        """
        if not rows:
            return 0
        conversations = await self._conversations_for(phone_number_id, {r.wa_id for r in rows})
        # Ascending ids in every statement: two batches sharing ids (a chunk delivered twice,
        # concurrently) then wait on each other in one direction only, never deadlock.
        ordered = sorted({r.wamid: r for r in rows}.values(), key=lambda r: r.wamid)
        if not fill_placeholders:
            # Fast path: a batch nobody stored yet goes in by COPY (several times cheaper for
            # the database than INSERT … ON CONFLICT). COPY is all or nothing: if any row is
            # there already (a re-delivery) nothing was written and the slow path below
            # stores the rest.
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    await conn.copy_to_table(
                        "messages",
                        source=_once(_copy_text(phone_number_id, ordered, conversations)),
                        columns=_COPY_COLUMNS,
                        format="text",
                    )
                    await conn.execute(
                        "UPDATE history_chunks SET messages_stored = messages_stored + $3"
                        " WHERE phone_number_id = $1 AND chunk_key = $2",
                        phone_number_id,
                        chunk_key,
                        len(ordered),
                    )
                return len(ordered)
            except asyncpg.UniqueViolationError:
                pass
        inserted = await self._pool.fetchval(
            _UPSERT_MEDIA if fill_placeholders else _INSERT_BATCH,
            phone_number_id,
            chunk_key,
            *_columns(ordered, conversations),
        )
        return int(inserted or 0)

    async def complete_history_chunk(
        self, phone_number_id: PhoneNumberId, chunk_key: str, *, rejected: int, now: datetime
    ) -> None:
        await self._pool.execute(
            "UPDATE history_chunks SET completed_at = $3, messages_rejected = $4"
            " WHERE phone_number_id = $1 AND chunk_key = $2 AND completed_at IS NULL",
            phone_number_id,
            chunk_key,
            now,
            rejected,
        )

    async def _conversations_for(
        self, phone_number_id: PhoneNumberId, wa_ids: Iterable[WaId]
    ) -> dict[WaId, ConversationId]:
        """Ids of these customers' conversations, created (mode, activity untouched) if absent."""
        if self._conversation_ids is None:
            self._conversation_ids = {}
        cache = self._conversation_ids
        found: dict[WaId, ConversationId] = {}
        missing: list[WaId] = []
        for wa_id in wa_ids:
            known = cache.get((phone_number_id, wa_id))
            if known is None:
                missing.append(wa_id)
            else:
                found[wa_id] = known
        if missing:
            missing.sort()  # same lock order for every batch
            async with self._pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO conversations (phone_number_id, wa_id)"
                    " SELECT $1, w FROM unnest($2::text[]) AS w ON CONFLICT DO NOTHING",
                    phone_number_id,
                    missing,
                )
                # A separate statement: it sees rows another process committed meanwhile.
                rows = await conn.fetch(
                    "SELECT wa_id, id FROM conversations"
                    " WHERE phone_number_id = $1 AND wa_id = ANY($2::text[])",
                    phone_number_id,
                    missing,
                )
            if len(cache) + len(rows) > _CONVERSATION_CACHE_SIZE:
                cache.clear()
            for row in rows:
                found[row["wa_id"]] = row["id"]
                cache[(phone_number_id, row["wa_id"])] = row["id"]
        return found

    # --- contacts -------------------------------------------------------------------

    async def record_contacts(
        self, phone_number_id: PhoneNumberId, changes: Sequence[ContactChange]
    ) -> int:
        """Apply address-book changes; an older change never overwrites a newer one."""
        if not changes:
            return 0
        applied = await self._pool.fetchval(
            "WITH up AS ("
            " INSERT INTO contacts (phone_number_id, wa_id, full_name, first_name, removed,"
            "   changed_at)"
            " SELECT $1, u.w, u.f, u.n, u.r, u.t"
            " FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[], $6::timestamptz[])"
            "   AS u(w, f, n, r, t)"
            " ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET"
            "   full_name = EXCLUDED.full_name, first_name = EXCLUDED.first_name,"
            "   removed = EXCLUDED.removed, changed_at = EXCLUDED.changed_at, updated_at = now()"
            " WHERE contacts.changed_at <= EXCLUDED.changed_at"
            " RETURNING 1) SELECT count(*)::int FROM up",
            phone_number_id,
            *_contact_columns(_latest_per_contact(changes)),
        )
        return int(applied or 0)

    async def contact_names(
        self, phone_number_id: PhoneNumberId, wa_ids: Sequence[WaId]
    ) -> dict[WaId, str]:
        """Names the business gave these customers in its WhatsApp Business App address book."""
        rows = await self._pool.fetch(
            "SELECT wa_id, coalesce(full_name, first_name) AS name FROM contacts"
            " WHERE phone_number_id = $1 AND wa_id = ANY($2::text[]) AND NOT removed"
            " AND coalesce(full_name, first_name) IS NOT NULL",
            phone_number_id,
            list(wa_ids),
        )
        return {r["wa_id"]: r["name"] for r in rows}


def _latest_per_contact(changes: Sequence[ContactChange]) -> list[ContactChange]:
    # One row per contact per statement (ON CONFLICT cannot touch a row twice): the newest wins.
    latest: dict[WaId, ContactChange] = {}
    for change in changes:
        seen = latest.get(change.wa_id)
        if seen is None or seen.changed_at <= change.changed_at:
            latest[change.wa_id] = change
    return list(latest.values())


def _contact_columns(changes: Sequence[ContactChange]) -> tuple[list[object], ...]:
    return (
        [c.wa_id for c in changes],
        [c.full_name for c in changes],
        [c.first_name for c in changes],
        [c.removed for c in changes],
        [c.changed_at for c in changes],
    )
