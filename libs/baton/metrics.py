"""Prometheus metrics shared by every service, and the helpers that expose them.

Names are `baton_`-prefixed and unit-suffixed; labels stay low-cardinality (never a phone number,
a customer or a message id).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONSUMED = Counter(
    "baton_consumer_messages_total",
    "Broker deliveries settled by a consumer, by outcome.",
    ["queue", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "baton_consumer_handle_seconds",
    "Time a consumer spent handling one delivery.",
    ["queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Recovery (issue 10): whether each subscription is live, and how often it had to come back.
CONSUMER_UP = Gauge(
    "baton_consumer_up",
    "1 while this process is subscribed to the queue, 0 while it is re-subscribing.",
    ["queue"],
)
CONSUMER_RESUBSCRIBED = Counter(
    "baton_consumer_resubscriptions_total",
    "Times a consumer re-subscribed after its channel or connection was lost.",
    ["queue"],
)
BROKER_RECONNECTS = Counter(
    "baton_broker_reconnects_total",
    "Times this process reconnected to the broker after losing its connection.",
)


def exposition() -> tuple[bytes, str]:
    """The default registry in Prometheus' text format, with its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
