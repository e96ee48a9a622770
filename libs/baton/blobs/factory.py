"""Open the configured blob store: PostgreSQL (the store's database) or S3-compatible."""

from __future__ import annotations

from baton.blobs.port import BlobStore
from baton.blobs.postgres import PostgresBlobStore
from baton.blobs.s3 import S3BlobStore, S3Config
from baton.settings import Settings


def s3_config(settings: Settings) -> S3Config:
    """The S3 adapter's configuration; refuses to guess an endpoint or credentials."""
    if not settings.s3_endpoint_url:
        raise ValueError("BATON_BLOB_STORE=s3 needs BATON_S3_ENDPOINT_URL")
    if settings.s3_access_key_id is None or settings.s3_secret_access_key is None:
        raise ValueError(
            "BATON_BLOB_STORE=s3 needs BATON_S3_ACCESS_KEY_ID and BATON_S3_SECRET_ACCESS_KEY"
        )
    return S3Config(
        endpoint_url=settings.s3_endpoint_url,
        bucket=settings.s3_bucket,
        access_key=settings.s3_access_key_id.get_secret_value(),
        secret_key=settings.s3_secret_access_key.get_secret_value(),
        region=settings.s3_region,
        prefix=settings.s3_prefix,
    )


async def open_blob_store(settings: Settings) -> BlobStore:
    """The blob store `settings` name (BATON_BLOB_STORE)."""
    if settings.blob_store == "s3":
        return S3BlobStore(s3_config(settings))
    return await PostgresBlobStore.open(settings.store_url)
