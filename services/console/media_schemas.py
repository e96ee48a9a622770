"""The media API's bodies (issue 18), documented by the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from baton.store.media_records import MessageMedia


class MediaRef(BaseModel):
    """A file Baton already holds: an upload (`POST /media`) or any message's file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int = Field(description="The file's id: `POST /media`'s answer, or a message's media.")
    filename: str | None = Field(
        default=None, max_length=240, description="For documents: the name the customer sees."
    )


class UploadedMedia(BaseModel):
    """201: the file is kept; send it with `{"media": {"id": ...}}`."""

    id: int
    kind: str = Field(description="How WhatsApp will carry it: image, audio, video, document.")
    mime_type: str
    size: int
    filename: str | None
    url: str = Field(description="GET it back (Range supported).")


MULTIPART_SEND_DOC: dict[str, Any] = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "text": {"type": "string", "description": "The caption."},
                        "author": {"type": "string", "enum": ["human", "bot"]},
                        "expected_epoch": {"type": "integer"},
                        "reply_to": {"type": "string"},
                    },
                }
            }
        }
    },
    "responses": {
        "413": {"description": "Larger than WhatsApp allows for this kind of file."},
        "415": {"description": "A file type WhatsApp does not carry."},
        "502": {"description": "WhatsApp refused the upload."},
    },
}
"""Merged into the JSON send's OpenAPI operation: the same endpoint takes a file."""

__all__ = ["MULTIPART_SEND_DOC", "MediaRef", "MessageMedia", "UploadedMedia"]
