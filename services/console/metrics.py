"""The console's Prometheus metrics (`baton_console_*`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ACTIONS = Counter(
    "baton_console_actions_total",
    "Agent and bot actions through the console, by action and outcome.",
    ["action", "outcome"],  # takeover|release|send_human|send_bot; ok|unchanged|conflict|…
)
AUTH_FAILURES = Counter(
    "baton_console_auth_failures_total",
    "Requests refused with 401, by reason.",
    ["reason"],  # missing|unknown_token
)
FORBIDDEN = Counter(
    "baton_console_forbidden_total",
    "Requests refused with 403 (an authenticated caller acting beyond its rights).",
)
SSE_CLIENTS = Gauge("baton_console_sse_clients", "Clients connected to GET /events.")
SSE_EVENTS = Counter(
    "baton_console_sse_events_total",
    "Conversation events fanned out to SSE clients, by outcome.",
    ["outcome"],  # received|delivered|dropped
)
