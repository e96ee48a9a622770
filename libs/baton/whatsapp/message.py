"""One WhatsApp message as webhooks carry it: inbound, echoed from the Business App, or history.

Meta names the content object after `type` (`"type": "image", "image": {...}`), so a message is
a flat model with one optional field per known type. Unknown types parse fine and keep their
content in `raw`. Identity fields (`id`, `from`, `timestamp`, `type`) are required; content
details are lenient because a missing caption must never cost us a message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, SkipValidation, model_validator

from baton.types import JSON, Wamid
from baton.whatsapp._base import PhoneNumber, UnixTime, WaModel


class MessageType(StrEnum):
    """The `type` values Baton knows; others are tolerated as plain strings."""

    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    INTERACTIVE = "interactive"
    BUTTON = "button"
    REACTION = "reaction"
    EDIT = "edit"
    REVOKE = "revoke"
    UNSUPPORTED = "unsupported"
    SYSTEM = "system"
    MEDIA_PLACEHOLDER = "media_placeholder"  # history: media without content


MEDIA_TYPES = frozenset(
    {
        MessageType.IMAGE,
        MessageType.VIDEO,
        MessageType.AUDIO,
        MessageType.DOCUMENT,
        MessageType.STICKER,
    }
)


class ErrorData(WaModel):
    details: str | None = None


class ErrorDetail(WaModel):
    """An error as webhooks carry it (message, status or value level)."""

    code: int
    title: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None
    href: str | None = None

    @property
    def details(self) -> str | None:
        return self.error_data.details if self.error_data else None


class Text(WaModel):
    body: str


class Media(WaModel):
    """Image, video, audio, document or sticker; `url` is absent on older deliveries."""

    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None  # document
    voice: bool | None = None  # audio: recorded voice note
    animated: bool | None = None  # sticker
    url: str | None = None


class Location(WaModel):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class ContactName(WaModel):
    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    prefix: str | None = None
    suffix: str | None = None


class ContactPhone(WaModel):
    phone: str | None = None
    wa_id: str | None = None
    type: str | None = None


class ContactEmail(WaModel):
    email: str | None = None
    type: str | None = None


class ContactOrg(WaModel):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class ContactCard(WaModel):
    """A shared contact (vCard-like); any part may be missing."""

    name: ContactName | None = None
    phones: tuple[ContactPhone, ...] = ()
    emails: tuple[ContactEmail, ...] = ()
    org: ContactOrg | None = None
    birthday: str | None = None
    addresses: tuple[dict[str, Any], ...] = ()
    urls: tuple[dict[str, Any], ...] = ()


class Reply(WaModel):
    """A tapped reply button or list row."""

    id: str
    title: str
    description: str | None = None


class FlowReply(WaModel):
    """A WhatsApp Flow submission (`nfm_reply`); fields are unconfirmed, hence all optional."""

    name: str | None = None
    body: str | None = None
    response_json: str | None = None


class Interactive(WaModel):
    type: str
    button_reply: Reply | None = None
    list_reply: Reply | None = None
    nfm_reply: FlowReply | None = None


class Button(WaModel):
    """A template quick-reply tap."""

    payload: str | None = None
    text: str | None = None


class Reaction(WaModel):
    message_id: Wamid
    emoji: str | None = None  # absent or "" when the user removes the reaction

    @property
    def removed(self) -> bool:
        return not self.emoji


class Revoke(WaModel):
    original_message_id: Wamid


class Unsupported(WaModel):
    type: str | None = None


def _string_or_none(value: object) -> object:
    # One library has seen `type` sent as an object; a notice must never cost us the message.
    return value if isinstance(value, str) or value is None else None


NUMBER_CHANGE_TYPES = frozenset({"customer_changed_number", "user_changed_number"})


class System(WaModel):
    """A notice from WhatsApp about the customer (a new number, a new identity)."""

    type: Annotated[str | None, BeforeValidator(_string_or_none)] = None
    body: str | None = None
    wa_id: PhoneNumber | None = None  # the customer's new wa_id after a number change
    new_wa_id: PhoneNumber | None = None  # the same, as some versions name it
    customer: PhoneNumber | None = None  # the customer's wa_id before the change
    identity: str | None = None

    @property
    def number_changed_to(self) -> str | None:
        """The customer's new wa_id if this notice says their number changed."""
        if self.type not in NUMBER_CHANGE_TYPES:
            return None
        return self.wa_id or self.new_wa_id


class ReferredProduct(WaModel):
    catalog_id: str | None = None
    product_retailer_id: str | None = None


class Context(WaModel):
    """Why a message points elsewhere: a quoted/tapped message of ours, a forward, a product."""

    from_: PhoneNumber | None = Field(default=None, alias="from")
    id: Wamid | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False
    referred_product: ReferredProduct | None = None


class WelcomeMessage(WaModel):
    text: str | None = None


class Referral(WaModel):
    """Click-to-WhatsApp ad that opened the conversation."""

    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    body: str | None = None
    headline: str | None = None
    media_type: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    thumbnail_url: str | None = None
    ctwa_clid: str | None = None
    welcome_message: WelcomeMessage | None = None


class HistoryContext(WaModel):
    status: str  # DELIVERED | ERROR | PENDING | PLAYED | READ | SENT


# Types whose content object must be present for the message to make sense.
_REQUIRED_CONTENT: dict[str, str] = {
    MessageType.TEXT: "text",
    MessageType.IMAGE: "image",
    MessageType.VIDEO: "video",
    MessageType.AUDIO: "audio",
    MessageType.DOCUMENT: "document",
    MessageType.STICKER: "sticker",
    MessageType.LOCATION: "location",
    MessageType.CONTACTS: "contacts",
    MessageType.INTERACTIVE: "interactive",
    MessageType.BUTTON: "button",
    MessageType.REACTION: "reaction",
    MessageType.EDIT: "edit",
    MessageType.REVOKE: "revoke",
}


class MessageContent(WaModel):
    """What a message says: its `type` and the object named after it."""

    type: str
    text: Text | None = None
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    contacts: tuple[ContactCard, ...] | None = None
    interactive: Interactive | None = None
    button: Button | None = None
    reaction: Reaction | None = None
    edit: Edit | None = None
    revoke: Revoke | None = None
    unsupported: Unsupported | None = None
    system: System | None = None
    context: Context | None = None

    @model_validator(mode="after")
    def _content_matches_type(self) -> Self:
        attr = _REQUIRED_CONTENT.get(self.type)
        # Meta may send `errors` instead of the content object (an interactive message it
        # could not render): the message is still the customer's, and still to be answered.
        if attr is not None and getattr(self, attr) is None and not getattr(self, "errors", ()):
            raise ValueError(f"message of type {self.type!r} has no {attr!r} object")
        return self

    @property
    def media(self) -> Media | None:
        """The media object, whichever media type this is."""
        return self.image or self.video or self.audio or self.document or self.sticker


class Edit(WaModel):
    """A user's edit (within 15 min) of an earlier message: the new content."""

    original_message_id: Wamid
    message: MessageContent


class WaMessage(MessageContent):
    """A message in `messages[]`, `message_echoes[]` or a history thread."""

    id: Wamid
    from_: PhoneNumber = Field(alias="from")
    timestamp: UnixTime
    to: PhoneNumber | None = None  # echoes and business-sent history messages
    from_user_id: str | None = None  # business-scoped user id (usernames rollout)
    referral: Referral | None = None
    errors: tuple[ErrorDetail, ...] = ()
    history_context: HistoryContext | None = None
    raw: SkipValidation[JSON] = Field(default_factory=dict, exclude=True, repr=False)
    """The message object exactly as received, for stores that keep the original."""

    @model_validator(mode="before")
    @classmethod
    def _keep_raw(cls, data: Any) -> Any:
        # A reference to the input, not a deep copy: history chunks hold thousands of messages.
        if isinstance(data, dict):
            return {**data, "raw": data}
        return data


MessageContent.model_rebuild()
