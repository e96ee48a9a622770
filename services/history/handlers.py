"""History's webhook handler: backlog chunks, recent media, contacts and offboarding.

Each `history[]` item is imported in batches of short idempotent statements, then marked
complete; a re-delivered item finds its mark and changes nothing, a half-imported one is
finished. Imported messages go straight to the store: they never reach the router, so they
never ask the bot, change a mode or move a conversation's last activity.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import structlog
from pydantic import ValidationError

from baton.broker import Delivery, Duplicate, Poison
from baton.media import fetch_command
from baton.messages import FetchMedia, Message, WebhookChange
from baton.store import Store
from baton.store.history_records import ChunkStart, ContactChange, HistoryRow
from baton.store.waba_records import (
    MarketingPreference,
    TemplateCategoryUpdate,
    TemplateStatusUpdate,
)
from baton.types import PhoneNumberId
from baton.whatsapp import HISTORY_DECLINED_CODE, ChangeField, HistoryMetadata, Metadata
from baton.whatsapp.message import ErrorDetail, WaMessage
from baton.whatsapp.payloads import (
    AccountUpdateValue,
    PayloadError,
    TemplateCategoryValue,
    TemplateStatusValue,
    UserPreferencesValue,
    parse_change,
)
from services.history import metrics
from services.history.backlog import (
    Rejected,
    batches,
    count_messages,
    media_rows,
    rejected_record,
    thread_rows,
)

log = structlog.get_logger()

OFFBOARDING_EVENTS = frozenset({"PARTNER_REMOVED", "ACCOUNT_OFFBOARDED"})
MARKETING_CATEGORY = "marketing_messages"
REJECTED_FIELD = "history.rejected"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class History:
    """Handles `history.webhooks` deliveries against the store."""

    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 1000,
        clock: Callable[[], datetime] = _utcnow,
        publish: Callable[[Message], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._publish = publish  # media (issue 18): asks for recent files' downloads
        self._batch_size = batch_size
        self._clock = clock
        self._learned: set[tuple[PhoneNumberId, str, str]] = set()

    async def on_webhook(self, delivery: Delivery) -> None:
        # orjson then the model: twice as fast as pydantic's own JSON parsing on the megabyte
        # bodies of history chunks.
        change = WebhookChange.model_validate(orjson.loads(delivery.body))
        key = delivery.message_id or _content_key(change)
        with structlog.contextvars.bound_contextvars(field=change.field):
            if change.field == ChangeField.HISTORY:
                await self._on_history(change, key)
            elif change.field == ChangeField.STATE_SYNC:
                await self._on_state_sync(change, key)
            elif change.field == ChangeField.ACCOUNT_UPDATE:
                await self._on_account_update(change, key)
            elif change.field == ChangeField.TEMPLATE_STATUS:
                await self._on_template_status(change)
            elif change.field == ChangeField.TEMPLATE_CATEGORY:
                await self._on_template_category(change)
            elif change.field == ChangeField.USER_PREFERENCES:
                await self._on_user_preferences(change)
            else:
                raise Poison(f"history does not handle field {change.field!r}")

    async def _learn(self, pnid: PhoneNumberId, display: str, waba_id: str) -> None:
        # Offboarding webhooks name the display number only: remember which number that is.
        key = (pnid, display, waba_id)
        if key not in self._learned:
            await self._store.learn_number(pnid, display_phone_number=display, waba_id=waba_id)
            self._learned.add(key)

    # --- history ----------------------------------------------------------------------

    async def _on_history(self, change: WebhookChange, key: str) -> None:
        value = change.value
        metadata = _metadata(value, change.field)
        pnid = metadata.phone_number_id
        items = value.get("history") or []
        media = value.get("messages") or []
        if not isinstance(items, list) or not isinstance(media, list):
            raise Poison("malformed 'history' webhook value: history/messages are not lists")
        with structlog.contextvars.bound_contextvars(phone_number_id=pnid):
            if await self._store.number_disabled(pnid):
                metrics.IGNORED.labels(field=change.field).inc()
                log.info("history.ignored_offboarded")
                return
            await self._learn(pnid, metadata.display_phone_number, change.entry_id)
            business = metadata.display_phone_number
            imported = 0
            for index, item in enumerate(items):
                imported += await self._on_item(pnid, f"{key}:{index}", item, business)
            if media:
                imported += await self._on_media(pnid, f"{key}:media", media, business)
            if (items or media) and not imported:
                raise Duplicate  # every item was imported before: this is a re-delivery

    async def _on_item(self, pnid: PhoneNumberId, chunk_key: str, item: Any, business: str) -> int:
        """Import one `history[]` item; 1 if it did something, 0 if it was done before."""
        if not isinstance(item, dict):
            raise Poison("malformed 'history' webhook value: an item is not an object")
        errors = _errors(item)
        if errors:
            return await self._on_history_errors(pnid, chunk_key, errors, item)
        try:
            meta = HistoryMetadata.model_validate(item.get("metadata"))
        except ValidationError as exc:
            raise Poison(
                f"malformed 'history' chunk metadata: {exc.error_count()} errors"
            ) from None
        threads = item.get("threads") or []
        if not isinstance(threads, list):
            raise Poison("malformed 'history' chunk: threads is not a list")
        chunk = ChunkStart(
            phone_number_id=pnid,
            chunk_key=chunk_key,
            kind="chunk",
            phase=meta.phase,
            chunk_order=meta.chunk_order,
            progress=meta.progress,
            messages_total=count_messages(threads),
        )
        if not await self._store.begin_history_chunk(chunk):
            metrics.CHUNKS.labels(kind="chunk", outcome="duplicate").inc()
            return 0
        await self._store.note_history_arrived(pnid, now=self._clock())
        started = time.perf_counter()
        stored, rejected = await self._store_rows(
            pnid, chunk_key, thread_rows(threads, business=business)
        )
        await self._store.complete_history_chunk(
            pnid, chunk_key, rejected=rejected, now=self._clock()
        )
        metrics.CHUNK_SECONDS.observe(time.perf_counter() - started)
        metrics.CHUNKS.labels(kind="chunk", outcome="imported").inc()
        log.info(
            "history.chunk_imported",
            phase=meta.phase,
            chunk_order=meta.chunk_order,
            progress=meta.progress,
            messages=chunk.messages_total,
            stored=stored,
            rejected=rejected,
        )
        return 1

    async def _on_history_errors(
        self, pnid: PhoneNumberId, chunk_key: str, errors: list[ErrorDetail], item: Any
    ) -> int:
        declined = any(e.code == HISTORY_DECLINED_CODE for e in errors)
        kind = "declined" if declined else "error"
        if not declined:
            # An error Meta does not document for history: keep it for a person, once.
            stored = await self._store.record_raw_change(
                field="history.error", phone_number_id=pnid, dedupe_key=chunk_key, value=item
            )
            log.error("history.sync_error", codes=[e.code for e in errors], kept_now=stored)
            metrics.CHUNKS.labels(kind=kind, outcome="imported" if stored else "duplicate").inc()
            return int(stored)
        if not await self._store.begin_history_chunk(
            ChunkStart(phone_number_id=pnid, chunk_key=chunk_key, kind="declined")
        ):
            metrics.CHUNKS.labels(kind=kind, outcome="duplicate").inc()
            return 0
        # A declined answer still means Meta took the request.
        await self._store.note_history_arrived(pnid, now=self._clock())
        await self._store.complete_history_chunk(pnid, chunk_key, rejected=0, now=self._clock())
        metrics.CHUNKS.labels(kind=kind, outcome="imported").inc()
        log.warning("history.declined_by_business")
        return 1

    async def _on_media(
        self, pnid: PhoneNumberId, chunk_key: str, media: list[Any], business: str
    ) -> int:
        chunk = ChunkStart(
            phone_number_id=pnid, chunk_key=chunk_key, kind="media", messages_total=len(media)
        )
        if not await self._store.begin_history_chunk(chunk):
            metrics.CHUNKS.labels(kind="media", outcome="duplicate").inc()
            return 0
        stored, rejected = await self._store_rows(
            pnid, chunk_key, media_rows(media, business=business), fill_placeholders=True
        )
        if self._publish is not None:  # before the chunk completes: a crash asks again
            for command in media_fetches(pnid, media):
                await self._publish(command)
        await self._store.complete_history_chunk(
            pnid, chunk_key, rejected=rejected, now=self._clock()
        )
        metrics.CHUNKS.labels(kind="media", outcome="imported").inc()
        log.info("history.media_imported", messages=len(media), stored=stored, rejected=rejected)
        return 1

    async def _store_rows(
        self,
        pnid: PhoneNumberId,
        chunk_key: str,
        rows: Iterable[HistoryRow | Rejected],
        *,
        fill_placeholders: bool = False,
    ) -> tuple[int, int]:
        stored = 0
        rejected_total = 0
        for batch, rejected in batches(rows, self._batch_size):
            if batch:
                new = await self._store.store_history_rows(
                    pnid, chunk_key, batch, fill_placeholders=fill_placeholders
                )
                stored += new
                metrics.MESSAGES_IMPORTED.inc(new)
            for item in rejected:
                await self._park(pnid, chunk_key, item)
            rejected_total += len(rejected)
        return stored, rejected_total

    async def _park(self, pnid: PhoneNumberId, chunk_key: str, item: Rejected) -> None:
        stored = await self._store.record_raw_change(
            field=REJECTED_FIELD,
            phone_number_id=pnid,
            dedupe_key=f"{chunk_key}:{item.index}",
            value=rejected_record(item),
        )
        if stored:
            metrics.MESSAGES_REJECTED.inc()
            log.warning("history.message_rejected", position=item.index, reason=item.reason)

    # --- contacts ---------------------------------------------------------------------

    async def _on_state_sync(self, change: WebhookChange, key: str) -> None:
        try:
            value = parse_change("smb_app_state_sync", change.value)
        except PayloadError as exc:
            raise Poison(str(exc)) from exc
        pnid = value.metadata.phone_number_id
        with structlog.contextvars.bound_contextvars(phone_number_id=pnid):
            if await self._store.number_disabled(pnid):
                metrics.IGNORED.labels(field=change.field).inc()
                log.info("history.ignored_offboarded")
                return
            await self._learn(pnid, value.metadata.display_phone_number, change.entry_id)
            now = self._clock()
            changes: list[ContactChange] = []
            for item in value.state_sync:
                if item.type != "contact" or item.contact is None:
                    log.info("history.state_sync_skipped", type=item.type)
                    continue
                if item.action not in ("add", "remove"):
                    log.warning("history.state_sync_unknown_action", action=item.action)
                    continue
                removed = item.action == "remove"
                changes.append(
                    ContactChange(
                        wa_id=item.contact.phone_number,
                        removed=removed,
                        full_name=None if removed else item.contact.full_name,
                        first_name=None if removed else item.contact.first_name,
                        changed_at=item.metadata.timestamp if item.metadata else now,
                    )
                )
                metrics.CONTACTS.labels(action=item.action).inc()
            applied = await self._store.record_contacts(pnid, changes)
            log.info("history.contacts_synced", received=len(changes), applied=applied)

    # --- offboarding --------------------------------------------------------------------

    async def _on_account_update(self, change: WebhookChange, key: str) -> None:
        try:
            value: AccountUpdateValue = parse_change("account_update", change.value)
        except PayloadError as exc:
            raise Poison(str(exc)) from exc
        pnid = value.metadata.phone_number_id if value.metadata else None
        await self._store.record_raw_change(
            field=change.field, phone_number_id=pnid, dedupe_key=key, value=change.value
        )
        if value.event not in OFFBOARDING_EVENTS:
            # `event` is structlog's own argument (the log line's name): never pass it as a key.
            log.info("history.account_update", account_event=value.event)
            return
        info = value.disconnection_info
        reason = ":".join(
            p for p in (value.event, info.reason if info else None) if p
        )  # e.g. PARTNER_REMOVED:ACCOUNT_DISCONNECTED
        display = value.phone_number.removeprefix("+") if value.phone_number else None
        if display is None and value.metadata is not None:
            display = value.metadata.display_phone_number
        disabled = await self._store.disable_number(
            phone_number_id=pnid, display_phone_number=display, reason=reason, now=self._clock()
        )
        if disabled:
            metrics.OFFBOARDINGS.labels(outcome="disabled").inc()
            log.warning("history.number_offboarded", phone_number_ids=disabled, reason=reason)
        else:
            metrics.OFFBOARDINGS.labels(outcome="unmatched").inc()
            log.error(
                "history.offboarding_unmatched",
                display_phone_number=display,
                waba_id=change.entry_id,
                reason=reason,
            )

    # --- templates and marketing preferences (used when sending templates) ----------------

    async def _on_template_status(self, change: WebhookChange) -> None:
        value = _parse(change, TemplateStatusValue)
        applied = await self._store.record_template_status(
            TemplateStatusUpdate(
                waba_id=change.entry_id,
                template_id=str(value.message_template_id),
                name=value.message_template_name,
                language=value.message_template_language,
                category=value.message_template_category,
                status=value.event,
                reason=value.reason,
                at=change.received_at,
            )
        )
        metrics.ACCOUNT_UPDATES.labels(field=change.field, outcome=_applied(applied)).inc()
        log.info(
            "history.template_status",
            template_id=str(value.message_template_id),
            status=value.event,
            applied=applied,
        )

    async def _on_template_category(self, change: WebhookChange) -> None:
        value = _parse(change, TemplateCategoryValue)
        category = value.new_category or value.correct_category
        if category is None:
            metrics.ACCOUNT_UPDATES.labels(field=change.field, outcome="ignored").inc()
            log.info("history.template_category_without_category")
            return
        applied = await self._store.record_template_category(
            TemplateCategoryUpdate(
                waba_id=change.entry_id,
                template_id=str(value.message_template_id),
                name=value.message_template_name,
                language=value.message_template_language,
                category=category,
                at=change.received_at,
            )
        )
        metrics.ACCOUNT_UPDATES.labels(field=change.field, outcome=_applied(applied)).inc()
        log.info("history.template_category", category=category, applied=applied)

    async def _on_user_preferences(self, change: WebhookChange) -> None:
        value = _parse(change, UserPreferencesValue)
        pnid = value.metadata.phone_number_id
        for item in value.user_preferences:
            if item.category != MARKETING_CATEGORY or item.value not in ("stop", "resume"):
                metrics.ACCOUNT_UPDATES.labels(field=change.field, outcome="ignored").inc()
                log.info("history.user_preference_ignored", category=item.category)
                continue
            applied = await self._store.record_marketing_preference(
                MarketingPreference(
                    phone_number_id=pnid,
                    wa_id=item.wa_id,
                    opted_out=item.value == "stop",
                    detail=item.detail,
                    at=item.timestamp,
                )
            )
            metrics.ACCOUNT_UPDATES.labels(field=change.field, outcome=_applied(applied)).inc()
            log.info(
                "history.marketing_preference",
                phone_number_id=pnid,
                preference=item.value,
                applied=applied,
            )


_V = TypeVar("_V", TemplateStatusValue, TemplateCategoryValue, UserPreferencesValue)


def _parse(change: WebhookChange, model: type[_V]) -> _V:
    try:
        value = parse_change(change.field, change.value)
    except PayloadError as exc:
        raise Poison(str(exc)) from exc
    if not isinstance(value, model):  # the dispatch above names the field: cannot happen
        raise Poison(f"{change.field!r} did not parse as {model.__name__}")
    return value


def _applied(applied: bool) -> str:
    return "applied" if applied else "stale"


def _metadata(value: dict[str, Any], field: str) -> Metadata:
    try:
        return Metadata.model_validate(value.get("metadata"))
    except ValidationError as exc:
        raise Poison(f"malformed {field!r} webhook value: bad or missing metadata") from exc


def _errors(item: dict[str, Any]) -> list[ErrorDetail]:
    raw = item.get("errors")
    if not raw:
        return []
    try:
        return [ErrorDetail.model_validate(e) for e in raw]
    except (ValidationError, TypeError) as exc:
        raise Poison("malformed 'history' item errors") from exc


def _content_key(change: WebhookChange) -> str:
    # Ingest names each change by its content; the same rule for a message published without it.
    canonical = orjson.dumps(
        [change.entry_id, change.field, change.value], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()[:32]


def media_fetches(pnid: PhoneNumberId, media: list[Any]) -> Iterator[FetchMedia]:
    """The downloads recent imported media asks for (media, issue 18)."""
    for raw in media:
        try:
            message = WaMessage.model_validate(raw)
        except ValidationError:
            continue  # parked with its chunk already
        command = fetch_command(pnid, message, imported=True)
        if command is not None:
            yield command
