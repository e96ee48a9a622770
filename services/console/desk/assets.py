"""The desk's static files: read once, named by content hash, served with cache headers.

A page links `/desk/static/<name>?v=<hash>`; that exact version is immutable for a year, so a
new release (new hash) is fetched at once and an unchanged file never again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request, Response, status

STATIC_DIR = Path(__file__).parent / "static"
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    version: str
    media_type: str


def _load() -> dict[str, Asset]:
    found = {}
    for path in sorted(STATIC_DIR.iterdir()):
        media_type = _TYPES.get(path.suffix)
        if media_type is not None:
            body = path.read_bytes()
            found[path.name] = Asset(body, hashlib.sha256(body).hexdigest()[:16], media_type)
    return found


ASSETS = _load()


def url(name: str) -> str:
    """The versioned URL of a static file (a template helper)."""
    return f"/desk/static/{name}?v={ASSETS[name].version}"


def serve(name: str, request: Request) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    etag = f'"{asset.version}"'
    versioned = request.query_params.get("v") == asset.version
    headers = {
        "ETag": etag,
        "Cache-Control": ("public, max-age=31536000, immutable" if versioned else "no-cache"),
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
