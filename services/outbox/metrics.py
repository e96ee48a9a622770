"""Outbox metrics. No phone number labels: per-number detail is on `/outbox/numbers`."""

from prometheus_client import Counter, Gauge, Histogram

SENDS = Counter(
    "baton_outbox_sends_total",
    "Send requests by author and outcome (sent, failed, fenced, duplicate, dead_lettered).",
    ["author", "outcome"],
)
GRAPH_ERRORS = Counter(
    "baton_outbox_graph_errors_total",
    "Graph API errors by error class and Meta error code.",
    ["error_class", "code"],
)
RETRIES = Counter(
    "baton_outbox_retries_total",
    "Retries planned after a retryable failure, by error class and who waits.",
    ["error_class", "scope"],
)
IN_DOUBT = Counter(
    "baton_outbox_in_doubt_total",
    "Sends retried although Meta may have accepted an earlier attempt (possible duplicate).",
    ["cause"],
)
FENCED = Counter(
    "baton_bot_replies_fenced_total",
    "Bot replies dropped at send time because a human holds the conversation or the epoch moved.",
    ["reason"],
)
SEND_SECONDS = Histogram(
    "baton_outbox_send_seconds",
    "Latency of Graph API send calls.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WAIT_SECONDS = Histogram(
    "baton_outbox_wait_seconds",
    "Time a send waited in this replica (rate window, pair limit, order, backoff) before its call.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
NUMBERS = Gauge(
    "baton_outbox_numbers",
    "Business numbers this replica is subscribed to, by state (active sender or standby).",
    ["state"],
)
HELD = Gauge("baton_outbox_held_sends", "Send requests held by this replica, over all numbers.")
FREE_SLOTS = Gauge(
    "baton_outbox_free_send_slots",
    "Sends that could start right now, summed over the numbers this replica is active for.",
)
HANDOVERS = Counter(
    "baton_outbox_handovers_total",
    "This replica became the active sender of a number, or released one (rebalance, stop).",
    ["event"],
)
FORWARDED = Counter(
    "baton_outbox_intake_total",
    "Send requests taken off the intake queue, by outcome (forwarded, dead_lettered).",
    ["outcome"],
)
