"""The fake Chatwoot's HTTP app: the Application API subset the bridge uses, and `/_fake`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from tests.fakes.chatwoot.control import AGENTS, BRIDGE_USER

JSON = dict[str, Any]


@dataclass
class FakeConfig:
    token: str
    account_id: int
    inbox_id: int
    webhook_url: str  # the inbox's callback URL (without the token)
    secret: str
    signed: bool = True  # recent Chatwoot: HMAC header; else the secret rides in the URL


@dataclass
class FakeState:
    contacts: dict[int, JSON] = field(default_factory=dict)
    conversations: dict[int, JSON] = field(default_factory=dict)
    messages: dict[int, JSON] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(101))
    down: bool = False
    duplicate: bool = False
    hold: bool = False
    held: list[JSON] = field(default_factory=list)
    deliveries: list[JSON] = field(default_factory=list)


class FakeChatwoot:
    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.state = FakeState()
        self._outgoing: asyncio.Queue[JSON] = asyncio.Queue()
        self._clock = 0.0
        self._worker: asyncio.Task[None] | None = None

    # --- webhooks, as Chatwoot sends them ---------------------------------------------------

    def _tick(self) -> float:
        # Strictly increasing `updated_at`, as a Rails timestamp would be.
        self._clock = max(time.time(), self._clock + 0.001)
        return self._clock

    def _conversation_data(self, conv: JSON) -> JSON:
        assignee = next((a for a in AGENTS if a["id"] == conv["assignee_id"]), None)
        contact = self.state.contacts[conv["contact_id"]]
        return {
            "id": conv["id"],
            "account_id": self.config.account_id,
            "inbox_id": conv["inbox_id"],
            "status": conv["status"],
            "snoozed_until": conv["snoozed_until"],
            "custom_attributes": conv["custom_attributes"],
            "updated_at": conv["updated_at"],
            "timestamp": int(conv["updated_at"]),
            "meta": {
                "sender": {"id": contact["id"], "name": contact["name"], "type": "contact"},
                "assignee": (
                    {"id": assignee["id"], "name": assignee["name"], "type": "user"}
                    if assignee
                    else None
                ),
            },
        }

    def emit(self, payload: JSON) -> None:
        self.state.held.append(payload) if self.state.hold else self._outgoing.put_nowait(payload)

    def emit_conversation(self, event: str, conv: JSON, changed: list[JSON]) -> None:
        self.emit({"event": event, **self._conversation_data(conv), "changed_attributes": changed})

    def emit_message(self, message: JSON) -> None:
        conv = self.state.conversations[message["conversation_id"]]
        self.emit(
            {
                "event": "message_created",
                **{k: v for k, v in message.items() if k != "conversation_id"},
                "conversation": self._conversation_data(conv),
                "account": {"id": self.config.account_id, "name": "Fake"},
                "inbox": {"id": conv["inbox_id"], "name": "WhatsApp"},
            }
        )

    async def deliver_forever(self) -> None:
        async with httpx.AsyncClient(timeout=10.0) as http:
            while True:
                payload = await self._outgoing.get()
                copies = 2 if self.state.duplicate else 1
                for _ in range(copies):
                    await self._deliver(http, payload)

    async def _deliver(self, http: httpx.AsyncClient, payload: JSON) -> None:
        body = json.dumps(payload).encode()
        url = self.config.webhook_url
        headers = {"content-type": "application/json"}
        if self.config.signed:
            stamp = str(int(time.time()))
            digest = hmac.new(self.config.secret.encode(), stamp.encode() + b"." + body, "sha256")
            headers["X-Chatwoot-Signature"] = f"sha256={digest.hexdigest()}"
            headers["X-Chatwoot-Timestamp"] = stamp
            headers["X-Chatwoot-Delivery"] = hashlib.sha1(body).hexdigest()
        else:
            url = f"{url}?token={self.config.secret}"
        try:
            response = await http.post(url, content=body, headers=headers)
            status = response.status_code
        except httpx.HTTPError:
            status = 0  # Chatwoot logs it and never retries
        self.state.deliveries.append({"event": payload["event"], "status": status})
        if payload["event"] == "message_created" and status >= 400:
            message = self.state.messages.get(payload["id"])
            if message is not None:  # what Chatwoot does for an API inbox's failed callback
                message["status"] = "failed"

    # --- model changes ----------------------------------------------------------------------

    def set_status(self, conv: JSON, status: str, snoozed_until: int | None = None) -> None:
        if conv["status"] == status:
            return
        previous = conv["status"]
        conv["status"] = status
        conv["snoozed_until"] = snoozed_until if status == "snoozed" else None
        conv["updated_at"] = self._tick()
        self.emit_conversation(
            "conversation_status_changed",
            conv,
            [{"status": {"previous_value": previous, "current_value": status}}],
        )

    def set_assignee(self, conv: JSON, assignee_id: int | None) -> None:
        if conv["assignee_id"] == assignee_id:
            return
        previous = conv["assignee_id"]
        conv["assignee_id"] = assignee_id
        conv["updated_at"] = self._tick()
        self.emit_conversation(
            "conversation_updated",
            conv,
            [{"assignee_id": {"previous_value": previous, "current_value": assignee_id}}],
        )

    def add_message(
        self,
        conv: JSON,
        *,
        content: str,
        message_type: str,
        private: bool,
        sender: JSON | None,
        content_attributes: JSON,
    ) -> JSON:
        message = {
            "id": next(self.state.ids),
            "conversation_id": conv["id"],
            "content": content,
            "message_type": message_type,
            "content_type": "text",
            "content_attributes": content_attributes,
            "private": private,
            "status": "sent",
            "sender": sender,
            "created_at": int(time.time()),
        }
        self.state.messages[message["id"]] = message
        self.emit_message(message)
        # Chatwoot reopens a snoozed or resolved conversation when the contact writes.
        if message_type == "incoming" and conv["status"] in ("snoozed", "resolved"):
            self.set_status(conv, "open")
        return message


def create_app(fake: FakeChatwoot) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    api = APIRouter(prefix="/api/v1")
    cfg = fake.config
    st = fake.state

    def guard(request: Request, account_id: int | None = None) -> None:
        if st.down:
            raise HTTPException(503, "down for maintenance")
        if request.headers.get("api_access_token") != cfg.token:
            raise HTTPException(401, "You need to sign in or sign up before continuing.")
        if account_id is not None and account_id != cfg.account_id:
            raise HTTPException(404, "account not found")

    def conversation(conversation_id: int) -> JSON:
        conv = st.conversations.get(conversation_id)
        if conv is None:
            raise HTTPException(404, "Resource could not be found")
        return conv

    @api.get("/profile")
    async def profile(request: Request) -> JSON:
        guard(request)
        return {**BRIDGE_USER, "type": "user"}

    @api.get("/accounts/{account_id}/agents")
    async def agents(account_id: int, request: Request) -> list[JSON]:
        guard(request, account_id)
        return [{**a, "role": "agent", "confirmed": True} for a in AGENTS]

    @api.get("/accounts/{account_id}/contacts/search")
    async def search(account_id: int, q: str, request: Request) -> JSON:
        guard(request, account_id)
        found = [
            c
            for c in st.contacts.values()
            if q in (c["identifier"] or "") or q in (c["phone_number"] or "") or q in c["name"]
        ]
        return {"meta": {"count": len(found)}, "payload": found}

    @api.post("/accounts/{account_id}/contacts")
    async def create_contact(account_id: int, request: Request) -> JSON:
        guard(request, account_id)
        body = await request.json()
        if "inbox_id" not in body:
            raise HTTPException(422, "inbox_id is required")
        for c in st.contacts.values():
            if body.get("identifier") and c["identifier"] == body["identifier"]:
                raise HTTPException(422, "Identifier has already been taken")
            if body.get("phone_number") and c["phone_number"] == body["phone_number"]:
                raise HTTPException(422, "Phone number has already been taken")
        contact = {
            "id": next(st.ids),
            "name": body.get("name") or "",
            "phone_number": body.get("phone_number"),
            "identifier": body.get("identifier"),
            "email": body.get("email"),
        }
        st.contacts[contact["id"]] = contact
        return {
            "payload": {
                "contact": contact,
                "contact_inbox": {"inbox": {"id": body["inbox_id"]}, "source_id": "src"},
            }
        }

    @api.get("/accounts/{account_id}/contacts/{contact_id}/conversations")
    async def contact_conversations(account_id: int, contact_id: int, request: Request) -> JSON:
        guard(request, account_id)
        found = [
            fake._conversation_data(c)
            for c in st.conversations.values()
            if c["contact_id"] == contact_id
        ]
        return {"payload": found}

    @api.post("/accounts/{account_id}/conversations")
    async def create_conversation(account_id: int, request: Request) -> JSON:
        guard(request, account_id)
        body = await request.json()
        if not body.get("source_id"):
            raise HTTPException(422, "source_id is required")
        if body.get("inbox_id") != cfg.inbox_id or body.get("contact_id") not in st.contacts:
            raise HTTPException(422, "inbox or contact not found")
        conv = {
            "id": next(st.ids),
            "inbox_id": body["inbox_id"],
            "contact_id": body["contact_id"],
            "status": body.get("status", "open"),
            "assignee_id": body.get("assignee_id"),
            "custom_attributes": body.get("custom_attributes") or {},
            "snoozed_until": None,
            "updated_at": fake._tick(),
        }
        st.conversations[conv["id"]] = conv
        fake.emit_conversation("conversation_created", conv, [])
        return fake._conversation_data(conv)

    @api.get("/accounts/{account_id}/conversations/{conversation_id}/messages")
    async def list_messages(account_id: int, conversation_id: int, request: Request) -> JSON:
        guard(request, account_id)
        conversation(conversation_id)
        found = [m for m in st.messages.values() if m["conversation_id"] == conversation_id]
        return {"meta": {}, "payload": found}

    @api.post("/accounts/{account_id}/conversations/{conversation_id}/messages")
    async def create_message(account_id: int, conversation_id: int, request: Request) -> JSON:
        guard(request, account_id)
        conv = conversation(conversation_id)
        body = await request.json()
        if "content" not in body:
            raise HTTPException(422, "content is required")
        message_type = body.get("message_type", "outgoing")
        if message_type not in ("incoming", "outgoing"):
            raise HTTPException(422, "bad message_type")
        sender = (
            {"id": conv["contact_id"], "type": "contact"}
            if message_type == "incoming"
            else {**BRIDGE_USER, "type": "user"}
        )
        return fake.add_message(
            conv,
            content=body["content"],
            message_type=message_type,
            private=bool(body.get("private")),
            sender=sender,
            content_attributes=body.get("content_attributes") or {},
        )

    @api.post("/accounts/{account_id}/conversations/{conversation_id}/toggle_status")
    async def toggle_status(account_id: int, conversation_id: int, request: Request) -> JSON:
        guard(request, account_id)
        conv = conversation(conversation_id)
        body = await request.json()
        status = body.get("status")
        if status not in ("open", "resolved", "pending", "snoozed"):
            raise HTTPException(422, "bad status")
        fake.set_status(conv, status, body.get("snoozed_until"))
        return {
            "meta": {},
            "payload": {
                "success": True,
                "current_status": status,
                "conversation_id": conversation_id,
            },
        }

    @api.post("/accounts/{account_id}/conversations/{conversation_id}/assignments")
    async def assign(account_id: int, conversation_id: int, request: Request) -> JSON:
        guard(request, account_id)
        conv = conversation(conversation_id)
        body = await request.json()
        assignee_id = body.get("assignee_id")
        agent = next((a for a in AGENTS if a["id"] == assignee_id), None)
        if assignee_id is not None and agent is None:
            raise HTTPException(404, "agent not found")
        fake.set_assignee(conv, assignee_id)
        return agent or {}

    app.include_router(api)

    # --- what Chatwoot's agents do in its UI, and the test's knobs ---------------------------

    ctl = APIRouter(prefix="/_fake")

    @ctl.get("/health")
    async def health() -> JSON:
        return {"status": "ok"}

    @ctl.get("/conversations")
    async def conversations(identifier: str) -> list[JSON]:
        contact_ids = {c["id"] for c in st.contacts.values() if c["identifier"] == identifier}
        return [
            {
                **fake._conversation_data(c),
                "messages": [m for m in st.messages.values() if m["conversation_id"] == c["id"]],
            }
            for c in st.conversations.values()
            if c["contact_id"] in contact_ids
        ]

    @ctl.post("/conversations/{conversation_id}/open")
    async def agent_open(conversation_id: int, request: Request) -> JSON:
        conv = conversation(conversation_id)
        agent_id = (await request.json())["agent_id"]
        fake.set_assignee(conv, agent_id)
        fake.set_status(conv, "open")
        return {"ok": True}

    @ctl.post("/conversations/{conversation_id}/reply")
    async def agent_reply(conversation_id: int, request: Request) -> JSON:
        conv = conversation(conversation_id)
        body = await request.json()
        agent = next(a for a in AGENTS if a["id"] == body["agent_id"])
        return fake.add_message(
            conv,
            content=body["content"],
            message_type="outgoing",
            private=bool(body.get("private")),
            sender={**agent, "type": "user"},
            content_attributes={},
        )

    @ctl.post("/conversations/{conversation_id}/status")
    async def agent_status(conversation_id: int, request: Request) -> JSON:
        fake.set_status(conversation(conversation_id), (await request.json())["status"])
        return {"ok": True}

    @ctl.put("/mode")
    async def mode(request: Request) -> JSON:
        body = await request.json()
        for name in ("down", "duplicate", "hold"):
            if name in body:
                setattr(st, name, bool(body[name]))
        return {"down": st.down, "duplicate": st.duplicate, "hold": st.hold}

    @ctl.post("/flush")
    async def flush(request: Request) -> JSON:
        reverse = bool((await request.json()).get("reverse"))
        held, st.held = st.held, []
        for payload in reversed(held) if reverse else held:
            fake._outgoing.put_nowait(payload)
        return {"flushed": len(held)}

    @ctl.get("/deliveries")
    async def deliveries() -> list[JSON]:
        return st.deliveries

    app.include_router(ctl)

    @app.exception_handler(HTTPException)
    async def error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    return app
