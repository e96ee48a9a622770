"""Agents' files on their way out (issue 18): checked, then uploaded to Meta, then sent by id.

`attachment` runs before anything is recorded or sent: the file must exist, belong to the
conversation's business number, be available, and fit Meta's MIME types and sizes (415 / 413
otherwise, with the reason). `upload` runs once the send is allowed (holder, epoch, window): the
file goes to `POST /{phone_number_id}/media` once per idempotency key (a retried request reuses
the media id), and the outbox sends it by id with the rate, fencing and idempotency of text.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from fastapi import HTTPException, Request, status

from baton.blobs import BlobStore
from baton.blobs.factory import open_blob_store
from baton.handoff import ConversationState
from baton.messages import OutboundMedia
from baton.store.media_records import MediaRecord, MediaStatus, NewMedia
from baton.types import Direction
from baton.whatsapp import GraphClient, GraphError
from baton.whatsapp.media_limits import MediaKind, MediaRejected, base_mime, check_outbound
from services.console.context import Console
from services.console.media_schemas import MediaRef

log = structlog.get_logger()


@dataclass(frozen=True)
class MediaDeps:
    """The console's blob store and Graph client, opened on first use."""

    blobs: BlobStore
    graph: GraphClient


_opening = asyncio.Lock()
_opened: dict[int, tuple[Console, MediaDeps]] = {}


async def media_deps_of(console: Console) -> MediaDeps:
    """The console's, opened on first use: it starts (and serves text) without touching them."""
    found = _opened.get(id(console))
    if found is not None and found[0] is console:
        return found[1]
    async with _opening:
        found = _opened.get(id(console))
        if found is None or found[0] is not console:
            settings = console.settings
            deps = MediaDeps(await open_blob_store(settings), GraphClient.from_settings(settings))
            found = (console, deps)
            _opened[id(console)] = found
    return found[1]


async def media_deps(request: Request) -> MediaDeps:
    """`media_deps_of` as a FastAPI dependency."""
    console = request.app.state.console
    assert isinstance(console, Console)
    return await media_deps_of(console)


async def close_media_deps(console: Console) -> None:
    """Close what `media_deps_of` opened for this console (at shutdown)."""
    found = _opened.pop(id(console), None)
    if found is not None:
        await found[1].blobs.close()
        await found[1].graph.aclose()


@dataclass(frozen=True)
class Attachment:
    record: MediaRecord
    kind: MediaKind
    filename: str | None


def refused(exc: MediaRejected, mime_type: str) -> HTTPException:
    """413 for a file too large, 415 for a type WhatsApp does not carry."""
    too_large = "limit" in exc.reason
    return HTTPException(
        status_code=(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
            if too_large
            else status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
        ),
        detail=f"{exc.reason} (file type {base_mime(mime_type)!r})",
    )


async def attachment(console: Console, state: ConversationState, ref: MediaRef) -> Attachment:
    """The file to send, refused with a clear 4xx before anything is recorded or sent."""
    record = await console.store.media_by_id(ref.id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no file {ref.id}")
    if record.phone_number_id != state.phone_number_id:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="this file belongs to another business number",
        )
    if record.status is not MediaStatus.AVAILABLE or record.blob_key is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"file {ref.id} is {record.status.value}: {record.reason or 'not stored yet'}",
        )
    mime_type = record.mime_type or "application/octet-stream"
    try:
        kind = check_outbound(mime_type, record.size or 0)
    except MediaRejected as exc:
        raise refused(exc, mime_type) from exc
    return Attachment(record, kind, ref.filename or record.filename)


async def upload(
    console: Console,
    deps: MediaDeps,
    state: ConversationState,
    attached: Attachment,
    idempotency_key: str,
    caption: str,
) -> OutboundMedia:
    """Upload to Meta once per send key; the file the outbox then sends by id."""
    source = attached.record
    assert source.blob_key is not None
    mime_type = source.mime_type or "application/octet-stream"
    row = await console.store.register_media(
        NewMedia(
            phone_number_id=state.phone_number_id,
            conversation_id=state.conversation_id,
            direction=Direction.OUTBOUND,
            kind=attached.kind,
            idempotency_key=idempotency_key,
            mime_type=mime_type,
            caption=caption or None,
            filename=attached.filename,
            blob_key=source.blob_key,  # the same bytes: no copy
            size=source.size,
            sha256=source.sha256,
        )
    )
    media_id = row.media_id
    if media_id is None:
        data = await deps.blobs.get(source.blob_key)
        try:
            media_id = await deps.graph.upload_media(
                state.phone_number_id,
                data,
                mime_type=mime_type,
                filename=attached.filename or f"file.{attached.kind}",
            )
        except GraphError as exc:
            log.warning("console.media_upload_failed", error=str(exc))
            code = (
                status.HTTP_503_SERVICE_UNAVAILABLE
                if exc.retryable
                else status.HTTP_502_BAD_GATEWAY
            )
            raise HTTPException(code, detail=f"WhatsApp refused the upload: {exc}") from exc
        await console.store.media_uploaded(row.id, meta_media_id=media_id)
    return OutboundMedia(
        kind=attached.kind,
        media_id=media_id,
        ref=row.id,
        mime_type=mime_type,
        caption=caption or None,
        filename=attached.filename,
    )
