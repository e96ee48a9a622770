"""The blob store port (file bytes kept apart from messages) and its two adapters."""

from baton.blobs.port import BlobNotFound, BlobStat, BlobStore, ByteRange
from baton.blobs.postgres import PostgresBlobStore
from baton.blobs.s3 import S3BlobStore, S3Config

__all__ = [
    "BlobNotFound",
    "BlobStat",
    "BlobStore",
    "ByteRange",
    "PostgresBlobStore",
    "S3BlobStore",
    "S3Config",
]
