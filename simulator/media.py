"""The simulator's media: files customers send (downloadable) and files the business uploads.

Meta's flow (ref §8): a webhook names a media id; `GET /{media-id}` answers a short-lived URL;
that URL is fetched with the same bearer token. Uploads (`POST /{phone_number_id}/media`)
answer an id that a send may then use. The limits below are Meta's table, written here
independently of Baton's own copy so that a mistake there is caught here.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from pydantic import BaseModel, ConfigDict

MB = 1024 * 1024
UPLOAD_LIMITS: dict[str, int] = {
    "audio/aac": 16 * MB,
    "audio/amr": 16 * MB,
    "audio/mpeg": 16 * MB,
    "audio/mp4": 16 * MB,
    "audio/ogg": 16 * MB,
    "text/plain": 100 * MB,
    "application/pdf": 100 * MB,
    "application/msword": 100 * MB,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": 100 * MB,
    "application/vnd.ms-excel": 100 * MB,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": 100 * MB,
    "application/vnd.ms-powerpoint": 100 * MB,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": 100 * MB,
    "image/jpeg": 5 * MB,
    "image/png": 5 * MB,
    "image/webp": 500 * 1024,
    "video/mp4": 16 * MB,
    "video/3gp": 16 * MB,
}
SEND_KINDS = frozenset({"image", "audio", "video", "document", "sticker"})


class StoredMedia(BaseModel):
    """A file the simulator holds: a customer's (to download) or an upload (to send)."""

    model_config = ConfigDict(frozen=True)

    id: str
    phone_number_id: str  # "*": a customer's file any number may download
    mime_type: str
    content: bytes
    uploaded: bool
    filename: str | None = None
    download_token: str  # part of the short-lived URL, like Meta's `hash`

    @property
    def sha256_hex(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def sha256_b64(self) -> str:
        """What webhooks carry in `sha256`: the digest in base64."""
        return base64.b64encode(hashlib.sha256(self.content).digest()).decode()


def new_media(
    content: bytes,
    mime_type: str,
    *,
    phone_number_id: str = "*",
    uploaded: bool = False,
    filename: str | None = None,
) -> StoredMedia:
    return StoredMedia(
        id=str(10**15 + secrets.randbelow(9 * 10**15)),  # Meta's ids are long digit strings
        phone_number_id=phone_number_id,
        mime_type=mime_type,
        content=content,
        uploaded=uploaded,
        filename=filename,
        download_token=secrets.token_urlsafe(12),
    )


def upload_problem(mime_type: str, size: int) -> str | None:
    """Why Meta would refuse this upload (error 100), or None."""
    base = mime_type.split(";", 1)[0].strip().lower()
    limit = UPLOAD_LIMITS.get(base)
    if limit is None:
        return f"Param file must be a file with one of the following types: {sorted(UPLOAD_LIMITS)}"
    if size == 0:
        return "Param file must not be empty."
    if size > limit:
        return f"Param file of type {base} must be at most {limit} bytes."
    return None
