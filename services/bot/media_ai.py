"""Understanding files: speech-to-text for voice notes, and a vision model for images.

- `Transcriber`: an OpenAI-compatible `POST {BATON_STT_BASE_URL}/audio/transcriptions`
  (multipart `file` + `model`) answering `{"text": ...}` (OpenAI, Groq, a local
  faster-whisper server, …).
- `Describer`: Chat Completions at `BATON_LLM_BASE_URL` with `BATON_VISION_MODEL`, the image sent
  inline as a data URL, asked for one or two sentences.

Each is one bounded call: a failure leaves the file unread, and the bot says so (never silence).
"""

from __future__ import annotations

import base64
from typing import Protocol, Self

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from baton import tracing
from baton.settings import Settings

log = structlog.get_logger()

DESCRIBE_PROMPT = (
    "Describe this image a customer sent to a business on WhatsApp in one or two short "
    "sentences, in {language}: what it shows and any text, numbers or codes visible in it. "
    "Do not guess beyond what is visible."
)


class Unreadable(Exception):
    """The model could not turn the file into text."""


class SpeechToText(Protocol):
    async def transcribe(self, audio: bytes, *, mime_type: str, filename: str) -> str: ...


class ImageToText(Protocol):
    async def describe(self, image: bytes, *, mime_type: str, language: str) -> str: ...


class _Transcription(BaseModel):
    text: str


class _Message(BaseModel):
    content: str | None = None


class _Choice(BaseModel):
    message: _Message


class _Completion(BaseModel):
    choices: list[_Choice]


class Transcriber:
    """`SpeechToText` over an OpenAI-compatible transcription endpoint."""

    def __init__(
        self, base_url: str, *, model: str, api_key: str | None, timeout_seconds: float
    ) -> None:
        self._url = base_url.rstrip("/") + "/audio/transcriptions"
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            timeout=timeout_seconds, transport=tracing.http_transport("llm")
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self | None:
        """None when BATON_STT_BASE_URL is unset."""
        if not settings.stt_base_url:
            return None
        key = settings.stt_api_key or settings.llm_api_key
        return cls(
            settings.stt_base_url,
            model=settings.stt_model,
            api_key=key.get_secret_value() if key else None,
            timeout_seconds=settings.stt_timeout_seconds,
        )

    async def transcribe(self, audio: bytes, *, mime_type: str, filename: str) -> str:
        try:
            response = await self._http.post(
                self._url,
                headers=self._headers,
                data={"model": self._model},
                files={"file": (filename, audio, mime_type)},
            )
        except httpx.HTTPError as exc:
            raise Unreadable(f"transcription failed: {type(exc).__name__}") from exc
        if not response.is_success:
            raise Unreadable(f"transcription failed: HTTP {response.status_code}")
        try:
            return _Transcription.model_validate_json(response.content).text.strip()
        except ValidationError as exc:
            raise Unreadable("transcription failed: unreadable answer") from exc

    async def aclose(self) -> None:
        await self._http.aclose()


class Describer:
    """`ImageToText` through a vision-capable Chat Completions model."""

    def __init__(
        self, base_url: str, *, model: str, api_key: str | None, timeout_seconds: float
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            timeout=timeout_seconds, transport=tracing.http_transport("llm")
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self | None:
        """None unless both BATON_LLM_BASE_URL and BATON_VISION_MODEL are set."""
        if not settings.llm_base_url or not settings.vision_model:
            return None
        key = settings.llm_api_key
        return cls(
            settings.llm_base_url,
            model=settings.vision_model,
            api_key=key.get_secret_value() if key else None,
            timeout_seconds=settings.llm_timeout_seconds,
        )

    async def describe(self, image: bytes, *, mime_type: str, language: str) -> str:
        data_url = f"data:{mime_type};base64,{base64.b64encode(image).decode()}"
        body = {
            "model": self._model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": DESCRIBE_PROMPT.format(language=language)},
                        {"type": "image_url", "image_url": {"url": data_url}},
                    ],
                }
            ],
        }
        try:
            response = await self._http.post(self._url, headers=self._headers, json=body)
        except httpx.HTTPError as exc:
            raise Unreadable(f"description failed: {type(exc).__name__}") from exc
        if not response.is_success:
            raise Unreadable(f"description failed: HTTP {response.status_code}")
        try:
            completion = _Completion.model_validate_json(response.content)
        except ValidationError as exc:
            raise Unreadable("description failed: unreadable answer") from exc
        text = (completion.choices[0].message.content or "").strip() if completion.choices else ""
        if not text:
            raise Unreadable("description failed: empty answer")
        return text

    async def aclose(self) -> None:
        await self._http.aclose()
