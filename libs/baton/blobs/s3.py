"""Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph RGW …) over httpx with SigV4.

Path-style addressing (`<endpoint>/<bucket>/<key>`), which every S3-compatible server accepts.
A put is one `PUT Object` (media is at most 100 MB, under S3's 5 GB single-put limit); reads
use `Range`, so audio and video seek without fetching the whole file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from baton.blobs import sigv4
from baton.blobs.port import BlobNotFound, BlobStat, ByteRange


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str  # e.g. https://s3.eu-west-1.amazonaws.com or http://minio:9000
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    prefix: str = ""  # prepended to every key, e.g. "baton/"
    timeout_seconds: float = 60.0


class S3Error(Exception):
    """The object store answered with an error."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"S3 answered HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
        self.status = status


class S3BlobStore:
    """`BlobStore` on an S3-compatible endpoint."""

    def __init__(self, config: S3Config, *, client: httpx.AsyncClient | None = None) -> None:
        self._config = config
        parts = urlsplit(config.endpoint_url)
        self._host = parts.netloc
        self._base_path = parts.path.rstrip("/")
        self._root = f"{parts.scheme}://{parts.netloc}"
        self._owns_client = client is None
        self._http = client or httpx.AsyncClient(timeout=config.timeout_seconds)

    def _path(self, key: str | None) -> str:
        path = f"{self._base_path}/{self._config.bucket}"
        return path if key is None else f"{path}/{self._config.prefix}{key}"

    async def _request(
        self,
        method: str,
        key: str | None,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        path = self._path(key)
        extra = headers or {}
        payload_hash = hashlib.sha256(body).hexdigest() if body else sigv4.EMPTY_SHA256
        signed = sigv4.sign(
            method=method,
            host=self._host,
            path=path,
            query={},
            headers=extra,
            payload_sha256=payload_hash,
            access_key=self._config.access_key,
            secret_key=self._config.secret_key,
            region=self._config.region,
            now=datetime.now(UTC),
        )
        url = self._root + sigv4.canonical_uri(path)
        return await self._http.request(method, url, content=body, headers={**extra, **signed})

    async def create_bucket(self) -> None:
        """Create the bucket if it does not exist (for development and tests)."""
        response = await self._request("PUT", None)
        if response.status_code not in (200, 409):  # 409: BucketAlreadyOwnedByYou
            raise S3Error(response.status_code, response.content)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        response = await self._request(
            "PUT", key, body=data, headers={"content-type": content_type}
        )
        if response.status_code != 200:
            raise S3Error(response.status_code, response.content)

    async def stat(self, key: str) -> BlobStat | None:
        response = await self._request("HEAD", key)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise S3Error(response.status_code, response.content)
        return BlobStat(
            size=int(response.headers.get("content-length", "0")),
            content_type=response.headers.get("content-type", "application/octet-stream"),
        )

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        headers = {"range": f"bytes={byte_range.start}-{byte_range.end}"} if byte_range else {}
        response = await self._request("GET", key, headers=headers)
        if response.status_code == 404:
            raise BlobNotFound(key)
        if response.status_code == 416:  # a range past the end: nothing to read
            return b""
        if response.status_code not in (200, 206):
            raise S3Error(response.status_code, response.content)
        return response.content

    async def delete(self, key: str) -> None:
        response = await self._request("DELETE", key)
        if response.status_code not in (200, 204, 404):
            raise S3Error(response.status_code, response.content)

    async def close(self) -> None:
        if self._owns_client:
            await self._http.aclose()
