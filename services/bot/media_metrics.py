"""The media consumer's metrics (downloads, bytes, transcriptions), on the default registry."""

from __future__ import annotations

from prometheus_client import Counter

DOWNLOADS = Counter(
    "baton_media_downloads_total",
    "Customer files fetched from Meta, by outcome (stored, retried, unavailable, duplicate).",
    ["outcome"],
)
DOWNLOADED_BYTES = Counter(
    "baton_media_downloaded_bytes_total", "Bytes of customer files stored in the blob store."
)
UNDERSTOOD = Counter(
    "baton_media_understood_total",
    "Files turned into text for the bot, by how (transcript, description) and outcome.",
    ["how", "outcome"],
)
