"""Outbox metrics.

The only phone number label is the business number's (`phone_number_id`): a deployment has a
handful of them, not one per customer, so those series stay few. Customers are never a label.
"""

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

# Business numbers are few per deployment, so they are a bounded label; customers never are.
SENDS = Counter(
    "baton_outbox_sends_total",
    "Send requests by author, business number and outcome (sent, failed, fenced, duplicate,"
    " offboarded, dead_lettered), counted when the number's sender settles them.",
    ["author", "phone_number_id", "outcome"],
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
HELD = Gauge(
    "baton_outbox_held_sends",
    "Send requests a number's sender holds in this replica (its backlog here; the rest waits "
    "in the number's queue). Only while this replica is the number's sender.",
    ["phone_number_id"],
)
FREE_SLOTS = Gauge(
    "baton_outbox_free_send_slots",
    "Sends of a number that could start right now (its tokens). Only while this replica is "
    "the number's sender.",
    ["phone_number_id"],
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


# Which sender reports each number's gauges: in tests several replicas share one registry, and
# a replica letting a number go must not remove the series of the one that took it over.
_reporting: dict[str, object] = {}


def report_number(
    phone_number_id: str, owner: object, *, held: Callable[[], float], free: Callable[[], float]
) -> None:
    """Export a number's held sends and free slots while `owner` is its sender."""
    _reporting[phone_number_id] = owner
    HELD.labels(phone_number_id=phone_number_id).set_function(held)
    FREE_SLOTS.labels(phone_number_id=phone_number_id).set_function(free)


def forget_number(phone_number_id: str, owner: object) -> None:
    """`owner` is no longer the number's sender: drop its gauges (a standby reports nothing)."""
    if _reporting.get(phone_number_id) is not owner:
        return
    del _reporting[phone_number_id]
    HELD.remove(phone_number_id)
    FREE_SLOTS.remove(phone_number_id)
