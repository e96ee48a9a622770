"""Both blob adapters against real servers: PostgreSQL, and moto's S3 server on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from moto.server import ThreadedMotoServer

from baton.blobs import BlobNotFound, BlobStore, ByteRange, PostgresBlobStore, S3BlobStore
from baton.blobs.postgres import CHUNK_BYTES
from baton.blobs.s3 import S3Config
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_config(endpoint: str) -> S3Config:
    return S3Config(
        endpoint_url=endpoint,
        bucket=f"baton-{uuid.uuid4().hex[:8]}",
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        prefix="media/",
    )


@pytest.fixture(params=["postgres", "s3"])
async def blobs(request: pytest.FixtureRequest, pg_url: str) -> AsyncIterator[BlobStore]:
    if request.param == "postgres":
        store: BlobStore = await PostgresBlobStore.open(pg_url)
    else:
        s3 = S3BlobStore(s3_config(request.getfixturevalue("s3_endpoint")))
        await s3.create_bucket()
        store = s3
    yield store
    await store.close()


def key() -> str:
    return f"test/{uuid.uuid4().hex}"


async def test_put_then_get_whole_and_ranges(blobs: BlobStore) -> None:
    data = os.urandom(CHUNK_BYTES * 2 + 1234)  # spans chunk boundaries on PostgreSQL
    k = key()
    await blobs.put(k, data, content_type="audio/ogg")
    stat = await blobs.stat(k)
    assert stat is not None
    assert (stat.size, stat.content_type) == (len(data), "audio/ogg")
    assert await blobs.get(k) == data
    for start, end in [
        (0, 0),
        (10, 99),
        (CHUNK_BYTES - 5, CHUNK_BYTES + 5),
        (len(data) - 7, len(data) - 1),
    ]:
        assert await blobs.get(k, ByteRange(start, end)) == data[start : end + 1]
    # A range running past the end is cut at the end, as HTTP does.
    assert await blobs.get(k, ByteRange(len(data) - 3, len(data) + 100)) == data[-3:]


async def test_empty_blob_and_overwrite(blobs: BlobStore) -> None:
    k = key()
    await blobs.put(k, b"", content_type="text/plain")
    assert await blobs.get(k) == b""
    await blobs.put(k, b"second", content_type="text/plain")
    assert await blobs.get(k) == b"second"


async def test_missing_and_delete(blobs: BlobStore) -> None:
    k = key()
    assert await blobs.stat(k) is None
    with pytest.raises(BlobNotFound):
        await blobs.get(k)
    await blobs.put(k, b"x" * 10, content_type="image/png")
    await blobs.delete(k)
    assert await blobs.stat(k) is None
    await blobs.delete(k)  # deleting twice is fine
