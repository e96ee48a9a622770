"""The `X-Hub-Signature-256` header Meta puts on every webhook POST.

The MAC covers the raw request bytes exactly as received: Meta serialises with non-ASCII
`\\uXXXX`-escaped, so re-encoding parsed JSON would break verification for accented text.
"""

from __future__ import annotations

import hashlib
import hmac
import string

HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="
_HEX_DIGITS = frozenset(string.hexdigits)
_DIGEST_HEX_LEN = hashlib.sha256().digest_size * 2


def sign(body: bytes, secret: str) -> str:
    """Return the header value Meta would send for `body`: `sha256=<lowercase hex>`."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """Tell whether `header` is a valid signature of `body` under the app secret."""
    if not header or not header.startswith(_PREFIX):
        return False
    given = header[len(_PREFIX) :]
    # Checked before compare_digest, which raises on non-ASCII input instead of answering False.
    if len(given) != _DIGEST_HEX_LEN or not _HEX_DIGITS.issuperset(given):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # Meta sends lowercase hex; uppercase names the same MAC, so it is accepted rather than
    # turned into a confusing 401.
    return hmac.compare_digest(expected, given.lower())
