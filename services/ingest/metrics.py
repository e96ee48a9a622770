from prometheus_client import Counter, Histogram

WEBHOOK_REQUESTS = Counter(
    "baton_webhook_requests_total",
    "POST /webhook requests by outcome (accepted, bad_signature, too_large, ...).",
    ["outcome"],
)
CHANGES_PUBLISHED = Counter(
    "baton_webhook_changes_published_total",
    "Webhook changes published to the broker and confirmed, by field.",
    ["field"],
)
PUBLISH_CONFIRM_SECONDS = Histogram(
    "baton_publish_confirm_seconds",
    "Time from publishing a webhook's changes to the broker's confirm of all of them.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
VERIFICATIONS = Counter(
    "baton_webhook_verifications_total",
    "GET /webhook verification handshakes by outcome.",
    ["outcome"],
)

KNOWN_FIELDS = frozenset(
    {
        "messages",
        "smb_message_echoes",
        "history",
        "smb_app_state_sync",
        "account_update",
        "message_echoes",
        "unknown",
    }
)


def field_label(routing_key: str) -> str:
    """Keep the label's cardinality bounded whatever fields Meta invents."""
    return routing_key if routing_key in KNOWN_FIELDS else "other"


# Looked up once: `labels()` takes a lock and builds a key on every call, on the hot path.
_PUBLISHED = {field: CHANGES_PUBLISHED.labels(field=field) for field in KNOWN_FIELDS | {"other"}}


def published(routing_key: str) -> Counter:
    """The published-changes counter for this routing key's (bounded) field label."""
    return _PUBLISHED[field_label(routing_key)]
