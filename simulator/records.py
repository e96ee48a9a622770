"""What the simulator saw and answered, for tests to assert on."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int  # one counter across all records: orders them
    phone_number_id: str
    outcome: Outcome
    http_status: int
    error_code: int | None = None
    at: float  # the simulator's clock (monotonic by default): use for rate arithmetic
    received_at: datetime  # wall clock, UTC, for humans


class SentMessage(_Record):
    """A `POST /messages` send attempt."""

    to: str  # as the client wrote it, e.g. "+5511999990000"
    wa_id: str  # digits only
    type: str | None = None
    body: str | None = None
    reply_to: str | None = None
    biz_opaque_callback_data: str | None = None
    wamid: str | None = None  # set when accepted
    media_id: str | None = None  # a file sent by id (image, audio, video, document, sticker)
    caption: str | None = None
    filename: str | None = None


class ReadReceipt(_Record):
    """A mark-read (`status: read`) request."""

    message_id: str | None = None
    typing: bool = False


class SyncRequest(_Record):
    """A `POST /smb_app_data` request."""

    sync_type: str | None = None
    request_id: str | None = None


class MediaUpload(_Record):
    """A `POST /{phone_number_id}/media` upload."""

    mime_type: str | None = None
    size: int = 0
    filename: str | None = None
    media_id: str | None = None  # set when accepted


class MediaFetch(_Record):
    """A `GET /{media-id}` (`info`) or a download of its URL (`download`)."""

    media_id: str
    step: str  # info | download


class WebhookDelivery(BaseModel):
    """One attempt to deliver a status webhook to the configured URL."""

    model_config = ConfigDict(frozen=True)

    wamid: str
    status: str
    attempt: int
    http_status: int | None  # None when the POST itself failed
    error: str | None = None
    at: datetime


class NumberStats(BaseModel):
    accepted: int = 0
    rejected: int = 0
    throughput_errors: int = 0  # 130429 answered by rate enforcement (not injected faults)
    pair_rate_errors: int = 0


class Stats(BaseModel):
    throughput_errors: int
    pair_rate_errors: int
    accepted: int
    rejected: int
    numbers: dict[str, NumberStats]
