"""The media API (issue 18): files of messages, for agents and external bots.

- `GET /media/{id}`: a message's file (or an upload), only to a principal allowed on its
  business number (401 without a valid token, 403 out of scope). `Range: bytes=…` answers 206
  so audio and video seek; `ETag` is the file's sha256. A file still downloading answers 503
  with `Retry-After`; one Baton gave up on answers 410 with the reason.
- `POST /media` (multipart `file`, `number`): keep a file to send later; refused at once (413 /
  415) if WhatsApp would not carry it. Send it with `POST /conversations/{id}/messages`
  `{"media": {"id": …}, "text": "caption"}`.
- `POST /conversations/{id}/messages` as `multipart/form-data` (`file`, optional `text` as the
  caption, `author`, `expected_epoch`, `reply_to`): upload and send in one call, with the same
  rules and `Idempotency-Key` as a text.
"""

from __future__ import annotations

import hashlib
import mimetypes
import uuid
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, Form, Header, HTTPException, UploadFile, status
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from baton.blobs import BlobNotFound, ByteRange
from baton.store.media_records import MediaRecord, MediaStatus, NewMedia
from baton.types import ConversationId, Direction, PhoneNumberId
from baton.whatsapp.media_limits import LARGEST, MediaRejected, check_outbound
from services.console import routes
from services.console.auth import AnyPrincipal, check_number
from services.console.context import Console, ConsoleDep
from services.console.media_schemas import MediaRef, UploadedMedia
from services.console.media_send import MediaDeps, media_deps, refused
from services.console.schemas import SendAccepted, SendMessage

log = structlog.get_logger()

router = APIRouter(tags=["media"])
Deps = Annotated[MediaDeps, Depends(media_deps)]

INLINE_KINDS = frozenset({"image", "audio", "video", "sticker"})


class Unsatisfiable(Exception):
    """A Range outside the file (416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range asked for; None for the whole file (absent, or several ranges)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    start_text, _, end_text = header.removeprefix("bytes=").strip().partition("-")
    try:
        if not start_text:  # "bytes=-500": the last 500 bytes
            length = int(end_text)
            if length <= 0:
                raise Unsatisfiable
            return ByteRange(max(0, size - length), size - 1)
        start = int(start_text)
        end = int(end_text) if end_text else size - 1
    except ValueError:
        return None  # malformed: ignored, as RFC 9110 allows
    if start >= size or start > end:
        raise Unsatisfiable
    return ByteRange(start, min(end, size - 1))


def _disposition(record: MediaRecord) -> str:
    kind = "inline" if record.kind in INLINE_KINDS else "attachment"
    name = record.filename or f"{record.kind}-{record.id}"
    return f"{kind}; filename*=UTF-8''{quote(name)}"


async def _record(console: Console, principal: Any, media_ref: int) -> MediaRecord:
    record = await console.store.media_by_id(media_ref)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such file")
    check_number(principal, record.phone_number_id)
    return record


@router.get(
    "/media/{media_ref}",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file."},
        206: {"description": "The requested byte range."},
        403: {"description": "The file's business number is outside your scope."},
        404: {"description": "No such file."},
        410: {"description": "Baton gave up on this file; `detail` says why."},
        416: {"description": "The range is outside the file."},
        503: {"description": "Still downloading from WhatsApp: retry."},
    },
)
async def get_media(
    media_ref: int,
    console: ConsoleDep,
    principal: AnyPrincipal,
    deps: Deps,
    range_: Annotated[str | None, Header(alias="range")] = None,
) -> Response:
    """A message's file: images, audio, video inline; documents as downloads."""
    record = await _record(console, principal, media_ref)
    if record.status is MediaStatus.UNAVAILABLE:
        raise HTTPException(status.HTTP_410_GONE, detail=f"media unavailable: {record.reason}")
    if record.status is MediaStatus.PENDING or record.blob_key is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="still downloading from WhatsApp",
            headers={"Retry-After": "2"},
        )
    stat = await deps.blobs.stat(record.blob_key)
    if stat is None:
        raise HTTPException(status.HTTP_410_GONE, detail="media unavailable: the file is gone")
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": _disposition(record),
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
    }
    if record.sha256:
        headers["ETag"] = f'"{record.sha256}"'
    media_type = record.mime_type or stat.content_type
    try:
        wanted = parse_range(range_, stat.size)
    except Unsatisfiable:
        return Response(
            status_code=status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE,
            headers={**headers, "Content-Range": f"bytes */{stat.size}"},
        )
    try:
        content = await deps.blobs.get(record.blob_key, wanted)
    except BlobNotFound as exc:
        raise HTTPException(status.HTTP_410_GONE, detail="media unavailable") from exc
    if wanted is None:
        return Response(content, media_type=media_type, headers=headers)
    headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{stat.size}"
    return Response(content, status_code=206, media_type=media_type, headers=headers)


async def keep_upload(
    console: Console, deps: MediaDeps, number: PhoneNumberId, file: UploadFile
) -> MediaRecord:
    """Read, check against Meta's limits (413/415 at once), store; the file's row."""
    mime_type = file.content_type or "application/octet-stream"
    if mime_type == "application/octet-stream" and file.filename:
        mime_type = mimetypes.guess_type(file.filename)[0] or mime_type
    data = await file.read(LARGEST + 1)  # never hold more than WhatsApp's largest file
    try:
        kind = check_outbound(mime_type, len(data))
    except MediaRejected as exc:
        raise refused(exc, mime_type) from exc
    key = f"media/{number}/upload-{uuid.uuid4().hex}"
    await deps.blobs.put(key, data, content_type=mime_type)
    return await console.store.register_media(
        NewMedia(
            phone_number_id=number,
            direction=Direction.OUTBOUND,
            kind=kind,
            mime_type=mime_type,
            filename=file.filename,
            blob_key=key,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    )


@router.post(
    "/media",
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"description": "The number is outside your scope."},
        413: {"description": "Larger than WhatsApp allows for this kind of file."},
        415: {"description": "A file type WhatsApp does not carry."},
    },
)
async def upload_media(
    console: ConsoleDep,
    principal: AnyPrincipal,
    deps: Deps,
    file: UploadFile,
    number: Annotated[PhoneNumberId, Form(description="The business number it will go out on.")],
) -> UploadedMedia:
    """Keep a file to send: checked against WhatsApp's types and sizes before anything else."""
    check_number(principal, number)
    record = await keep_upload(console, deps, number, file)
    return UploadedMedia(
        id=record.id,
        kind=record.kind,
        mime_type=record.mime_type or "",
        size=record.size or 0,
        filename=record.filename,
        url=f"/media/{record.id}",
    )


class MultipartRoute(APIRoute):
    """Matches only `multipart/form-data` requests, so the JSON send keeps its own route."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.NONE:
            return match, child
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"")
        if not content_type.lower().startswith(b"multipart/form-data"):
            return Match.NONE, {}
        return match, child


sending = APIRouter(tags=["conversations"], route_class=MultipartRoute)


@sending.post(
    "/conversations/{conversation_id}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    include_in_schema=False,  # documented on the JSON route's operation (multipart body)
)
async def send_file(
    conversation_id: ConversationId,
    console: ConsoleDep,
    principal: AnyPrincipal,
    deps: Deps,
    file: UploadFile,
    text: Annotated[str, Form(max_length=1024)] = "",
    author: Annotated[str, Form()] = "human",
    expected_epoch: Annotated[int | None, Form()] = None,
    reply_to: Annotated[str | None, Form()] = None,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    ] = None,
) -> SendAccepted:
    """Upload a file and send it, as the JSON send with `{"media": {"id": …}}` would."""
    state = await console.conversations.state(conversation_id)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such conversation")
    check_number(principal, state.phone_number_id)
    record = await keep_upload(console, deps, state.phone_number_id, file)
    try:
        body = SendMessage.model_validate(
            {
                "text": text,
                "media": MediaRef(id=record.id),
                "author": author,
                "expected_epoch": expected_epoch,
                "reply_to": reply_to,
            }
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    return await routes.send_text(console, principal, conversation_id, body, idempotency_key)


router.include_router(sending)
