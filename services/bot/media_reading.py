"""What the bot makes of the files in a burst: a voice note's transcript, an image's description.

For each media message of the burst the bot waits (up to `BATON_MEDIA_WAIT_SECONDS`) until its
download settled (and a voice note's transcription, when speech-to-text is configured), then:

- a voice note with a transcript → the transcript is the customer's text;
- an image, with a vision model configured → its caption and a short description;
- anything else (no model for it, the download failed, still downloading) → *unread*: the
  caption, if any, stays as text, and the number's `media_policy` decides what the bot says
  (`media_notice`): never silence.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

import structlog

from baton.blobs import BlobStore
from baton.messages import AskBot, BurstMessage
from baton.store import Store
from baton.store.media_records import MediaRecord, MediaStatus
from baton.whatsapp.message import MEDIA_TYPES
from services.bot import media_metrics as metrics
from services.bot.media_ai import ImageToText, Unreadable
from services.bot.texts import texts_for
from services.bot.types import BotDecision, Handoff, Language, NoReply, Reply

MediaPolicy = Literal["offer", "handoff", "ignore"]

log = structlog.get_logger()

POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Unread:
    """A file the bot could not turn into text, and why (for logs and the agent's summary)."""

    wamid: str
    kind: str
    reason: str


@dataclass(frozen=True)
class Reading:
    request: AskBot  # the burst, media replaced by what was understood of it
    unread: tuple[Unread, ...]


NOUNS: dict[Language, dict[str, str]] = {
    "pt-BR": {
        "audio": "áudio",
        "image": "imagem",
        "video": "vídeo",
        "document": "documento",
        "sticker": "figurinha",
    },
    "en": {
        "audio": "audio",
        "image": "image",
        "video": "video",
        "document": "document",
        "sticker": "sticker",
    },
    "es": {
        "audio": "audio",
        "image": "imagen",
        "video": "video",
        "document": "documento",
        "sticker": "sticker",
    },
}
NOTICE: dict[Language, str] = {
    "pt-BR": (
        "Recebi seu arquivo ({what}), mas não consigo abri-lo por aqui. "
        "Se quiser, uma pessoa da nossa equipe pode ver: é só escrever “atendente”."
    ),
    "en": (
        "I received your file ({what}), but I can't open it here. "
        "If you'd like, a person from our team can look at it: just type “agent”."
    ),
    "es": (
        "Recibí tu archivo ({what}), pero no puedo abrirlo aquí. "
        "Si quieres, una persona de nuestro equipo puede verlo: solo escribe “agente”."
    ),
}
HANDOFF_SUMMARY: dict[Language, str] = {
    "pt-BR": "O cliente enviou um arquivo ({what}) que o bot não consegue abrir.",
    "en": "The customer sent a file ({what}) the bot cannot open.",
    "es": "El cliente envió un archivo ({what}) que el bot no puede abrir.",
}


def _what(unread: tuple[Unread, ...], language: Language) -> str:
    nouns = NOUNS[language]
    return ", ".join(dict.fromkeys(nouns.get(u.kind, u.kind) for u in unread))


def media_notice(unread: tuple[Unread, ...], language: Language) -> str:
    """Received, cannot open, a person can: in the number's language."""
    return NOTICE[language].format(what=_what(unread, language))


def handoff_summary(unread: tuple[Unread, ...], language: Language, captions: str) -> str:
    """The agent's summary when the policy hands such a file off."""
    summary = HANDOFF_SUMMARY[language].format(what=_what(unread, language))
    reasons = "; ".join(dict.fromkeys(u.reason for u in unread))
    label = texts_for(language).summary_reason
    text = f"{summary}\n{label}: {reasons}"
    return f"{text}\n{captions}" if captions else text


def with_notice(
    decision: BotDecision, unread: tuple[Unread, ...], policy: MediaPolicy, language: Language
) -> BotDecision:
    """The bot's decision once unread files are accounted for: a file never gets silence."""
    if not unread or isinstance(decision, Handoff):
        return decision
    notice = media_notice(unread, language)
    if isinstance(decision, NoReply):
        return Reply(text=notice)
    if policy == "offer":
        return Reply(text=f"{notice}\n\n{decision.text}", answered=decision.answered)
    return decision  # "ignore": the bot answered the file's placeholder itself


def settled(record: MediaRecord, *, transcribing: bool) -> bool:
    """Nothing more will happen to this file without someone asking again."""
    if record.status is MediaStatus.PENDING:
        return False
    return not (
        transcribing
        and record.kind == "audio"
        and record.status is MediaStatus.AVAILABLE
        and record.transcript is None
    )


class MediaReader:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        *,
        transcribing: bool,
        describer: ImageToText | None,
        wait_seconds: float,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._transcribing = transcribing
        self._describer = describer
        self._wait = wait_seconds

    async def read(
        self, request: AskBot, language: Language, *, keep_placeholders: bool = False
    ) -> Reading:
        """The burst as text, with what could not be read (its placeholder kept if asked)."""
        media = [m for m in request.messages if m.type in MEDIA_TYPES]
        if not media:
            return Reading(request, ())
        records = await self._settled(request.phone_number_id, [m.wamid for m in media])
        unread: list[Unread] = []
        messages: list[BurstMessage] = []
        for message in request.messages:
            if message.type not in MEDIA_TYPES:
                messages.append(message)
                continue
            record = records.get(message.wamid)
            text, why = await self._text_of(message, record, language)
            if why is not None:
                unread.append(Unread(message.wamid, message.type, why))
                if keep_placeholders:
                    text = message.text
            messages.append(message.model_copy(update={"text": text}))
        log.info("bot.media_read", files=len(media), unread=len(unread))
        return Reading(request.model_copy(update={"messages": tuple(messages)}), tuple(unread))

    async def _settled(self, phone_number_id: str, wamids: list[str]) -> dict[str, MediaRecord]:
        deadline = time.monotonic() + self._wait
        while True:
            records = await self._store.media_by_wamids(phone_number_id, wamids)
            done = len(records) == len(wamids) and all(
                settled(r, transcribing=self._transcribing) for r in records.values()
            )
            if done or time.monotonic() >= deadline:
                return records
            await asyncio.sleep(POLL_SECONDS)

    async def _text_of(
        self, message: BurstMessage, record: MediaRecord | None, language: Language
    ) -> tuple[str, str | None]:
        """(text for the bot, None) or (what remains of it, why the file stays unread)."""
        caption = (record.caption if record else None) or ""
        if record is None or record.status is MediaStatus.PENDING:
            return caption, "still downloading"
        if record.status is MediaStatus.UNAVAILABLE:
            return caption, f"media unavailable: {record.reason or 'unknown reason'}"
        if record.kind == "audio":
            if record.transcript:
                return record.transcript, None
            return caption, "could not transcribe" if self._transcribing else "no transcription"
        if record.kind == "image" and self._describer is not None and record.blob_key:
            description = record.description or await self._describe(record, language)
            if description:
                label = f"[image: {description}]"
                return (f"{caption}\n{label}" if caption else label), None
            return caption, "could not describe the image"
        return caption, f"no model reads {record.kind} files"

    async def _describe(self, record: MediaRecord, language: Language) -> str | None:
        assert self._describer is not None and record.blob_key is not None
        try:
            image = await self._blobs.get(record.blob_key)
            text = await self._describer.describe(
                image,
                mime_type=record.mime_type or "image/jpeg",
                language=texts_for(language).language_name,
            )
        except Unreadable as exc:
            log.warning("bot.image_unreadable", reason=str(exc))
            metrics.UNDERSTOOD.labels(how="description", outcome="failed").inc()
            return None
        metrics.UNDERSTOOD.labels(how="description", outcome="ok").inc()
        await self._store.media_described(record.id, description=text)
        return text
