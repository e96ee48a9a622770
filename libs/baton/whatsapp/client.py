"""Async client for the few Graph API calls Baton makes: send text, mark read, request syncs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Literal, Self, TypeAlias, TypeVar

import httpx
from pydantic import ValidationError

from baton import tracing
from baton.settings import Settings
from baton.types import JSON, PhoneNumberId, WaId, Wamid
from baton.whatsapp._base import WaModel
from baton.whatsapp._media_client import MediaCalls, media_message
from baton.whatsapp.errors import GraphApiError, GraphTransportError

SyncType: TypeAlias = Literal["smb_app_state_sync", "history"]
TokenSource: TypeAlias = str | Callable[[PhoneNumberId], str]
_R = TypeVar("_R", bound=WaModel)

# These fail before a single byte of the request is written, so Meta cannot have seen it.
_NEVER_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


class SendResult(WaModel):
    """Meta accepted the message (not delivered yet: statuses webhooks follow)."""

    wamid: Wamid
    wa_id: WaId


class _SentContact(WaModel):
    input: str
    wa_id: WaId


class _SentMessage(WaModel):
    id: Wamid


class _SendResponse(WaModel):
    contacts: tuple[_SentContact, ...]
    messages: tuple[_SentMessage, ...]


class _SyncResponse(WaModel):
    request_id: str


def recipient(to: str) -> str:
    """The `to` Meta expects: `+` and the country code, so no country code gets prepended."""
    digits = to.strip().removeprefix("+")
    return f"+{digits}"


class GraphClient(MediaCalls):
    """Graph API client; `access_token` is one token or a function of the phone_number_id."""

    def __init__(
        self,
        base_url: str,
        access_token: TokenSource,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = access_token
        self._timeout = httpx.Timeout(timeout)
        self._owns_client = client is None
        self._http = (
            client
            if client is not None
            else httpx.AsyncClient(timeout=self._timeout, transport=tracing.http_transport("graph"))
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, client: httpx.AsyncClient | None = None) -> Self:
        """The configured client: each number's own token when it has one, else the default."""
        numbers = settings.numbers()
        default = settings.access_token.get_secret_value()

        def token(phone_number_id: PhoneNumberId) -> str:
            own = numbers.get(phone_number_id).access_token
            return own.get_secret_value() if own is not None else default

        return cls(
            settings.graph_api_url, token, timeout=settings.graph_timeout_seconds, client=client
        )

    async def send_text(
        self,
        phone_number_id: PhoneNumberId,
        to: WaId,
        body: str,
        *,
        reply_to: Wamid | None = None,
        biz_opaque_callback_data: str | None = None,
        preview_url: bool = False,
    ) -> SendResult:
        """Send a free-form text (inside the 24 h window); raise a `GraphError` on failure."""
        payload: JSON = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": recipient(to),
            "type": "text",
            "text": {"preview_url": preview_url, "body": body},
        }
        if reply_to is not None:
            payload["context"] = {"message_id": reply_to}
        if biz_opaque_callback_data is not None:
            payload["biz_opaque_callback_data"] = biz_opaque_callback_data
        status, content = await self._post(phone_number_id, "messages", payload)
        response = _parse_success(_SendResponse, status, content)
        if not response.messages or not response.contacts:
            raise GraphApiError(status, None, "send response without a message id")
        return SendResult(wamid=response.messages[0].id, wa_id=response.contacts[0].wa_id)

    async def send_media(
        self,
        phone_number_id: PhoneNumberId,
        to: WaId,
        kind: str,
        media_id: str,
        *,
        caption: str | None = None,
        filename: str | None = None,
        reply_to: Wamid | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """Send an uploaded file by its media id (media, issue 18); raise a `GraphError`."""
        payload = media_message(
            to,
            kind,
            media_id,
            caption=caption,
            filename=filename,
            reply_to=reply_to,
            biz_opaque_callback_data=biz_opaque_callback_data,
        )
        status, content = await self._post(phone_number_id, "messages", payload)
        response = _parse_success(_SendResponse, status, content)
        if not response.messages or not response.contacts:
            raise GraphApiError(status, None, "send response without a message id")
        return SendResult(wamid=response.messages[0].id, wa_id=response.contacts[0].wa_id)

    async def send_template(
        self,
        phone_number_id: PhoneNumberId,
        to: WaId,
        name: str,
        language: str,
        parameters: Sequence[str] = (),
        *,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """Send an approved template (allowed outside the 24 h window); raise a `GraphError`."""
        template: JSON = {"name": name, "language": {"code": language}}
        if parameters:
            template["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in parameters]}
            ]
        payload: JSON = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": recipient(to),
            "type": "template",
            "template": template,
        }
        if biz_opaque_callback_data is not None:
            payload["biz_opaque_callback_data"] = biz_opaque_callback_data
        status, content = await self._post(phone_number_id, "messages", payload)
        response = _parse_success(_SendResponse, status, content)
        if not response.messages or not response.contacts:
            raise GraphApiError(status, None, "send response without a message id")
        return SendResult(wamid=response.messages[0].id, wa_id=response.contacts[0].wa_id)

    async def mark_read(
        self, phone_number_id: PhoneNumberId, wamid: Wamid, *, typing: bool = False
    ) -> None:
        """Mark an inbound message (and the ones before it) read; optionally show typing."""
        payload: JSON = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
        if typing:
            payload["typing_indicator"] = {"type": "text"}
        await self._post(phone_number_id, "messages", payload)

    async def request_sync(self, phone_number_id: PhoneNumberId, sync_type: SyncType) -> str:
        """Ask a Coexistence number for its contacts or history; returns Meta's request_id.

        Each sync type may be requested once per onboarding: on `GraphTransportError` with
        `maybe_delivered`, the request may already have been consumed.
        """
        payload: JSON = {"messaging_product": "whatsapp", "sync_type": sync_type}
        status, content = await self._post(phone_number_id, "smb_app_data", payload)
        return _parse_success(_SyncResponse, status, content).request_id

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _post(
        self, phone_number_id: PhoneNumberId, edge: str, payload: JSON
    ) -> tuple[int, bytes]:
        token = self._token(phone_number_id) if callable(self._token) else self._token
        url = f"{self._base_url}/{phone_number_id}/{edge}"
        try:
            response = await self._http.post(
                url,
                json=payload,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self._timeout,
            )
        except httpx.RequestError as exc:
            raise GraphTransportError(
                f"{type(exc).__name__} on POST {edge}: {exc}",
                maybe_delivered=not isinstance(exc, _NEVER_SENT),
            ) from exc
        if not response.is_success:
            raise GraphApiError.from_response(response.status_code, response.content)
        return response.status_code, response.content


def _parse_success(model: type[_R], status: int, content: bytes) -> _R:
    try:
        return model.model_validate_json(content)
    except ValidationError:
        # Meta said yes in a shape we cannot read. Classified permanent: a retry could repeat
        # whatever Meta already did.
        raise GraphApiError(status, None, f"unreadable {model.__name__} response") from None
