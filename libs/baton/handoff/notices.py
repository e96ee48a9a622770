"""Customer-facing texts Baton sends on its own: default notices per language, bot prefix."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class NoticeKind(StrEnum):
    TAKEOVER = "takeover"  # a human now answers
    BACK_TO_BOT = "back_to_bot"  # the bot answers again
    BUSY = "busy"  # ghost fallback: nobody answered the customer in time


class Language(StrEnum):
    PT_BR = "pt-BR"
    EN = "en"
    ES = "es"


DEFAULT_LANGUAGE = Language.PT_BR

DEFAULT_TEXTS: Mapping[Language, Mapping[NoticeKind, str]] = {
    Language.PT_BR: {
        NoticeKind.TAKEOVER: "Um atendente humano vai continuar esta conversa com você.",
        NoticeKind.BACK_TO_BOT: "Você voltou a falar com o nosso assistente virtual.",
        NoticeKind.BUSY: (
            "Nossos atendentes estão ocupados no momento. "
            "Recebemos a sua mensagem e responderemos em breve."
        ),
    },
    Language.EN: {
        NoticeKind.TAKEOVER: "A human agent will continue this conversation with you.",
        NoticeKind.BACK_TO_BOT: "You are chatting with our virtual assistant again.",
        NoticeKind.BUSY: (
            "Our agents are busy right now. We have received your message and will answer soon."
        ),
    },
    Language.ES: {
        NoticeKind.TAKEOVER: "Un agente humano continuará esta conversación contigo.",
        NoticeKind.BACK_TO_BOT: "Vuelves a hablar con nuestro asistente virtual.",
        NoticeKind.BUSY: (
            "Nuestros agentes están ocupados en este momento. "
            "Recibimos tu mensaje y te responderemos pronto."
        ),
    },
}


def language_from_code(code: str | None) -> Language:
    """Map a per-number language setting ("pt", "pt_BR", "en-US", "es-MX" …) to a shipped one."""
    primary = (code or "").strip().replace("_", "-").split("-")[0].casefold()
    by_primary = {"pt": Language.PT_BR, "en": Language.EN, "es": Language.ES}
    return by_primary.get(primary, DEFAULT_LANGUAGE)


def with_bot_prefix(prefix: str, text: str) -> str:
    """Prefix a bot-authored message so customers know who is talking (idempotent)."""
    if not prefix.strip() or text.startswith(prefix):
        return text
    # A prefix that ends in whitespace (e.g. "*Assistente*\n") chose its own separator.
    separator = "" if prefix[-1].isspace() else " "
    return f"{prefix}{separator}{text}"
