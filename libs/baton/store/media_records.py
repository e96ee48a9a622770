"""Plain data of the media area crossing the store port (issue 18)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, computed_field

from baton.types import ConversationId, Direction, PhoneNumberId, Wamid


class MediaStatus(StrEnum):
    PENDING = "pending"  # inbound: not downloaded from Meta yet
    AVAILABLE = "available"  # the bytes are in the blob store
    UNAVAILABLE = "unavailable"  # given up on: `reason` says why


class NewMedia(BaseModel):
    """A media message to keep: inbound (by wamid, to download) or outbound (by send key)."""

    model_config = ConfigDict(frozen=True)

    phone_number_id: PhoneNumberId
    conversation_id: ConversationId | None = None
    direction: Direction
    kind: str  # image, audio, video, document, sticker
    wamid: Wamid | None = None
    idempotency_key: str | None = None
    media_id: str | None = None  # Meta's id
    mime_type: str | None = None
    expected_sha256: str | None = None  # the webhook's, checked after the download
    caption: str | None = None
    filename: str | None = None
    voice: bool = False
    # Outbound files are stored before the row exists: then they are available at once.
    blob_key: str | None = None
    size: int | None = None
    sha256: str | None = None


class MediaRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    phone_number_id: PhoneNumberId
    conversation_id: ConversationId | None
    direction: Direction
    kind: str
    wamid: Wamid | None
    idempotency_key: str | None
    media_id: str | None
    mime_type: str | None
    expected_sha256: str | None
    caption: str | None
    filename: str | None
    voice: bool
    size: int | None
    sha256: str | None
    blob_key: str | None
    status: MediaStatus
    reason: str | None
    attempts: int
    transcript: str | None
    description: str | None


class MessageMedia(BaseModel):
    """A message's file as agents see it; `url` is the console path serving its bytes."""

    model_config = ConfigDict(frozen=True)

    id: int = Field(exclude=True)
    kind: str
    mime_type: str | None
    size: int | None = Field(description="Bytes; null until downloaded.")
    caption: str | None
    filename: str | None
    voice: bool = Field(description="A recorded voice note (audio).")
    status: MediaStatus
    reason: str | None = Field(description="Why it is unavailable.")
    transcript: str | None = Field(description="A voice note's transcript, when transcribed.")
    description: str | None = Field(description="What an image shows, when a model described it.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        """Relative to the console: GET it with the same credentials (Range supported)."""
        return f"/media/{self.id}"

    @classmethod
    def of(cls, record: MediaRecord) -> MessageMedia:
        return cls(
            id=record.id,
            kind=record.kind,
            mime_type=record.mime_type,
            size=record.size,
            caption=record.caption,
            filename=record.filename,
            voice=record.voice,
            status=record.status,
            reason=record.reason,
            transcript=record.transcript,
            description=record.description,
        )
