"""Models of a webhook's `entry[].changes[].value`, one per subscribed field, and their parser.

Parse a change with `parse_change(field, value)`; malformed input raises `PayloadError` whose
text names the failing locations without echoing customer content.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias, TypeVar, overload

from pydantic import BaseModel, Field, ValidationError

from baton.types import JSON, PhoneNumberId, Wamid
from baton.whatsapp._base import PhoneNumber, UnixTime, WaModel
from baton.whatsapp.message import ErrorDetail, WaMessage

HISTORY_DECLINED_CODE = 2593109
"""`history[].errors[].code` when the business turned history sharing off in the app."""


class ChangeField(StrEnum):
    """The webhook fields Baton subscribes to and parses."""

    MESSAGES = "messages"
    ECHOES = "smb_message_echoes"
    HISTORY = "history"
    STATE_SYNC = "smb_app_state_sync"
    ACCOUNT_UPDATE = "account_update"
    TEMPLATE_STATUS = "message_template_status_update"
    TEMPLATE_CATEGORY = "template_category_update"
    USER_PREFERENCES = "user_preferences"


class PayloadError(ValueError):
    """A webhook value that does not have the shape Meta documents."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"malformed {field!r} webhook value: {reason}")
        self.field = field
        self.reason = reason


class UnknownFieldError(PayloadError):
    """A change whose `field` Baton does not parse."""

    def __init__(self, field: str) -> None:
        super().__init__(field, "unknown field")


class Metadata(WaModel):
    display_phone_number: PhoneNumber
    phone_number_id: PhoneNumberId


# --- field "messages" ------------------------------------------------------------------


class Profile(WaModel):
    name: str | None = None


class Contact(WaModel):
    """Who wrote: `profile.name` is chosen by the user and must not be trusted."""

    wa_id: PhoneNumber | None = None
    profile: Profile | None = None
    user_id: str | None = None
    identity_key_hash: str | None = None

    @property
    def name(self) -> str | None:
        return self.profile.name if self.profile else None


class StatusKind(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    PLAYED = "played"


class Pricing(WaModel):
    billable: bool | None = None
    pricing_model: str | None = None
    type: str | None = None
    category: str | None = None


class ConversationOrigin(WaModel):
    type: str | None = None


class ConversationInfo(WaModel):
    id: str | None = None
    expiration_timestamp: UnixTime | None = None
    origin: ConversationOrigin | None = None


class Status(WaModel):
    """What happened to a message we sent. Unknown future statuses stay plain strings."""

    id: Wamid
    status: Annotated[StatusKind | str, Field(union_mode="left_to_right")]
    timestamp: UnixTime
    recipient_id: PhoneNumber  # or a group id
    recipient_type: str | None = None
    recipient_participant_id: str | None = None
    recipient_identity_key_hash: str | None = None
    biz_opaque_callback_data: str | None = None
    pricing: Pricing | None = None
    conversation: ConversationInfo | None = None
    errors: tuple[ErrorDetail, ...] = ()


class MessagesValue(WaModel):
    """Inbound messages, statuses of our sends, or system errors (any may co-occur)."""

    messaging_product: str = "whatsapp"
    metadata: Metadata
    contacts: tuple[Contact, ...] = ()
    messages: tuple[WaMessage, ...] = ()
    statuses: tuple[Status, ...] = ()
    errors: tuple[ErrorDetail, ...] = ()

    def contact_for(self, wa_id: str) -> Contact | None:
        """The `contacts[]` entry describing the sender `wa_id`, if Meta sent one."""
        return next((c for c in self.contacts if c.wa_id == wa_id), None)


# --- field "smb_message_echoes" --------------------------------------------------------


class EchoesValue(WaModel):
    """Messages the owner sent from the WhatsApp Business App (Coexistence)."""

    messaging_product: str = "whatsapp"
    metadata: Metadata
    message_echoes: tuple[WaMessage, ...] = ()


# --- field "history" -------------------------------------------------------------------


class HistoryMetadata(WaModel):
    phase: int  # 0: day 0-1, 1: day 1-90, 2: day 90-180 before onboarding
    chunk_order: int
    progress: int  # 0-100; 100 = sync complete


class HistoryThread(WaModel):
    id: PhoneNumber  # the customer's phone number
    messages: tuple[WaMessage, ...] = ()


class HistoryChunk(WaModel):
    """One chunk of the backlog, or an error (e.g. the business declined sharing)."""

    metadata: HistoryMetadata | None = None
    threads: tuple[HistoryThread, ...] = ()
    errors: tuple[ErrorDetail, ...] = ()

    @property
    def declined(self) -> bool:
        return any(e.code == HISTORY_DECLINED_CODE for e in self.errors)


class HistoryValue(WaModel):
    """Backlog chunks in `history[]`; recent media arrives separately in `messages[]`."""

    messaging_product: str = "whatsapp"
    metadata: Metadata
    history: tuple[HistoryChunk, ...] = ()
    messages: tuple[WaMessage, ...] = ()

    @property
    def declined(self) -> bool:
        return any(chunk.declined for chunk in self.history)


# --- field "smb_app_state_sync" --------------------------------------------------------


class SyncedContact(WaModel):
    phone_number: PhoneNumber
    full_name: str | None = None  # omitted on "remove"
    first_name: str | None = None


class StateSyncMetadata(WaModel):
    timestamp: UnixTime


class StateSyncItem(WaModel):
    """A contact added (or edited) or removed in the Business App's address book."""

    type: str  # "contact" is the only documented type
    action: str  # "add" (also edits) | "remove"
    contact: SyncedContact | None = None
    metadata: StateSyncMetadata | None = None


class StateSyncValue(WaModel):
    messaging_product: str = "whatsapp"
    metadata: Metadata
    state_sync: tuple[StateSyncItem, ...] = ()


# --- field "account_update" ------------------------------------------------------------


class DisconnectionInfo(WaModel):
    reason: str | None = None  # ACCOUNT_DISCONNECTED, PRIMARY_INACTIVITY, ...
    initiated_by: str | None = None  # USER | SYSTEM


class WabaInfo(WaModel):
    waba_id: str | None = None
    owner_business_id: str | None = None


class AccountUpdateValue(WaModel):
    """Account events, e.g. PARTNER_REMOVED when the owner disconnects a Coexistence number."""

    event: str
    phone_number: str | None = None
    waba_info: WabaInfo | None = None
    disconnection_info: DisconnectionInfo | None = None
    metadata: Metadata | None = None


# --- fields "message_template_status_update", "template_category_update" ---------------
# Both name the WABA only in `entry[].id`, never a phone number: templates belong to the WABA.


class TemplateStatusValue(WaModel):
    """A template was approved, rejected, paused, disabled … (`event` is the new status)."""

    event: str
    message_template_id: int | str
    message_template_name: str | None = None
    message_template_language: str | None = None
    message_template_category: str | None = None
    reason: str | None = None  # null when scheduled for deletion


class TemplateCategoryValue(WaModel):
    """Meta moved (or will move) a template to another category."""

    message_template_id: int | str
    message_template_name: str | None = None
    message_template_language: str | None = None
    previous_category: str | None = None
    new_category: str | None = None
    correct_category: str | None = None  # announced ahead of the change


# --- field "user_preferences" ----------------------------------------------------------


class UserPreference(WaModel):
    """A customer stopped or resumed marketing messages (`value`: "stop" | "resume")."""

    wa_id: PhoneNumber
    category: str
    value: str
    detail: str | None = None
    timestamp: UnixTime


class UserPreferencesValue(WaModel):
    messaging_product: str = "whatsapp"
    metadata: Metadata
    user_preferences: tuple[UserPreference, ...] = ()


# --- the envelope ----------------------------------------------------------------------


class Change(WaModel):
    field: str
    value: JSON


class Entry(WaModel):
    id: str  # the WABA id
    time: int | None = None
    changes: tuple[Change, ...] = ()


class Envelope(WaModel):
    """A whole webhook POST; values stay raw so each change can travel on its own."""

    object: str
    entry: tuple[Entry, ...] = ()


ChangeValue: TypeAlias = (
    MessagesValue
    | EchoesValue
    | HistoryValue
    | StateSyncValue
    | AccountUpdateValue
    | TemplateStatusValue
    | TemplateCategoryValue
    | UserPreferencesValue
)

_M = TypeVar("_M", bound=BaseModel)

_MODELS: dict[str, type[ChangeValue]] = {
    ChangeField.MESSAGES: MessagesValue,
    ChangeField.ECHOES: EchoesValue,
    ChangeField.HISTORY: HistoryValue,
    ChangeField.STATE_SYNC: StateSyncValue,
    ChangeField.ACCOUNT_UPDATE: AccountUpdateValue,
    ChangeField.TEMPLATE_STATUS: TemplateStatusValue,
    ChangeField.TEMPLATE_CATEGORY: TemplateCategoryValue,
    ChangeField.USER_PREFERENCES: UserPreferencesValue,
}


@overload
def parse_change(field: Literal["messages"], value: Any) -> MessagesValue: ...
@overload
def parse_change(field: Literal["smb_message_echoes"], value: Any) -> EchoesValue: ...
@overload
def parse_change(field: Literal["history"], value: Any) -> HistoryValue: ...
@overload
def parse_change(field: Literal["smb_app_state_sync"], value: Any) -> StateSyncValue: ...
@overload
def parse_change(field: Literal["account_update"], value: Any) -> AccountUpdateValue: ...
@overload
def parse_change(
    field: Literal["message_template_status_update"], value: Any
) -> TemplateStatusValue: ...
@overload
def parse_change(
    field: Literal["template_category_update"], value: Any
) -> TemplateCategoryValue: ...
@overload
def parse_change(field: Literal["user_preferences"], value: Any) -> UserPreferencesValue: ...
@overload
def parse_change(field: str, value: Any) -> ChangeValue: ...
def parse_change(field: str, value: Any) -> ChangeValue:
    """Parse one change's `value` into the model for its `field`, or raise `PayloadError`."""
    model = _MODELS.get(field)
    if model is None:
        raise UnknownFieldError(field)
    return _validate(model, field, value)


def parse_envelope(body: bytes | str) -> Envelope:
    """Parse a whole webhook body (already signature-checked), or raise `PayloadError`."""
    try:
        return Envelope.model_validate_json(body)
    except ValidationError as exc:
        raise PayloadError("envelope", _describe(exc)) from None


def _validate(model: type[_M], field: str, value: Any) -> _M:
    if not isinstance(value, dict):
        raise PayloadError(field, f"expected an object, got {type(value).__name__}")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise PayloadError(field, _describe(exc)) from None


def _describe(exc: ValidationError, limit: int = 5) -> str:
    # Without input values: they may be customer messages, and this text ends up in logs.
    errors = exc.errors(include_input=False, include_url=False)
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:limit]
    ]
    if len(errors) > limit:
        parts.append(f"... {len(errors) - limit} more")
    return "; ".join(parts)
