"""The Graph API's media calls, mixed into `GraphClient` (ref §8).

- `media_info(id)`: `GET /{media-id}` → a short-lived download URL, MIME type, sha256, size;
- `download(url)`: fetch that URL with the same bearer token, refusing more than `max_bytes`;
- `upload_media(...)`: `POST /{phone_number_id}/media` (multipart) → a media id;
- `media_message(...)`: the body that sends an uploaded file by id (`GraphClient.send_media`).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from baton.types import JSON, PhoneNumberId, WaId, Wamid
from baton.whatsapp._base import WaModel
from baton.whatsapp.errors import GraphApiError, GraphTransportError


class MediaInfo(WaModel):
    """What `GET /{media-id}` answers; `url` lives a few minutes."""

    id: str
    url: str
    mime_type: str | None = None
    sha256: str | None = None
    file_size: int | None = None


class _Uploaded(WaModel):
    id: str


class MediaTooLarge(Exception):
    """The download grew past the allowed size: stopped before holding all of it."""


class MediaCalls:
    """Mixin of `GraphClient` (uses its URL, token source and HTTP client)."""

    _base_url: str
    _token: str | Callable[[PhoneNumberId], str]
    _http: httpx.AsyncClient
    _timeout: httpx.Timeout

    def _bearer(self, phone_number_id: PhoneNumberId) -> dict[str, str]:
        token = self._token(phone_number_id) if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"}

    async def media_info(self, media_id: str, phone_number_id: PhoneNumberId) -> MediaInfo:
        """Where to download a media object now (raises a `GraphError`)."""
        response = await self._call(
            "GET",
            f"{self._base_url}/{media_id}",
            phone_number_id,
            params={"phone_number_id": phone_number_id},
        )
        try:
            return MediaInfo.model_validate_json(response.content)
        except ValueError:
            raise GraphApiError(response.status_code, None, "unreadable media info") from None

    async def download(self, url: str, phone_number_id: PhoneNumberId, *, max_bytes: int) -> bytes:
        """The file behind a media URL; MediaTooLarge past `max_bytes` (raises a `GraphError`)."""
        try:
            async with self._http.stream(
                "GET", url, headers=self._bearer(phone_number_id), timeout=self._timeout
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise GraphApiError.from_response(response.status_code, response.content)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLarge(f"more than {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.RequestError as exc:
            raise GraphTransportError(
                f"{type(exc).__name__} downloading media: {exc}", maybe_delivered=True
            ) from exc

    async def upload_media(
        self, phone_number_id: PhoneNumberId, data: bytes, *, mime_type: str, filename: str
    ) -> str:
        """Upload a file for this number; returns its media id (raises a `GraphError`)."""
        response = await self._call(
            "POST",
            f"{self._base_url}/{phone_number_id}/media",
            phone_number_id,
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, data, mime_type)},
        )
        try:
            return _Uploaded.model_validate_json(response.content).id
        except ValueError:
            raise GraphApiError(response.status_code, None, "unreadable upload response") from None

    async def _call(
        self,
        method: str,
        url: str,
        phone_number_id: PhoneNumberId,
        **kwargs: object,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method,
                url,
                headers=self._bearer(phone_number_id),
                timeout=self._timeout,
                **kwargs,  # type: ignore[arg-type]
            )
        except httpx.RequestError as exc:
            raise GraphTransportError(
                f"{type(exc).__name__} on {method} {url.rsplit('/', 1)[-1]}: {exc}",
                maybe_delivered=method != "GET",
            ) from exc
        if not response.is_success:
            raise GraphApiError.from_response(response.status_code, response.content)
        return response


def media_message(
    to: WaId,
    kind: str,
    media_id: str,
    *,
    caption: str | None = None,
    filename: str | None = None,
    reply_to: Wamid | None = None,
    biz_opaque_callback_data: str | None = None,
) -> JSON:
    """The `/messages` body sending an uploaded file by id (caption where Meta allows one)."""
    content: JSON = {"id": media_id}
    if caption and kind in ("image", "video", "document"):
        content["caption"] = caption
    if filename and kind == "document":
        content["filename"] = filename
    payload: JSON = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": f"+{to.strip().removeprefix('+')}",
        "type": kind,
        kind: content,
    }
    if reply_to is not None:
        payload["context"] = {"message_id": reply_to}
    if biz_opaque_callback_data is not None:
        payload["biz_opaque_callback_data"] = biz_opaque_callback_data
    return payload
