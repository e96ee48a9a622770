"""The simulator's webhook builders produce what Baton's parsers accept, serialised like Meta."""

from __future__ import annotations

import json
from typing import Any

from baton.whatsapp import (
    AccountUpdateValue,
    EchoesValue,
    HistoryValue,
    MessagesValue,
    StateSyncValue,
    parse_change,
    parse_envelope,
    render_text,
    sign,
    verify,
)
from simulator import webhooks as wh

PNID = "900000000000001"
CUSTOMER = "5511999990000"


def round_trip(*changes: dict[str, Any]) -> list[Any]:
    """Serialise like Meta, parse the envelope, then parse every change's value."""
    envelope = parse_envelope(wh.meta_json(wh.envelope(changes)))
    return [parse_change(c.field, c.value) for entry in envelope.entry for c in entry.changes]


def test_meta_json_is_compact_with_lowercase_unicode_escapes() -> None:
    body = wh.meta_json({"text": {"body": "café 😀"}})
    assert body == b'{"text":{"body":"caf\\u00e9 \\ud83d\\ude00"}}'
    assert sign(wh.meta_json({"text": {"body": "café"}}), "test_app_secret") == (
        "sha256=d36eb0f4e8ed7a1458654758c875f8906c154262156b732bbdf52856281cd3fb"  # ref §3 vector
    )


def test_meta_json_can_escape_slashes_without_changing_the_value() -> None:
    body = wh.meta_json({"url": "https://x/y"}, escape_slashes=True)
    assert body == b'{"url":"https:\\/\\/x\\/y"}'
    assert json.loads(body) == {"url": "https://x/y"}


def test_customer_messages_of_every_builder_parse() -> None:
    items = [
        wh.text_message(CUSTOMER, "Olá"),
        wh.media_message(CUSTOMER, "image", caption="foto"),
        wh.media_message(CUSTOMER, "audio", voice=True),
        wh.media_message(CUSTOMER, "document", caption="nota"),
        wh.media_message(CUSTOMER, "video"),
        wh.media_message(CUSTOMER, "sticker"),
        wh.button_reply_message(CUSTOMER, "yes", "Sim"),
        wh.list_reply_message(CUSTOMER, "r1", "Pizza", description="grande"),
        wh.location_message(CUSTOMER, -23.5, -46.6, name="Loja"),
        wh.reaction_message(CUSTOMER, "wamid.OUT", "👍"),
        wh.reaction_message(CUSTOMER, "wamid.OUT", None),
    ]
    [value] = round_trip(wh.messages_change(PNID, items, name="Bia"))
    assert isinstance(value, MessagesValue)
    assert [render_text(m) for m in value.messages] == [
        "Olá",
        "[image] foto",
        "[voice message]",
        "[document: file.pdf] nota",
        "[video]",
        "[sticker]",
        "Sim",
        "Pizza",
        "[location: Loja]",
        "[reaction 👍]",
        "[reaction removed]",
    ]
    [contact] = value.contacts  # one per distinct sender
    assert (contact.wa_id, contact.name) == (CUSTOMER, "Bia")


def test_customer_text_and_status_changes() -> None:
    text, status, failed = round_trip(
        wh.customer_text(PNID, CUSTOMER, "Oi", wamid="wamid.IN_1", timestamp=1767225600),
        wh.status_change(
            PNID, "wamid.OUT_1", "delivered", CUSTOMER, biz_opaque_callback_data="bot"
        ),
        wh.status_change(PNID, "wamid.OUT_2", "failed", CUSTOMER, error_code=131026),
    )
    assert text.messages[0].id == "wamid.IN_1"
    assert text.messages[0].timestamp.timestamp() == 1767225600
    assert status.statuses[0].status == "delivered"
    assert status.statuses[0].biz_opaque_callback_data == "bot"
    assert status.statuses[0].pricing is not None
    assert failed.statuses[0].errors[0].code == 131026


def test_coexistence_changes() -> None:
    thread = [
        wh.history_message(CUSTOMER, "Oi", timestamp=1760000000),
        wh.history_message(wh.DEFAULT_DISPLAY_NUMBER, None, to=CUSTOMER, status="DELIVERED"),
    ]
    echo, chunk, declined, media, sync, removed, partner = round_trip(
        wh.echo_change(PNID, CUSTOMER, "Já te ligo"),
        wh.history_chunk(PNID, {CUSTOMER: thread}, phase=1, chunk_order=2, progress=50),
        wh.history_declined(PNID),
        wh.history_media(PNID, [wh.media_message(CUSTOMER, "image")]),
        wh.state_sync_contact(PNID, CUSTOMER, full_name="Ana Test"),
        wh.state_sync_contact(PNID, CUSTOMER, action="remove"),
        wh.partner_removed(),
    )
    assert isinstance(echo, EchoesValue)
    assert (echo.message_echoes[0].to, render_text(echo.message_echoes[0])) == (
        CUSTOMER,
        "Já te ligo",
    )
    assert isinstance(chunk, HistoryValue)
    assert chunk.history[0].metadata is not None and chunk.history[0].metadata.progress == 50
    received, sent = chunk.history[0].threads[0].messages
    assert received.history_context is not None and sent.type == "media_placeholder"
    assert isinstance(declined, HistoryValue) and declined.declined
    assert isinstance(media, HistoryValue) and media.messages[0].image is not None
    assert isinstance(sync, StateSyncValue)
    assert sync.state_sync[0].contact is not None
    assert sync.state_sync[0].contact.first_name == "Ana"
    assert isinstance(removed, StateSyncValue)
    assert removed.state_sync[0].contact is not None
    assert removed.state_sync[0].contact.full_name is None
    assert isinstance(partner, AccountUpdateValue)
    assert partner.event == "PARTNER_REMOVED"


def test_envelope_carries_waba_id_and_time() -> None:
    body = wh.meta_json(wh.envelope([wh.partner_removed()], waba_id="42", entry_time=1767225600))
    envelope = parse_envelope(body)
    assert (envelope.object, envelope.entry[0].id, envelope.entry[0].time) == (
        "whatsapp_business_account",
        "42",
        1767225600,
    )
    assert verify(body, sign(body, "s"), "s")
