"""The simulator's HTTP face: Graph API routes as Meta answers them, plus `/_sim/` controls."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile as FormFile

from simulator.config import ConfigUpdate, NumberConfig, SimConfig
from simulator.faults import Fault
from simulator.media import StoredMedia
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
from simulator.runtime import SimRuntime
from simulator.state import Reply


def create_app(runtime: SimRuntime) -> FastAPI:
    """Build the ASGI app around one runtime."""
    app = FastAPI(
        title="WhatsApp Cloud API simulator", docs_url=None, redoc_url=None, openapi_url=None
    )
    # Registered first: "/_sim/messages" would otherwise match "/{version}/{phone_number_id}".
    app.include_router(_control_routes(runtime))

    @app.get("/_media/{media_id}")
    async def download(media_id: str, request: Request, hash: str | None = None) -> Response:
        downlink = await runtime.uplink()
        reply, content = runtime.state.download_media(
            media_id, hash, request.headers.get("authorization")
        )
        await runtime.hold(reply.delay + runtime.config.latency + downlink)
        if content is None:
            return JSONResponse(reply.body, reply.http_status)
        media = runtime.state.media[media_id]
        return Response(content, media_type=media.mime_type)

    @app.post("/{version}/{phone_number_id}/media")
    async def upload(phone_number_id: str, request: Request) -> Response:
        async with request.form() as form:
            file = form.get("file")
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            content = await file.read() if isinstance(file, FormFile) else None
            filename = file.filename if isinstance(file, FormFile) else None
        downlink = await runtime.uplink()
        reply = runtime.state.upload_media(
            phone_number_id, request.headers.get("authorization"), fields, content, filename
        )
        return await _answer(runtime, reply, downlink)

    @app.post("/{version}/{phone_number_id}/messages")
    async def messages(phone_number_id: str, request: Request) -> Response:
        body = await _json(request)
        downlink = await runtime.uplink()  # counted (throughput window) only once it arrives
        reply = runtime.state.post_messages(
            phone_number_id, request.headers.get("authorization"), body
        )
        if reply.accepted_send is not None:
            runtime.after_accepted_send(reply.accepted_send)
        return await _answer(runtime, reply, downlink)

    @app.post("/{version}/{phone_number_id}/smb_app_data")
    async def smb_app_data(phone_number_id: str, request: Request) -> Response:
        body = await _json(request)
        downlink = await runtime.uplink()
        reply = runtime.state.post_smb_app_data(
            phone_number_id, request.headers.get("authorization"), body
        )
        return await _answer(runtime, reply, downlink)

    @app.get("/{version}/{phone_number_id}")
    async def phone_number(phone_number_id: str, request: Request) -> Response:
        # The same path serves `GET /{media-id}` (ref §8): ids never collide with numbers here.
        root = str(request.base_url).rstrip("/")
        media = runtime.state.get_media_info(
            phone_number_id, request.headers.get("authorization"), root
        )
        if media is not None:
            return await _answer(runtime, media)
        # The onboarding check of ref §5: GET /<PHONE_NUMBER_ID>?fields=is_on_biz_app,...
        number = runtime.state.numbers.get(phone_number_id)
        if number is None:
            return JSONResponse({"error": {"code": 100, "message": "Unknown object"}}, 400)
        return JSONResponse(
            {
                "id": number.phone_number_id,
                "display_phone_number": number.display_phone_number,
                "is_on_biz_app": number.coexistence,
                "platform_type": "CLOUD_API",
                "throughput": {"level": "STANDARD"},
            }
        )

    return app


def _control_routes(runtime: SimRuntime) -> APIRouter:
    control = APIRouter(prefix="/_sim")
    state = runtime.state

    @control.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @control.post("/reset")
    async def reset() -> dict[str, bool]:
        runtime.reset()
        return {"reset": True}

    @control.get("/config")
    async def get_config() -> SimConfig:
        return runtime.config

    @control.put("/config")
    async def put_config(update: ConfigUpdate) -> SimConfig:
        return runtime.update_config(update)

    @control.get("/numbers")
    async def numbers() -> list[NumberConfig]:
        return list(state.numbers.values())

    @control.post("/numbers")
    async def register(number: NumberConfig) -> NumberConfig:
        state.register(number)
        return number

    @control.get("/faults")
    async def pending_faults() -> list[Fault]:
        return state.pending_faults()

    @control.post("/faults")
    async def inject(fault: Fault) -> Fault:
        state.inject(fault)
        return fault

    @control.delete("/faults")
    async def clear_faults() -> dict[str, bool]:
        state.clear_faults()
        return {"cleared": True}

    @control.get("/messages")
    async def sent(
        phone_number_id: str | None = None,
        to: str | None = None,
        outcome: Outcome | None = None,
        after_seq: Annotated[int, Query(ge=0)] = 0,
    ) -> list[SentMessage]:
        return [m for m in state.messages(phone_number_id, to, outcome) if m.seq > after_seq]

    @control.get("/reads")
    async def reads() -> list[ReadReceipt]:
        return state.reads

    @control.get("/sync_requests")
    async def sync_requests(phone_number_id: str | None = None) -> list[SyncRequest]:
        if phone_number_id is None:
            return state.syncs
        return [s for s in state.syncs if s.phone_number_id == phone_number_id]

    @control.get("/webhooks")
    async def deliveries() -> list[WebhookDelivery]:
        return state.deliveries

    @control.post("/media")
    async def add_media(file: UploadFile) -> MediaAdded:
        """A file as a customer's message would carry it: name its id in a webhook."""
        content = await file.read()
        await file.close()
        media = state.add_media(
            content, file.content_type or "application/octet-stream", filename=file.filename
        )
        return MediaAdded.of(media)

    @control.get("/media/{media_id}/content")
    async def media_content(media_id: str) -> Response:
        media = state.media.get(media_id)
        if media is None:
            raise HTTPException(404, "no such media")
        return Response(media.content, media_type=media.mime_type)

    @control.get("/uploads")
    async def uploads() -> list[MediaUpload]:
        return state.uploads

    @control.get("/media_fetches")
    async def media_fetches() -> list[MediaFetch]:
        return state.media_fetches

    @control.get("/stats")
    async def stats() -> Stats:
        return state.stats()

    return control


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        return None  # the state answers Meta's "(#100)" for a body that is not an object


async def _answer(runtime: SimRuntime, reply: Reply, downlink: float = 0.0) -> Response:
    await runtime.hold(reply.delay + runtime.config.latency + downlink)
    if isinstance(reply.body, str):
        return HTMLResponse(reply.body, reply.http_status)
    return JSONResponse(reply.body, reply.http_status)


class MediaAdded(BaseModel):
    """A customer's file the simulator now serves: put these in the webhook's media object."""

    id: str
    mime_type: str
    sha256: str  # base64, as webhooks carry it
    file_size: int

    @classmethod
    def of(cls, media: StoredMedia) -> MediaAdded:
        return cls(
            id=media.id,
            mime_type=media.mime_type,
            sha256=media.sha256_b64,
            file_size=len(media.content),
        )
