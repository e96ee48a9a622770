"""The blob store port: put whole files, read them back whole or by byte range.

Keys are opaque strings chosen by the caller (`media/<phone_number_id>/<uuid>`); a key is
written once. Files are at most Meta's largest media (100 MB), so a put takes the bytes at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class BlobNotFound(KeyError):
    """No blob under this key."""


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` … `end` inclusive, as HTTP's Range header counts them."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class BlobStat:
    size: int
    content_type: str


class BlobStore(Protocol):
    """Where media bytes live: PostgreSQL (default) or S3-compatible object storage."""

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store `data` under `key` (writing the same key again replaces it)."""
        ...

    async def stat(self, key: str) -> BlobStat | None:
        """Size and content type, or None when there is no such blob."""
        ...

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """The whole blob, or the bytes of `byte_range`; raises BlobNotFound."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; nothing happens if it does not exist."""
        ...

    async def close(self) -> None: ...
