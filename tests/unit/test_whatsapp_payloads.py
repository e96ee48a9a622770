"""Webhook payload models: every documented shape parses, malformed ones fail clearly."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from baton.whatsapp import (
    HISTORY_DECLINED_CODE,
    AccountUpdateValue,
    EchoesValue,
    HistoryValue,
    MessagesValue,
    MessageType,
    PayloadError,
    StateSyncValue,
    StatusKind,
    UnknownFieldError,
    parse_change,
    parse_envelope,
)

PNID = "900000000000001"
METADATA = {"display_phone_number": "15550001111", "phone_number_id": PNID}
CUSTOMER = "5215512345678"
JAN_1_2026 = datetime(2026, 1, 1, tzinfo=UTC)

# The two examples of ref §2 and §5, verbatim.
REF_MESSAGES_EXAMPLE = r"""
{"object":"whatsapp_business_account","entry":[{"id":"800000000000001","changes":[
 {"field":"messages","value":{"messaging_product":"whatsapp",
  "metadata":{"display_phone_number":"15550001111","phone_number_id":"900000000000001"},
  "contacts":[{"profile":{"name":"Ana Test"},"wa_id":"5215512345678"}],
  "messages":[{"from":"5215512345678","id":"wamid.IN_0001","timestamp":"1767225600","type":"text",
    "text":{"body":"Sí, a las 5"},"context":{"from":"15550001111","id":"wamid.OUT_0042"}}]}},
 {"field":"messages","value":{"messaging_product":"whatsapp",
  "metadata":{"display_phone_number":"15550001111","phone_number_id":"900000000000001"},
  "statuses":[{"id":"wamid.OUT_0043","status":"failed","timestamp":"1767225610","recipient_id":"5215512345678",
    "errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message",
      "error_data":{"details":"More than 24 hours have passed since the recipient last replied to the sender number."},
      "href":"/documentation/business-messaging/whatsapp/support/error-codes"}]}]}}]}]}
"""
REF_COEXISTENCE_EXAMPLE = r"""
{"object":"whatsapp_business_account","entry":[{"id":"800000000000001","changes":[
 {"field":"smb_message_echoes","value":{"messaging_product":"whatsapp",
  "metadata":{"display_phone_number":"15550001111","phone_number_id":"900000000000001"},
  "message_echoes":[{"from":"15550001111","to":"5215512345678","id":"wamid.ECHO_01","timestamp":"1767225700",
    "type":"text","text":{"body":"Te llamo en 10 min"}}]}},
 {"field":"history","value":{"messaging_product":"whatsapp",
  "metadata":{"display_phone_number":"15550001111","phone_number_id":"900000000000001"},
  "history":[{"metadata":{"phase":1,"chunk_order":3,"progress":40},
   "threads":[{"id":"5215512345678","messages":[
    {"from":"5215512345678","id":"wamid.H_01","timestamp":"1760000000","type":"text","text":{"body":"Hola"},"history_context":{"status":"READ"}},
    {"from":"15550001111","to":"5215512345678","id":"wamid.H_02","timestamp":"1760000060","type":"media_placeholder","history_context":{"status":"DELIVERED"}}]}]}]}},
 {"field":"history","value":{"messaging_product":"whatsapp",
  "metadata":{"display_phone_number":"15550001111","phone_number_id":"900000000000001"},
  "history":[{"errors":[{"code":2593109,"title":"History sync is turned off by the business from the WhatsApp Business App",
    "message":"History sync is turned off by the business from the WhatsApp Business App",
    "error_data":{"details":"History sharing is turned off by the business"}}]}]}},
 {"field":"smb_app_state_sync","value":{"messaging_product":"whatsapp",
  "metadata":{"display_phone_number":"15550001111","phone_number_id":"900000000000001"},
  "state_sync":[{"type":"contact","contact":{"full_name":"Ana Test","first_name":"Ana","phone_number":"5215512345678"},
    "action":"add","metadata":{"timestamp":"1767225800"}}]}}]}]}
"""


def inbound(message: dict[str, Any]) -> MessagesValue:
    """Parse a `messages` change holding one inbound message with the usual keys filled in."""
    item = {"from": CUSTOMER, "id": "wamid.IN_1", "timestamp": "1767225600", **message}
    value = {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "contacts": [{"profile": {"name": "Ana Test"}, "wa_id": CUSTOMER}],
        "messages": [item],
    }
    return parse_change("messages", value)


def changes_of(raw: str) -> list[tuple[str, dict[str, Any]]]:
    envelope = parse_envelope(raw.encode())
    return [(c.field, c.value) for entry in envelope.entry for c in entry.changes]


# --- the reference examples -------------------------------------------------------------


def test_reference_messages_example() -> None:
    (field1, text_value), (field2, status_value) = changes_of(REF_MESSAGES_EXAMPLE)

    messages = parse_change(field1, text_value)
    assert isinstance(messages, MessagesValue)
    assert messages.metadata.phone_number_id == PNID
    [message] = messages.messages
    assert (message.id, message.from_, message.type) == ("wamid.IN_0001", CUSTOMER, "text")
    assert message.text is not None and message.text.body == "Sí, a las 5"
    assert message.timestamp == JAN_1_2026
    assert message.context is not None
    assert (message.context.from_, message.context.id) == ("15550001111", "wamid.OUT_0042")
    contact = messages.contact_for(CUSTOMER)
    assert contact is not None and contact.name == "Ana Test"

    statuses = parse_change(field2, status_value)
    assert isinstance(statuses, MessagesValue)
    [status] = statuses.statuses
    assert status.status is StatusKind.FAILED
    assert status.recipient_id == CUSTOMER
    [error] = status.errors
    assert error.code == 131047
    assert error.details is not None and error.details.startswith("More than 24 hours")


def test_reference_coexistence_example() -> None:
    parsed = [parse_change(field, value) for field, value in changes_of(REF_COEXISTENCE_EXAMPLE)]
    echoes, chunk, declined, sync = parsed

    assert isinstance(echoes, EchoesValue)
    [echo] = echoes.message_echoes
    assert (echo.from_, echo.to, echo.id) == ("15550001111", CUSTOMER, "wamid.ECHO_01")
    assert echo.text is not None and echo.text.body == "Te llamo en 10 min"

    assert isinstance(chunk, HistoryValue)
    assert not chunk.declined
    [history] = chunk.history
    assert history.metadata is not None
    assert (history.metadata.phase, history.metadata.chunk_order) == (1, 3)
    assert history.metadata.progress == 40
    [thread] = history.threads
    assert thread.id == CUSTOMER
    received, sent = thread.messages
    assert received.history_context is not None and received.history_context.status == "READ"
    assert received.to is None
    assert sent.type == MessageType.MEDIA_PLACEHOLDER and sent.to == CUSTOMER
    assert sent.history_context is not None and sent.history_context.status == "DELIVERED"

    assert isinstance(declined, HistoryValue)
    assert declined.declined
    assert declined.history[0].errors[0].code == HISTORY_DECLINED_CODE

    assert isinstance(sync, StateSyncValue)
    [item] = sync.state_sync
    assert (item.type, item.action) == ("contact", "add")
    assert item.contact is not None and item.contact.full_name == "Ana Test"
    assert item.contact.phone_number == CUSTOMER
    assert item.metadata is not None
    assert item.metadata.timestamp == datetime.fromtimestamp(1767225800, UTC)


# --- every inbound message type ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("image", {"caption": "recibo"}),
        ("video", {}),
        ("audio", {"voice": True}),
        ("document", {"filename": "nota.pdf", "caption": "a nota"}),
        ("sticker", {"animated": False}),
    ],
)
def test_media_messages(kind: str, extra: dict[str, Any]) -> None:
    media = {"id": "1234", "mime_type": "x/y", "sha256": "abc", **extra}
    [message] = inbound({"type": kind, kind: media}).messages
    assert message.media is not None
    assert message.media == getattr(message, kind)
    assert message.media.id == "1234"
    for key, value in extra.items():
        assert getattr(message.media, key) == value


def test_media_url_is_kept_when_meta_sends_it() -> None:
    media = {"id": "1", "mime_type": "image/jpeg", "sha256": "x", "url": "https://lookaside/1"}
    [message] = inbound({"type": "image", "image": media}).messages
    assert message.image is not None and message.image.url == "https://lookaside/1"


def test_location_message() -> None:
    location = {"latitude": -23.55, "longitude": -46.63, "name": "Loja", "address": "Av. Paulista"}
    [message] = inbound({"type": "location", "location": location}).messages
    assert message.location is not None
    assert (message.location.latitude, message.location.name) == (-23.55, "Loja")


def test_contacts_message_with_missing_parts() -> None:
    cards = [
        {
            "name": {"formatted_name": "Bia Souza", "first_name": "Bia"},
            "phones": [{"phone": "+55 11 98888-7777", "wa_id": "5511988887777", "type": "CELL"}],
            "emails": [{"email": "bia@example.com", "type": "WORK"}],
            "org": {"company": "ACME"},
        },
        {"name": {"formatted_name": "Só Nome"}},
    ]
    [message] = inbound({"type": "contacts", "contacts": cards}).messages
    assert message.contacts is not None
    first, second = message.contacts
    assert first.phones[0].wa_id == "5511988887777"
    assert first.org is not None and first.org.company == "ACME"
    assert second.phones == () and second.emails == ()


def test_interactive_replies() -> None:
    button = {"type": "button_reply", "button_reply": {"id": "yes", "title": "Sim"}}
    row = {"type": "list_reply", "list_reply": {"id": "r1", "title": "Pizza", "description": "G"}}
    flow = {
        "type": "nfm_reply",
        "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{}"},
    }
    parsed = [
        inbound({"type": "interactive", "interactive": i}).messages[0] for i in (button, row, flow)
    ]
    assert parsed[0].interactive is not None and parsed[0].interactive.button_reply is not None
    assert parsed[0].interactive.button_reply.id == "yes"
    assert parsed[1].interactive is not None and parsed[1].interactive.list_reply is not None
    assert parsed[1].interactive.list_reply.description == "G"
    assert parsed[2].interactive is not None and parsed[2].interactive.nfm_reply is not None
    assert parsed[2].interactive.nfm_reply.response_json == "{}"


def test_template_button_tap() -> None:
    [message] = inbound(
        {
            "type": "button",
            "button": {"payload": "STOP", "text": "Parar"},
            "context": {"from": "15550001111", "id": "wamid.TEMPLATE"},
        }
    ).messages
    assert message.button is not None and message.button.payload == "STOP"
    assert message.context is not None and message.context.id == "wamid.TEMPLATE"


@pytest.mark.parametrize(
    ("reaction", "removed"), [({"emoji": "👍"}, False), ({}, True), ({"emoji": ""}, True)]
)
def test_reaction_and_its_removal(reaction: dict[str, str], removed: bool) -> None:
    body = {"message_id": "wamid.OUT_1", **reaction}
    [message] = inbound({"type": "reaction", "reaction": body}).messages
    assert message.reaction is not None and message.reaction.removed is removed


def test_edit_carries_the_new_content() -> None:
    edit = {
        "original_message_id": "wamid.IN_0",
        "message": {"type": "text", "text": {"body": "corrigido"}},
    }
    [message] = inbound({"type": "edit", "edit": edit}).messages
    assert message.edit is not None
    assert message.edit.original_message_id == "wamid.IN_0"
    assert message.edit.message.text is not None and message.edit.message.text.body == "corrigido"


def test_revoke() -> None:
    [message] = inbound(
        {"type": "revoke", "revoke": {"original_message_id": "wamid.IN_0"}}
    ).messages
    assert message.revoke is not None and message.revoke.original_message_id == "wamid.IN_0"


def test_unsupported_with_coexistence_first_contact_error() -> None:
    error = {
        "code": 131060,
        "title": "Message unavailable",
        "message": "Message unavailable",
        "error_data": {"details": "Check the WhatsApp Business App"},
    }
    [message] = inbound(
        {"type": "unsupported", "unsupported": {"type": "edit"}, "errors": [error]}
    ).messages
    assert message.unsupported is not None and message.unsupported.type == "edit"
    assert message.errors[0].code == 131060


def test_unknown_type_is_tolerated_and_kept_raw() -> None:
    order = {"catalog_id": "c1", "product_items": [{"product_retailer_id": "p1", "quantity": 2}]}
    [message] = inbound({"type": "order", "order": order}).messages
    assert message.type == "order"
    assert message.raw["order"] == order


def test_referral_forward_and_business_scoped_ids() -> None:
    referral = {"source_type": "ad", "source_id": "ad1", "headline": "Promo", "ctwa_clid": "clid"}
    [message] = inbound(
        {
            "type": "text",
            "text": {"body": "Quero a promo"},
            "referral": referral,
            "context": {"forwarded": True},
            "from_user_id": "BR.1349",
        }
    ).messages
    assert message.referral is not None and message.referral.ctwa_clid == "clid"
    assert message.context is not None and message.context.forwarded
    assert message.from_user_id == "BR.1349"


# --- statuses and system errors ---------------------------------------------------------


def test_sent_status_with_pricing_conversation_and_opaque_data() -> None:
    status = {
        "id": "wamid.OUT_1",
        "status": "sent",
        "timestamp": "1767225600",
        "recipient_id": CUSTOMER,
        "biz_opaque_callback_data": "bot:42",
        "pricing": {
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "service",
        },
        "conversation": {
            "id": "c1",
            "expiration_timestamp": "1767312000",
            "origin": {"type": "free_entry_point"},
        },
    }
    value = parse_change("messages", {"metadata": METADATA, "statuses": [status]})
    [parsed] = value.statuses
    assert parsed.status == "sent" and parsed.status is StatusKind.SENT
    assert parsed.biz_opaque_callback_data == "bot:42"
    assert parsed.pricing is not None and parsed.pricing.billable is False
    assert parsed.conversation is not None and parsed.conversation.origin is not None
    assert parsed.conversation.expiration_timestamp == datetime(2026, 1, 2, tzinfo=UTC)


def test_unknown_status_stays_a_plain_string() -> None:
    status = {"id": "w", "status": "deleted", "timestamp": "1", "recipient_id": CUSTOMER}
    [parsed] = parse_change("messages", {"metadata": METADATA, "statuses": [status]}).statuses
    assert parsed.status == "deleted"
    assert not isinstance(parsed.status, StatusKind)


def test_value_level_errors() -> None:
    error = {
        "code": 130429,
        "title": "Rate limit hit",
        "message": "(#130429) Rate limit hit",
        "error_data": {"details": "Cloud API message throughput has been reached."},
    }
    value = parse_change("messages", {"metadata": METADATA, "errors": [error]})
    assert value.errors[0].code == 130429
    assert value.messages == () and value.statuses == ()


def test_messages_and_statuses_may_co_occur() -> None:
    status = {
        "id": "wamid.OUT_1",
        "status": "read",
        "timestamp": "1767225600",
        "recipient_id": CUSTOMER,
    }
    item = {
        "from": CUSTOMER,
        "id": "wamid.IN_1",
        "timestamp": "1767225600",
        "type": "text",
        "text": {"body": "oi"},
    }
    value = parse_change(
        "messages", {"metadata": METADATA, "messages": [item], "statuses": [status]}
    )
    assert len(value.messages) == 1 and len(value.statuses) == 1


# --- history media, state sync removal, account update -----------------------------------


def test_history_media_form() -> None:
    media = {
        "from": CUSTOMER,
        "id": "wamid.H_03",
        "timestamp": "1760000100",
        "type": "image",
        "image": {"id": "m1", "mime_type": "image/jpeg", "sha256": "s"},
    }
    value = parse_change("history", {"metadata": METADATA, "messages": [media]})
    assert value.history == ()
    assert value.messages[0].image is not None and value.messages[0].image.id == "m1"


def test_state_sync_remove_has_no_names() -> None:
    item = {
        "type": "contact",
        "contact": {"phone_number": CUSTOMER},
        "action": "remove",
        "metadata": {"timestamp": "1767225800"},
    }
    [parsed] = parse_change(
        "smb_app_state_sync", {"metadata": METADATA, "state_sync": [item]}
    ).state_sync
    assert parsed.action == "remove"
    assert parsed.contact is not None and parsed.contact.full_name is None


def test_account_update_partner_removed() -> None:
    value = {
        "phone_number": "15550001111",
        "event": "PARTNER_REMOVED",
        "disconnection_info": {"reason": "PRIMARY_INACTIVITY", "initiated_by": "SYSTEM"},
    }
    parsed = parse_change("account_update", value)
    assert isinstance(parsed, AccountUpdateValue)
    assert parsed.event == "PARTNER_REMOVED"
    assert parsed.disconnection_info is not None
    assert parsed.disconnection_info.reason == "PRIMARY_INACTIVITY"


# --- general properties -----------------------------------------------------------------


def test_extra_fields_are_ignored_and_models_are_frozen() -> None:
    value = inbound({"type": "text", "text": {"body": "oi", "new_meta_key": 1}, "brand_new": {}})
    message = value.messages[0]
    with pytest.raises(ValidationError):
        message.id = "changed"  # type: ignore[misc]


def test_raw_is_the_received_object_and_not_dumped() -> None:
    item = {
        "from": CUSTOMER,
        "id": "wamid.IN_1",
        "timestamp": "1767225600",
        "type": "text",
        "text": {"body": "oi"},
        "future_key": [1, 2],
    }
    message = parse_change("messages", {"metadata": METADATA, "messages": [item]}).messages[0]
    assert message.raw is item
    assert "raw" not in message.model_dump()


def test_timestamps_are_aware_utc() -> None:
    message = inbound({"type": "text", "text": {"body": "oi"}}).messages[0]
    assert message.timestamp.tzinfo is not None
    assert message.timestamp.utcoffset() is not None and message.timestamp == JAN_1_2026


def test_unknown_field_has_its_own_error() -> None:
    with pytest.raises(UnknownFieldError) as caught:
        parse_change("phone_number_quality_update", {"event": "FLAGGED"})
    assert isinstance(caught.value, PayloadError)
    assert caught.value.field == "phone_number_quality_update"


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("messages", {"messages": []}, "metadata"),
        ("messages", {"metadata": METADATA, "messages": {"not": "a list"}}, "messages"),
        (
            "messages",
            {"metadata": METADATA, "messages": [{"type": "text", "text": {"body": "x"}}]},
            "messages.0.id",
        ),
        (
            "messages",
            {
                "metadata": METADATA,
                "messages": [
                    {
                        "from": CUSTOMER,
                        "id": "w",
                        "timestamp": "yesterday",
                        "type": "text",
                        "text": {"body": "x"},
                    }
                ],
            },
            "messages.0.timestamp",
        ),
        (
            "messages",
            {
                "metadata": METADATA,
                "messages": [
                    {
                        "from": CUSTOMER,
                        "id": "w",
                        "timestamp": "99999999999999999999",
                        "type": "text",
                        "text": {"body": "x"},
                    }
                ],
            },
            "messages.0.timestamp",
        ),
        (
            "messages",
            {
                "metadata": METADATA,
                "messages": [{"from": CUSTOMER, "id": "w", "timestamp": "1", "type": "text"}],
            },
            "no 'text' object",
        ),
        (
            "history",
            {"metadata": METADATA, "history": [{"metadata": {"phase": "early"}}]},
            "history.0.metadata.phase",
        ),
        ("account_update", {"phone_number": "1"}, "event"),
        ("messages", ["not", "an", "object"], "expected an object"),
    ],
)
def test_malformed_values_raise_payload_error(field: str, value: Any, where: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_change(field, value)
    assert where in str(caught.value)
    assert caught.value.field == field


def test_payload_error_does_not_echo_customer_content() -> None:
    secret_text = "meu cartão é 4111 1111 1111 1111"
    bad = {
        "metadata": METADATA,
        "messages": [
            {
                "from": CUSTOMER,
                "id": "w",
                "timestamp": "soon",
                "type": "text",
                "text": {"body": secret_text},
            }
        ],
    }
    with pytest.raises(PayloadError) as caught:
        parse_change("messages", bad)
    assert "4111" not in str(caught.value) and "soon" not in str(caught.value)


def test_parse_envelope_rejects_non_json_and_wrong_shapes() -> None:
    for body in (b"{", b'{"object":"whatsapp_business_account","entry":{"id":1}}', b"[]"):
        with pytest.raises(PayloadError):
            parse_envelope(body)


def test_a_large_history_chunk_parses_quickly() -> None:
    # 5,000 messages is a big chunk. The bound is ~50x what this takes on a laptop: it only
    # catches accidental quadratic work, not ordinary machine slowness.
    messages = [
        {
            "from": CUSTOMER if i % 2 else "15550001111",
            "id": f"wamid.H_{i}",
            "timestamp": str(1760000000 + i),
            "type": "text",
            "text": {"body": f"mensagem {i}"},
            "history_context": {"status": "READ"},
        }
        for i in range(5000)
    ]
    value = {
        "metadata": METADATA,
        "history": [
            {
                "metadata": {"phase": 1, "chunk_order": 1, "progress": 10},
                "threads": [{"id": CUSTOMER, "messages": messages}],
            }
        ],
    }
    raw = json.loads(json.dumps(value))
    started = time.perf_counter()
    parsed = parse_change("history", raw)
    elapsed = time.perf_counter() - started
    assert len(parsed.history[0].threads[0].messages) == 5000
    assert elapsed < 5.0


def test_phone_numbers_are_normalised_to_digits() -> None:
    value = {
        "metadata": {"display_phone_number": "+15550001111", "phone_number_id": PNID},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": f"+{CUSTOMER}"}],
        "messages": [
            {
                "from": f"+{CUSTOMER}",
                "id": "w",
                "timestamp": "1",
                "type": "text",
                "text": {"body": "x"},
            }
        ],
    }
    parsed = parse_change("messages", value)
    assert parsed.metadata.display_phone_number == "15550001111"
    assert parsed.messages[0].from_ == CUSTOMER
    assert parsed.contact_for(CUSTOMER) is not None
