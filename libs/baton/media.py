"""Media messages (issue 18): the `media.fetch` command a stored media message asks for."""

from __future__ import annotations

from baton.messages import FetchMedia
from baton.types import ConversationId, PhoneNumberId, WaId
from baton.whatsapp.message import MEDIA_TYPES, WaMessage


def fetch_command(
    phone_number_id: PhoneNumberId,
    message: WaMessage,
    *,
    conversation_id: ConversationId | None = None,
    wa_id: WaId | None = None,
    imported: bool = False,
) -> FetchMedia | None:
    """The download to ask for, or None when the message carries no downloadable file."""
    media = message.media
    if message.type not in MEDIA_TYPES or media is None or not media.id:
        return None
    return FetchMedia(
        phone_number_id=phone_number_id,
        wamid=message.id,
        kind=message.type,
        media_id=media.id,
        conversation_id=conversation_id,
        wa_id=wa_id,
        mime_type=media.mime_type,
        sha256=media.sha256,
        caption=media.caption,
        filename=media.filename,
        voice=bool(media.voice),
        animated=bool(media.animated),
        imported=imported,
    )
