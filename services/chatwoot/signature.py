"""Authenticating Chatwoot's callbacks.

Recent Chatwoot versions sign each webhook: `X-Chatwoot-Signature: sha256=<hex>`, the
HMAC-SHA256 of `"{X-Chatwoot-Timestamp}.{raw body}"` under the inbox's secret. Older versions
sign nothing; there the callback URL carries the secret as `?token=`. A request that carries a
signature must pass it (a token does not rescue a bad signature).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

# A signed callback older (or newer) than this is refused: a captured one cannot be replayed.
MAX_SKEW_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def authentic(
    secret: str, headers: Mapping[str, str], body: bytes, token: str | None, *, now: float
) -> bool:
    """Whether a callback comes from the Chatwoot inbox that holds `secret`."""
    signature = headers.get("x-chatwoot-signature")
    if signature is not None:
        timestamp = headers.get("x-chatwoot-timestamp", "")
        try:
            fresh = abs(now - int(timestamp)) <= MAX_SKEW_SECONDS
        except ValueError:
            return False
        return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)
    return token is not None and hmac.compare_digest(token.encode(), secret.encode())
