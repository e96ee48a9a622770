"""render_text: every message type becomes one short line for the bot and agents."""

from __future__ import annotations

from typing import Any

import pytest

from baton.whatsapp import MessageContent, WaMessage, render_text


def message(type_: str, content: Any = None) -> WaMessage:
    item: dict[str, Any] = {
        "from": "5511999990000",
        "id": "wamid.X",
        "timestamp": "1",
        "type": type_,
    }
    if content is not None:
        item[type_] = content
    return WaMessage.model_validate(item)


MEDIA = {"id": "m", "mime_type": "x/y", "sha256": "s"}


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (message("text", {"body": "Olá, tudo bem?"}), "Olá, tudo bem?"),
        (message("image", MEDIA), "[image]"),
        (message("image", {**MEDIA, "caption": "meu recibo"}), "[image] meu recibo"),
        (message("video", {**MEDIA, "caption": "olha"}), "[video] olha"),
        (message("audio", {**MEDIA, "voice": True}), "[voice message]"),
        (message("audio", {**MEDIA, "voice": False}), "[audio]"),
        (message("document", {**MEDIA, "filename": "nf.pdf"}), "[document: nf.pdf]"),
        (
            message("document", {**MEDIA, "filename": "nf.pdf", "caption": "nota"}),
            "[document: nf.pdf] nota",
        ),
        (message("sticker", {**MEDIA, "animated": True}), "[sticker]"),
        (
            message(
                "location", {"latitude": 1.5, "longitude": 2.25, "name": "Loja", "address": "Rua A"}
            ),
            "[location: Loja, Rua A]",
        ),
        (
            message("location", {"latitude": -23.5, "longitude": -46.25}),
            "[location: -23.50000,-46.25000]",
        ),
        (
            message(
                "contacts", [{"name": {"formatted_name": "Bia"}, "phones": [{"phone": "+55 11 9"}]}]
            ),
            "[contact: Bia +55 11 9]",
        ),
        (
            message(
                "interactive", {"type": "button_reply", "button_reply": {"id": "y", "title": "Sim"}}
            ),
            "Sim",
        ),
        (
            message(
                "interactive", {"type": "list_reply", "list_reply": {"id": "p", "title": "Pizza"}}
            ),
            "Pizza",
        ),
        (
            message("interactive", {"type": "nfm_reply", "nfm_reply": {"response_json": "{}"}}),
            "[form submitted]",
        ),
        (message("button", {"payload": "STOP", "text": "Parar promoções"}), "Parar promoções"),
        (message("reaction", {"message_id": "w", "emoji": "❤️"}), "[reaction ❤️]"),
        (message("reaction", {"message_id": "w"}), "[reaction removed]"),
        (
            message(
                "edit",
                {"original_message_id": "w", "message": {"type": "text", "text": {"body": "novo"}}},
            ),
            "[edited] novo",
        ),
        (message("revoke", {"original_message_id": "w"}), "[message deleted]"),
        (message("unsupported", {"type": "poll"}), "[unsupported message]"),
        (message("media_placeholder"), "[media]"),
        (message("order", {"catalog_id": "c"}), "[order]"),
    ],
)
def test_render_text(msg: MessageContent, expected: str) -> None:
    assert render_text(msg) == expected
