"""Builders of WhatsApp webhook bodies shaped like Meta's (ref §2 and §5), and a signed poster.

Item builders (`text_message`, `media_message`, ...) make one `messages[]` object; change
builders (`customer_text`, `status_change`, `history_chunk`, ...) make one
`{"field": ..., "value": ...}`; `envelope(changes)` wraps changes into a whole POST body and
`meta_json(body)` serialises it the way Meta does, so signatures cover the same bytes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import httpx

from baton.types import JSON
from baton.whatsapp.signature import HEADER, sign

DEFAULT_WABA_ID = "800000000000001"
DEFAULT_PHONE_NUMBER_ID = "900000000000001"
DEFAULT_DISPLAY_NUMBER = "15550001111"
DEFAULT_CUSTOMER_NAME = "Ana Test"

MediaKind = Literal["image", "video", "audio", "document", "sticker"]
StatusName = Literal["sent", "delivered", "read", "failed", "played"]
HistoryStatus = Literal["DELIVERED", "ERROR", "PENDING", "PLAYED", "READ", "SENT"]


def new_wamid() -> str:
    """A fresh message id in Meta's `wamid.` namespace."""
    return f"wamid.SIM{uuid.uuid4().hex.upper()}"


def unix(at: datetime | int | None = None) -> str:
    """Unix seconds as the string Meta sends; now by default."""
    if at is None:
        return str(int(time.time()))
    if isinstance(at, datetime):
        return str(int(at.timestamp()))
    return str(at)


def meta_json(body: Any, *, escape_slashes: bool = False) -> bytes:
    """Serialise like Meta: compact, non-ASCII as lowercase `\\uXXXX` (emoji as surrogate pairs).

    `escape_slashes` also writes `/` as `\\/`, as Facebook's JSON is known to do in places
    (unconfirmed for WhatsApp): a receiver that verifies raw bytes must not care.
    """
    text = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    if escape_slashes:
        text = text.replace("/", "\\/")
    return text.encode("ascii")


def metadata(
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
) -> JSON:
    return {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id}


# --- messages[] items ------------------------------------------------------------------


def _item(
    from_: str, type_: str, content: Any, *, wamid: str | None, timestamp: datetime | int | None
) -> JSON:
    return {
        "from": from_,
        "id": wamid or new_wamid(),
        "timestamp": unix(timestamp),
        "type": type_,
        type_: content,
    }


def text_message(
    from_: str,
    body: str,
    *,
    wamid: str | None = None,
    timestamp: datetime | int | None = None,
    context: JSON | None = None,
) -> JSON:
    """A customer's text; `context={"from": ..., "id": ...}` makes it a quote of our message."""
    item = _item(from_, "text", {"body": body}, wamid=wamid, timestamp=timestamp)
    if context is not None:
        item["context"] = context
    return item


def media_message(
    from_: str,
    kind: MediaKind,
    *,
    media_id: str | None = None,
    mime_type: str | None = None,
    caption: str | None = None,
    filename: str | None = None,
    voice: bool | None = None,
    wamid: str | None = None,
    timestamp: datetime | int | None = None,
    sha256: str | None = None,
) -> JSON:
    """An image, video, audio, document or sticker with Meta's media object."""
    default_mime = {
        "image": "image/jpeg",
        "video": "video/mp4",
        "audio": "audio/ogg; codecs=opus",
        "document": "application/pdf",
        "sticker": "image/webp",
    }[kind]
    media: JSON = {
        "id": media_id or uuid.uuid4().hex[:15],
        "mime_type": mime_type or default_mime,
        "sha256": sha256 or uuid.uuid4().hex + uuid.uuid4().hex,
    }
    if caption is not None and kind in ("image", "video", "document"):
        media["caption"] = caption
    if kind == "document":
        media["filename"] = filename or "file.pdf"
    if kind == "audio":
        media["voice"] = bool(voice)
    if kind == "sticker":
        media["animated"] = False
    return _item(from_, kind, media, wamid=wamid, timestamp=timestamp)


def button_reply_message(
    from_: str,
    reply_id: str,
    title: str,
    *,
    context_wamid: str | None = None,
    business_number: str = DEFAULT_DISPLAY_NUMBER,
    wamid: str | None = None,
    timestamp: datetime | int | None = None,
) -> JSON:
    """A tap on a reply button of an interactive message we sent."""
    interactive = {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}}
    item = _item(from_, "interactive", interactive, wamid=wamid, timestamp=timestamp)
    item["context"] = {"from": business_number, "id": context_wamid or new_wamid()}
    return item


def list_reply_message(
    from_: str,
    reply_id: str,
    title: str,
    *,
    description: str | None = None,
    wamid: str | None = None,
    timestamp: datetime | int | None = None,
) -> JSON:
    """A row picked from an interactive list we sent."""
    row: JSON = {"id": reply_id, "title": title}
    if description is not None:
        row["description"] = description
    interactive = {"type": "list_reply", "list_reply": row}
    return _item(from_, "interactive", interactive, wamid=wamid, timestamp=timestamp)


def location_message(
    from_: str,
    latitude: float,
    longitude: float,
    *,
    name: str | None = None,
    address: str | None = None,
    wamid: str | None = None,
    timestamp: datetime | int | None = None,
) -> JSON:
    location: JSON = {"latitude": latitude, "longitude": longitude}
    if name is not None:
        location["name"] = name
    if address is not None:
        location["address"] = address
    return _item(from_, "location", location, wamid=wamid, timestamp=timestamp)


def reaction_message(
    from_: str,
    message_id: str,
    emoji: str | None,
    *,
    wamid: str | None = None,
    timestamp: datetime | int | None = None,
) -> JSON:
    """A reaction to `message_id`; `emoji=None` is a removed reaction (no emoji key)."""
    reaction: JSON = {"message_id": message_id}
    if emoji is not None:
        reaction["emoji"] = emoji
    return _item(from_, "reaction", reaction, wamid=wamid, timestamp=timestamp)


# --- field "messages" ------------------------------------------------------------------


def messages_change(
    phone_number_id: str,
    messages: Sequence[JSON],
    *,
    name: str = DEFAULT_CUSTOMER_NAME,
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
) -> JSON:
    """Inbound messages with one `contacts[]` entry per distinct sender."""
    senders = dict.fromkeys(m["from"] for m in messages)
    contacts = [{"profile": {"name": name}, "wa_id": sender} for sender in senders]
    value = {
        "messaging_product": "whatsapp",
        "metadata": metadata(phone_number_id, display_phone_number),
        "contacts": contacts,
        "messages": list(messages),
    }
    return {"field": "messages", "value": value}


def customer_text(
    phone_number_id: str,
    from_: str,
    body: str,
    *,
    name: str = DEFAULT_CUSTOMER_NAME,
    wamid: str | None = None,
    timestamp: datetime | int | None = None,
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
) -> JSON:
    """A customer's text message as a `messages` change."""
    item = text_message(from_, body, wamid=wamid, timestamp=timestamp)
    return messages_change(
        phone_number_id, [item], name=name, display_phone_number=display_phone_number
    )


def status_change(
    phone_number_id: str,
    wamid: str,
    status: StatusName,
    recipient_id: str,
    *,
    timestamp: datetime | int | None = None,
    biz_opaque_callback_data: str | None = None,
    error_code: int | None = None,
    error_title: str = "Re-engagement message",
    error_details: str = "More than 24 hours have passed since the recipient last replied.",
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
) -> JSON:
    """A status of a message we sent; `failed` carries `errors[]` (131047 by default)."""
    item: JSON = {
        "id": wamid,
        "status": status,
        "timestamp": unix(timestamp),
        "recipient_id": recipient_id,
    }
    if biz_opaque_callback_data is not None:
        item["biz_opaque_callback_data"] = biz_opaque_callback_data
    if status in ("sent", "delivered"):
        item["pricing"] = {
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "service",
        }
    if status == "failed":
        item["errors"] = [
            {
                "code": error_code if error_code is not None else 131047,
                "title": error_title,
                "message": error_title,
                "error_data": {"details": error_details},
                "href": "/documentation/business-messaging/whatsapp/support/error-codes",
            }
        ]
    value = {
        "messaging_product": "whatsapp",
        "metadata": metadata(phone_number_id, display_phone_number),
        "statuses": [item],
    }
    return {"field": "messages", "value": value}


# --- Coexistence fields ----------------------------------------------------------------


def echo_change(
    phone_number_id: str,
    to: str,
    body: str,
    *,
    wamid: str | None = None,
    timestamp: datetime | int | None = None,
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
) -> JSON:
    """The owner typed `body` to customer `to` in the WhatsApp Business App."""
    item = {
        "from": display_phone_number,
        "to": to,
        "id": wamid or new_wamid(),
        "timestamp": unix(timestamp),
        "type": "text",
        "text": {"body": body},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": metadata(phone_number_id, display_phone_number),
        "message_echoes": [item],
    }
    return {"field": "smb_message_echoes", "value": value}


def history_message(
    from_: str,
    body: str | None,
    *,
    to: str | None = None,
    status: HistoryStatus = "READ",
    wamid: str | None = None,
    timestamp: datetime | int | None = None,
) -> JSON:
    """A backlog message; `body=None` makes a `media_placeholder`. Set `to` on business sends."""
    item: JSON = {"from": from_}
    if to is not None:
        item["to"] = to
    item |= {"id": wamid or new_wamid(), "timestamp": unix(timestamp)}
    if body is None:
        item["type"] = "media_placeholder"
    else:
        item |= {"type": "text", "text": {"body": body}}
    item["history_context"] = {"status": status}
    return item


def history_chunk(
    phone_number_id: str,
    threads: Mapping[str, Sequence[JSON]],
    *,
    phase: int = 0,
    chunk_order: int = 1,
    progress: int = 100,
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
) -> JSON:
    """One `history` chunk; `threads` maps a customer's number to its messages."""
    chunk = {
        "metadata": {"phase": phase, "chunk_order": chunk_order, "progress": progress},
        "threads": [{"id": wa_id, "messages": list(items)} for wa_id, items in threads.items()],
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": metadata(phone_number_id, display_phone_number),
        "history": [chunk],
    }
    return {"field": "history", "value": value}


def history_declined(
    phone_number_id: str, *, display_phone_number: str = DEFAULT_DISPLAY_NUMBER
) -> JSON:
    """The business turned history sharing off in the app (error 2593109)."""
    title = "History sync is turned off by the business from the WhatsApp Business App"
    error = {
        "code": 2593109,
        "title": title,
        "message": title,
        "error_data": {"details": "History sharing is turned off by the business"},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": metadata(phone_number_id, display_phone_number),
        "history": [{"errors": [error]}],
    }
    return {"field": "history", "value": value}


def history_media(
    phone_number_id: str,
    messages: Sequence[JSON],
    *,
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
) -> JSON:
    """Recent backlog media (last 14 days), sent apart from the chunks as `value.messages[]`."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": metadata(phone_number_id, display_phone_number),
        "messages": list(messages),
    }
    return {"field": "history", "value": value}


def state_sync_contact(
    phone_number_id: str,
    phone_number: str,
    *,
    full_name: str | None = DEFAULT_CUSTOMER_NAME,
    first_name: str | None = None,
    action: Literal["add", "remove"] = "add",
    timestamp: datetime | int | None = None,
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
) -> JSON:
    """A contact added/edited (`add`) or removed in the app's address book."""
    contact: JSON = {"phone_number": phone_number}
    if action == "add":
        if full_name is not None:
            contact["full_name"] = full_name
        first = first_name if first_name is not None else (full_name or "").split(" ")[0]
        if first:
            contact["first_name"] = first
    item = {
        "type": "contact",
        "contact": contact,
        "action": action,
        "metadata": {"timestamp": unix(timestamp)},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": metadata(phone_number_id, display_phone_number),
        "state_sync": [item],
    }
    return {"field": "smb_app_state_sync", "value": value}


def partner_removed(
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
    *,
    waba_id: str = DEFAULT_WABA_ID,
    reason: str = "ACCOUNT_DISCONNECTED",
    initiated_by: Literal["USER", "SYSTEM"] = "USER",
) -> JSON:
    """The owner disconnected the Coexistence number (`account_update`, PARTNER_REMOVED)."""
    value = {
        "phone_number": display_phone_number,
        "event": "PARTNER_REMOVED",
        "waba_info": {"waba_id": waba_id},
        "disconnection_info": {"reason": reason, "initiated_by": initiated_by},
    }
    return {"field": "account_update", "value": value}


# --- the envelope and posting ----------------------------------------------------------


def envelope(
    changes: Iterable[JSON], *, waba_id: str = DEFAULT_WABA_ID, entry_time: int | None = None
) -> JSON:
    """A whole webhook body: one entry holding `changes` (`entry_time` sets `entry[].time`)."""
    entry: JSON = {"id": waba_id}
    if entry_time is not None:
        entry["time"] = entry_time
    entry["changes"] = list(changes)
    return {"object": "whatsapp_business_account", "entry": [entry]}


async def post_webhook(
    url: str,
    body: bytes,
    secret: str,
    *,
    client: httpx.AsyncClient | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST `body` signed with the app secret, as Meta delivers a webhook."""
    headers = {"Content-Type": "application/json", HEADER: sign(body, secret)}
    if client is not None:
        return await client.post(url, content=body, headers=headers, timeout=timeout)
    async with httpx.AsyncClient(timeout=timeout) as own:
        return await own.post(url, content=body, headers=headers)
