"""Render any message as one short line of text, for the bot's prompt and agents' previews."""

from __future__ import annotations

from baton.whatsapp.message import ContactCard, Location, Media, MessageContent, MessageType


def render_text(message: MessageContent) -> str:
    """Text body, caption, tapped title or a short `[image]`-style stand-in."""
    match message.type:
        case MessageType.TEXT if message.text:
            return message.text.body
        case MessageType.INTERACTIVE if message.interactive:
            reply = message.interactive.button_reply or message.interactive.list_reply
            if reply is not None:
                return reply.title
            flow = message.interactive.nfm_reply
            if flow is not None and flow.body:
                return f"[form: {flow.body}]"
            return "[form submitted]" if flow is not None else "[interactive]"
        case MessageType.BUTTON if message.button:
            return message.button.text or message.button.payload or "[button]"
        case MessageType.LOCATION if message.location:
            return _location(message.location)
        case MessageType.CONTACTS if message.contacts is not None:
            return _contacts(message.contacts)
        case MessageType.REACTION if message.reaction:
            emoji = message.reaction.emoji
            return f"[reaction {emoji}]" if emoji else "[reaction removed]"
        case MessageType.EDIT if message.edit:
            return f"[edited] {render_text(message.edit.message)}"
        case MessageType.REVOKE:
            return "[message deleted]"
        case MessageType.UNSUPPORTED:
            return "[unsupported message]"
        case MessageType.MEDIA_PLACEHOLDER:
            return "[media]"
    media = message.media
    if media is not None:
        return _media(message.type, media)
    return f"[{message.type}]"


def _media(kind: str, media: Media) -> str:
    if kind == MessageType.AUDIO and media.voice:
        label = "[voice message]"
    elif kind == MessageType.DOCUMENT and media.filename:
        label = f"[document: {media.filename}]"
    else:
        label = f"[{kind}]"
    return f"{label} {media.caption}" if media.caption else label


def _location(location: Location) -> str:
    place = ", ".join(p for p in (location.name, location.address) if p)
    return f"[location: {place or f'{location.latitude:.5f},{location.longitude:.5f}'}]"


def _contacts(cards: tuple[ContactCard, ...]) -> str:
    described = []
    for card in cards:
        name = card.name.formatted_name if card.name else None
        phone = next((p.phone for p in card.phones if p.phone), None)
        described.append(" ".join(p for p in (name, phone) if p) or "?")
    return f"[contact: {'; '.join(described)}]"
