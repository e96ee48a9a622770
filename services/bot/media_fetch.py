"""The `media.fetch` consumer: a customer's file from Meta into the blob store, off the hot path.

Why here: the bot service already makes the slow external calls (LLM, and now speech-to-text),
is the first reader of the bytes (transcripts, image descriptions), and scales out on its own;
the router stays fast and never waits on Meta's CDN. The queue has its own channel and prefetch,
so downloads never hold back bot requests.

One delivery = one file: register it (idempotent by wamid), then
`GET /{media-id}` → short-lived URL → download with the same token → size (Meta's limit, then
the bytes) and sha256 (the webhook's) checked → blob store → `available`; a voice note is then
transcribed when speech-to-text is configured. Failures settle through the one consumer
wrapper: retryable ones (5xx, timeouts, a checksum mismatch) raise and are redelivered with the
project's backoff; on the last attempt, and at once for permanent ones (too large, unsupported,
expired at Meta), the file is recorded `unavailable` with the reason and agents are told.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import structlog

from baton.blobs import BlobStore
from baton.broker import Broker, Delivery, Duplicate, Poison
from baton.messages import FetchMedia, MediaUpdated
from baton.store import Store
from baton.store.media_records import MediaRecord, MediaStatus, NewMedia
from baton.types import Direction
from baton.whatsapp import GraphClient, GraphError
from baton.whatsapp._media_client import MediaTooLarge
from baton.whatsapp.media_limits import MediaRejected, check_size, max_bytes
from services.bot import media_metrics as metrics
from services.bot.media_ai import SpeechToText, Unreadable

log = structlog.get_logger()

KINDS = frozenset({"image", "audio", "video", "document", "sticker"})


class ChecksumMismatch(Exception):
    """The bytes are not the file the webhook described (retried: a broken transfer)."""


def sha256_matches(expected: str | None, content: bytes) -> bool:
    """True when `expected` (hex or base64, as Meta sends either) is the bytes' digest."""
    if not expected:
        return True
    digest = hashlib.sha256(content).digest()
    return (
        expected.strip().lower() == digest.hex()
        or expected.strip() == base64.b64encode(digest).decode()
    )


def blob_key(record: MediaRecord) -> str:
    return f"media/{record.phone_number_id}/{record.id}"


class MediaFetcher:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        broker: Broker,
        graph: GraphClient,
        *,
        max_attempts: int,
        stt: SpeechToText | None = None,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._broker = broker
        self._graph = graph
        self._max_attempts = max_attempts
        self._stt = stt

    async def on_fetch(self, delivery: Delivery) -> None:
        if delivery.type != FetchMedia.TYPE:
            raise Poison(f"media consumer does not handle {delivery.type!r}")
        command = FetchMedia.model_validate_json(delivery.body)
        if command.kind not in KINDS:
            raise Poison(f"not a media type: {command.kind!r}")
        with structlog.contextvars.bound_contextvars(
            wamid=command.wamid, conversation_id=command.conversation_id
        ):
            record = await self._store.register_media(_new_media(command))
            if record.status is not MediaStatus.AVAILABLE:
                record = await self._download(
                    command, record, last=delivery.attempt >= self._max_attempts
                )
            elif not self._needs_transcript(record):
                metrics.DOWNLOADS.labels(outcome="duplicate").inc()
                raise Duplicate()
            if self._needs_transcript(record):
                await self._transcribe(command, record)

    async def _download(
        self, command: FetchMedia, record: MediaRecord, *, last: bool
    ) -> MediaRecord:
        await self._store.media_attempted(record.id)
        try:
            content, mime_type = await self._fetch(command)
        except (MediaRejected, MediaTooLarge) as exc:
            await self._unavailable(command, record, str(exc))
            raise Poison(f"media unavailable: {exc}") from exc
        except GraphError as exc:
            if not exc.retryable or last:
                await self._unavailable(command, record, f"download failed: {exc}")
                if not exc.retryable:
                    raise Poison(f"media unavailable: {exc}") from exc
            metrics.DOWNLOADS.labels(outcome="retried").inc()
            raise
        except ChecksumMismatch as exc:
            if last:
                await self._unavailable(command, record, str(exc))
            metrics.DOWNLOADS.labels(outcome="retried").inc()
            raise
        key = blob_key(record)
        await self._blobs.put(key, content, content_type=mime_type)
        digest = hashlib.sha256(content).hexdigest()
        await self._store.media_available(
            record.id, blob_key=key, size=len(content), sha256=digest, mime_type=mime_type
        )
        metrics.DOWNLOADS.labels(outcome="stored").inc()
        metrics.DOWNLOADED_BYTES.inc(len(content))
        log.info("media.stored", kind=command.kind, size=len(content))
        stored = record.model_copy(
            update={"status": MediaStatus.AVAILABLE, "blob_key": key, "size": len(content)}
        )
        await self._announce(command, stored)
        return stored

    async def _fetch(self, command: FetchMedia) -> tuple[bytes, str]:
        kind = command.kind
        limit = max_bytes(kind, animated=command.animated)  # type: ignore[arg-type]
        info = await self._graph.media_info(command.media_id, command.phone_number_id)
        if info.file_size is not None:
            check_size(kind, info.file_size, animated=command.animated)  # type: ignore[arg-type]
        content = await self._graph.download(info.url, command.phone_number_id, max_bytes=limit)
        if not sha256_matches(command.sha256, content) and not sha256_matches(info.sha256, content):
            raise ChecksumMismatch("the downloaded bytes do not match the webhook's sha256")
        mime_type = info.mime_type or command.mime_type or "application/octet-stream"
        return content, mime_type

    async def _unavailable(self, command: FetchMedia, record: MediaRecord, reason: str) -> None:
        await self._store.media_unavailable(record.id, reason=reason)
        metrics.DOWNLOADS.labels(outcome="unavailable").inc()
        log.warning("media.unavailable", kind=command.kind, reason=reason)
        await self._announce(
            command, record.model_copy(update={"status": MediaStatus.UNAVAILABLE, "reason": reason})
        )

    def _needs_transcript(self, record: MediaRecord) -> bool:
        return (
            self._stt is not None
            and record.kind == "audio"
            and record.status is MediaStatus.AVAILABLE
            and record.transcript is None
        )

    async def _transcribe(self, command: FetchMedia, record: MediaRecord) -> None:
        assert self._stt is not None and record.blob_key is not None
        audio = await self._blobs.get(record.blob_key)
        try:
            text = await self._stt.transcribe(
                audio,
                mime_type=record.mime_type or "audio/ogg",
                filename=f"voice.{_extension(record.mime_type)}",
            )
            outcome = "ok"
        except Unreadable as exc:
            # Recorded as tried: the bot then says it could not listen, instead of waiting.
            log.warning("media.transcription_failed", reason=str(exc))
            text, outcome = "", "failed"
        metrics.UNDERSTOOD.labels(how="transcript", outcome=outcome).inc()
        await self._store.media_described(record.id, transcript=text)
        await self._announce(command, record.model_copy(update={"transcript": text}))

    async def _announce(self, command: FetchMedia, record: MediaRecord) -> None:
        if command.conversation_id is None or command.wa_id is None:
            return  # imported media of a conversation nobody is watching live
        await self._broker.publish_event(
            MediaUpdated(
                conversation_id=command.conversation_id,
                phone_number_id=command.phone_number_id,
                wa_id=command.wa_id,
                at=datetime.now(UTC),
                wamid=command.wamid,
                media_ref=record.id,
                status=record.status.value,
                reason=record.reason,
                transcript=record.transcript,
            )
        )


def _new_media(command: FetchMedia) -> NewMedia:
    return NewMedia(
        phone_number_id=command.phone_number_id,
        conversation_id=command.conversation_id,
        direction=Direction.INBOUND,
        kind=command.kind,
        wamid=command.wamid,
        media_id=command.media_id,
        mime_type=command.mime_type,
        expected_sha256=command.sha256,
        caption=command.caption,
        filename=command.filename,
        voice=command.voice,
    )


def _extension(mime_type: str | None) -> str:
    base = (mime_type or "").split(";", 1)[0].strip().lower()
    return {
        "audio/ogg": "ogg",
        "audio/mpeg": "mp3",
        "audio/mp4": "m4a",
        "audio/aac": "aac",
        "audio/amr": "amr",
    }.get(base, "ogg")
