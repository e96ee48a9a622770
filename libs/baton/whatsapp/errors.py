"""Graph API failures and how to react to them.

`classify(http_status, code)` decides; the table (ref §7) is:

| class        | Meta error codes                                             | by HTTP alone  |
|--------------|--------------------------------------------------------------|----------------|
| `THROUGHPUT` | 130429 throughput, 80007 WABA limit, 4 app call limit,       | 429            |
|              | 131057 number in maintenance (retry in ~1 min)               |                |
| `PAIR_RATE`  | 131056 too many messages to the same user                    |                |
| `TRANSIENT`  | 131000 unknown, 131016 unavailable, 1 API unknown, 2 down    | 5xx, 408,      |
|              |                                                              | transport      |
| `PERMANENT`  | 0 / 190 auth, 3 / 10 / 200-299 permission, 100 / 131008 /    | other 4xx,     |
|              | 131009 bad parameter, 131026 undeliverable, 131031 / 368     | anything else  |
|              | blocked, 131047 outside the 24 h window, 131048 spam limit   |                |
|              | (never auto-retry), 131049 / 131050 marketing, 131051        |                |
|              | unsupported type, 1320xx templates                           |                |

A known code wins over the HTTP status: code 3 arrives with HTTP 500 and is still permanent.
An unknown code falls back to the HTTP status. Retry THROUGHPUT by pacing the number, PAIR_RATE
per recipient (Meta suggests 4^n seconds), TRANSIENT a bounded number of times; never PERMANENT.
"""

from __future__ import annotations

import json
from enum import StrEnum


class ErrorClass(StrEnum):
    THROUGHPUT = "throughput"
    PAIR_RATE = "pair_rate"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


THROUGHPUT_CODES = frozenset({4, 80007, 130429, 131057})
PAIR_RATE_CODES = frozenset({131056})
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016})
PERMANENT_CODES = frozenset(
    {0, 3, 10, 100, 190, 368}
    | set(range(200, 300))
    | {131008, 131009, 131026, 131031, 131047, 131048, 131049, 131050, 131051}
    | set(range(132000, 132100))
)


def classify(http_status: int | None, code: int | None) -> ErrorClass:
    """Classify a Graph API failure by Meta's error code, else by HTTP status."""
    if code is not None:
        if code in THROUGHPUT_CODES:
            return ErrorClass.THROUGHPUT
        if code in PAIR_RATE_CODES:
            return ErrorClass.PAIR_RATE
        if code in TRANSIENT_CODES:
            return ErrorClass.TRANSIENT
        if code in PERMANENT_CODES:
            return ErrorClass.PERMANENT
    if http_status is None:
        return ErrorClass.PERMANENT  # e.g. an unknown code in a `failed` status webhook
    if http_status == 429:
        return ErrorClass.THROUGHPUT
    if http_status >= 500 or http_status == 408:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


# Failures an agent can act on, named plainly (issue 12): a send's recorded failure reason.
FAILURE_REASONS = {
    131047: "window_closed: more than 24 h since the customer's last message; send a template",
    132000: "template_params_mismatch: the parameters do not match the template's placeholders",
    132001: "template_missing: no approved template with this name and language",
}


def failure_reason(code: int | None, detail: str) -> str:
    """The reason recorded for a permanent failure: a plain one for known codes, else Meta's."""
    known = FAILURE_REASONS.get(code) if code is not None else None
    return f"{known} ({detail})" if known else detail


class GraphError(Exception):
    """Base of every Graph API client failure; `error_class` says how to react."""

    error_class: ErrorClass

    @property
    def retryable(self) -> bool:
        return self.error_class is not ErrorClass.PERMANENT


class GraphApiError(GraphError):
    """Meta answered with an error (or with a response the client cannot use)."""

    def __init__(
        self,
        http_status: int,
        code: int | None,
        message: str,
        details: str | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.message = message
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.error_class = classify(http_status, code)
        text = f"Graph API error {code} (HTTP {http_status}, {self.error_class}): {message}"
        super().__init__(f"{text} ({details})" if details else text)

    @classmethod
    def from_response(cls, http_status: int, content: bytes) -> GraphApiError:
        """Build from an error response, whether Meta-shaped JSON or a proxy's HTML page."""
        error = _error_object(content)
        if error is None:
            snippet = content[:200].decode("utf-8", "replace").strip()
            return cls(http_status, None, snippet or f"HTTP {http_status} with no body")
        code = error.get("code")
        error_data = error.get("error_data")
        details = error_data.get("details") if isinstance(error_data, dict) else None
        message = error.get("message")
        fbtrace_id = error.get("fbtrace_id")
        return cls(
            http_status,
            code if isinstance(code, int) and not isinstance(code, bool) else None,
            message if isinstance(message, str) else f"HTTP {http_status}",
            details if isinstance(details, str) else None,
            fbtrace_id if isinstance(fbtrace_id, str) else None,
        )


class GraphTransportError(GraphError):
    """No usable answer from Meta: connection failed, timed out or broke mid-response.

    `maybe_delivered` is False only when the request certainly never left (connection refused,
    connect timeout): a send may then be retried freely. When True, Meta may have acted on it
    (a message sent, a one-shot history sync consumed) and a retry may duplicate the effect.
    """

    error_class = ErrorClass.TRANSIENT

    def __init__(self, message: str, *, maybe_delivered: bool) -> None:
        self.maybe_delivered = maybe_delivered
        super().__init__(message)


def _error_object(content: bytes) -> dict[str, object] | None:
    try:
        parsed = json.loads(content)
    except ValueError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else None
