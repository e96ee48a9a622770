"""Meta's supported media types and size limits (ref §8), as pure checks.

Used both ways: an agent's file is refused before anything is sent to Meta, and a customer's
file is checked before it is downloaded and again after (Meta's size claim, then the bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

MediaKind: TypeAlias = Literal["image", "audio", "video", "document", "sticker"]

MB = 1024 * 1024
KB = 1024

MIME_TYPES: dict[MediaKind, frozenset[str]] = {
    "audio": frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
    "document": frozenset(
        {
            "text/plain",
            "application/pdf",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        }
    ),
    "image": frozenset({"image/jpeg", "image/png"}),
    "sticker": frozenset({"image/webp"}),
    "video": frozenset({"video/mp4", "video/3gp", "video/3gpp"}),
}

MAX_BYTES: dict[MediaKind, int] = {
    "audio": 16 * MB,
    "document": 100 * MB,
    "image": 5 * MB,
    "sticker": 500 * KB,  # animated; a static sticker is at most 100 KB
    "video": 16 * MB,
}
STATIC_STICKER_MAX_BYTES = 100 * KB
LARGEST = max(MAX_BYTES.values())


@dataclass(frozen=True)
class MediaRejected(Exception):
    """A file Meta would not take (or that breaks its own limits)."""

    reason: str

    def __str__(self) -> str:
        return self.reason


def base_mime(mime_type: str) -> str:
    """`audio/ogg; codecs=opus` → `audio/ogg` (lower case)."""
    return mime_type.split(";", 1)[0].strip().lower()


def kind_of(mime_type: str) -> MediaKind | None:
    """The WhatsApp message type that carries this MIME type, if any."""
    base = base_mime(mime_type)
    for kind, types in MIME_TYPES.items():
        if base in types:
            return kind
    return None


def max_bytes(kind: MediaKind, *, animated: bool = True) -> int:
    if kind == "sticker" and not animated:
        return STATIC_STICKER_MAX_BYTES
    return MAX_BYTES[kind]


def check_size(kind: MediaKind, size: int, *, animated: bool = True) -> None:
    """Raise MediaRejected when `size` breaks Meta's limit for `kind`."""
    limit = max_bytes(kind, animated=animated)
    if size > limit:
        raise MediaRejected(
            f"{kind} of {size} bytes is over WhatsApp's limit of {limit} bytes ({_human(limit)})"
        )


def check_outbound(mime_type: str, size: int) -> MediaKind:
    """The kind to send a file as; MediaRejected when Meta would refuse it."""
    if size <= 0:
        raise MediaRejected("the file is empty")
    kind = kind_of(mime_type)
    if kind is None or kind == "sticker":
        allowed = sorted(t for k, types in MIME_TYPES.items() if k != "sticker" for t in types)
        raise MediaRejected(
            f"WhatsApp does not accept files of type {base_mime(mime_type)!r}; "
            f"supported: {', '.join(allowed)}"
        )
    check_size(kind, size)
    return kind


def _human(size: int) -> str:
    return f"{size // MB} MB" if size >= MB else f"{size // KB} KB"
