"""The Chatwoot bridge's metrics. No label names a number, a conversation or a message."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MIRRORED = Counter(
    "baton_chatwoot_mirrored_total",
    "Baton changes written into Chatwoot, by kind (message, note, status, assignee, contact,"
    " conversation) and outcome (done, duplicate).",
    ["kind", "outcome"],
)
API_ERRORS = Counter(
    "baton_chatwoot_api_errors_total",
    "Failed Chatwoot API calls, by class (unavailable: retried; rejected: given up).",
    ["error"],
)
LAG_SECONDS = Gauge(
    "baton_chatwoot_lag_seconds",
    "How long the event the bridge is mirroring now has waited since it happened (0 when idle):"
    " grows while Chatwoot is down or slow.",
)
CALLBACKS = Counter(
    "baton_chatwoot_callbacks_total",
    "Callbacks from Chatwoot, by event and outcome (applied, ignored, duplicate, stale, echo,"
    " refused, unauthorized, failed).",
    ["event", "outcome"],
)
AGENT_SENDS = Counter(
    "baton_chatwoot_agent_sends_total",
    "Chatwoot agents' replies handed to the outbox, by outcome (queued, duplicate, refused).",
    ["outcome"],
)
