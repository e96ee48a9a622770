"""Drive a simulator running in another process through its `/_sim/` endpoints."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import TypeAdapter

from simulator.app import MediaAdded
from simulator.config import ConfigUpdate, NumberConfig
from simulator.faults import Fault
from simulator.records import (
    MediaFetch,
    MediaUpload,
    Outcome,
    ReadReceipt,
    SentMessage,
    Stats,
    SyncRequest,
    WebhookDelivery,
)

_SENT = TypeAdapter(list[SentMessage])
_READS = TypeAdapter(list[ReadReceipt])
_SYNCS = TypeAdapter(list[SyncRequest])
_DELIVERIES = TypeAdapter(list[WebhookDelivery])
_UPLOADS = TypeAdapter(list[MediaUpload])
_FETCHES = TypeAdapter(list[MediaFetch])


class SimulatorClient:
    """`root_url` is the simulator's address without the Graph version, e.g. :8090."""

    def __init__(self, root_url: str, *, timeout: float = 5.0) -> None:
        self._http = httpx.AsyncClient(base_url=f"{root_url.rstrip('/')}/_sim", timeout=timeout)

    async def health(self) -> bool:
        try:
            response = await self._http.get("/health")
        except httpx.TransportError:
            return False
        return response.status_code == 200

    async def reset(self) -> None:
        (await self._http.post("/reset")).raise_for_status()

    async def register(self, number: NumberConfig) -> None:
        (await self._http.post("/numbers", json=number.model_dump())).raise_for_status()

    async def inject(self, fault: Fault) -> None:
        (await self._http.post("/faults", json=fault.model_dump(mode="json"))).raise_for_status()

    async def configure(self, update: ConfigUpdate) -> None:
        body = update.model_dump(mode="json", exclude_unset=True)
        (await self._http.put("/config", json=body)).raise_for_status()

    async def messages(
        self,
        phone_number_id: str | None = None,
        to: str | None = None,
        outcome: Outcome | None = None,
        after_seq: int = 0,
    ) -> list[SentMessage]:
        params: dict[str, Any] = {"after_seq": after_seq}
        if phone_number_id is not None:
            params["phone_number_id"] = phone_number_id
        if to is not None:
            params["to"] = to
        if outcome is not None:
            params["outcome"] = outcome.value
        return _SENT.validate_python(await self._get("/messages", params))

    async def reads(self) -> list[ReadReceipt]:
        return _READS.validate_python(await self._get("/reads"))

    async def sync_requests(self, phone_number_id: str | None = None) -> list[SyncRequest]:
        params = {"phone_number_id": phone_number_id} if phone_number_id else {}
        return _SYNCS.validate_python(await self._get("/sync_requests", params))

    async def webhook_deliveries(self) -> list[WebhookDelivery]:
        return _DELIVERIES.validate_python(await self._get("/webhooks"))

    async def add_media(
        self, content: bytes, mime_type: str, *, filename: str = "file"
    ) -> MediaAdded:
        """Serve `content` as a customer's file; name the answer's id in a media webhook."""
        response = await self._http.post("/media", files={"file": (filename, content, mime_type)})
        response.raise_for_status()
        return MediaAdded.model_validate(response.json())

    async def media_content(self, media_id: str) -> bytes:
        response = await self._http.get(f"/media/{media_id}/content")
        response.raise_for_status()
        return response.content

    async def uploads(self) -> list[MediaUpload]:
        return _UPLOADS.validate_python(await self._get("/uploads"))

    async def media_fetches(self) -> list[MediaFetch]:
        return _FETCHES.validate_python(await self._get("/media_fetches"))

    async def stats(self) -> Stats:
        return Stats.model_validate(await self._get("/stats"))

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = await self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    async def aclose(self) -> None:
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
