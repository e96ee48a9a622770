"""History's metrics: import volume and progress, sync requests, the 24-hour deadline.

No label names a number: per-number detail is in the onboarding API and the logs.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_IMPORTED = Counter(
    "baton_history_messages_imported_total",
    "Backlog messages newly stored (re-deliveries not counted).",
)
MESSAGES_REJECTED = Counter(
    "baton_history_messages_rejected_total",
    "Backlog messages set aside as malformed (kept verbatim in raw_changes).",
)
CHUNKS = Counter(
    "baton_history_chunks_total",
    "History change items handled, by kind (chunk, declined, media) and outcome.",
    ["kind", "outcome"],
)
CHUNK_SECONDS = Histogram(
    "baton_history_chunk_import_seconds",
    "Time to import one history chunk.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CONTACTS = Counter(
    "baton_history_contacts_total",
    "Business App address-book changes received, by action.",
    ["action"],
)
IGNORED = Counter(
    "baton_history_changes_ignored_total",
    "Webhook changes acknowledged and ignored because their number is offboarded.",
    ["field"],
)
OFFBOARDINGS = Counter(
    "baton_history_offboardings_total",
    "Offboarding events (PARTNER_REMOVED), by whether a known number matched.",
    ["outcome"],
)
SYNC_ATTEMPTS = Counter(
    "baton_history_sync_requests_total",
    "Sync request attempts by sync type and outcome (accepted, retry, unclear, failed, missed).",
    ["sync_type", "outcome"],
)
DEADLINE_SECONDS = Gauge(
    "baton_history_deadline_seconds",
    "Seconds until the nearest 24-hour sync deadline among onboarded numbers still inside"
    " their window without an accepted history sync (+Inf when none); missed numbers are"
    ' counted in baton_history_numbers{deadline="missed"}.',
)
NUMBERS = Gauge(
    "baton_history_numbers",
    "Recently onboarded numbers by deadline state (on_track, at_risk, missed, met, disabled).",
    ["deadline"],
)
NEEDS_PERSON = Gauge(
    "baton_history_sync_requests_needing_person",
    "Sync requests whose outcome is unclear or refused: a person must decide.",
)
IMPORTS = Gauge(
    "baton_history_imports",
    "Recently onboarded numbers by import state (waiting, importing, completed, declined).",
    ["state"],
)
IMPORT_PERCENT = Gauge(
    "baton_history_import_progress_percent",
    "Lowest import progress (Meta's percent) among numbers still importing; 100 when none.",
)

ACCOUNT_UPDATES = Counter(
    "baton_history_account_updates_total",
    "Template status/category and marketing preference webhooks, by field and outcome.",
    ["field", "outcome"],  # outcome: applied, stale (an older update than the one kept), ignored
)
