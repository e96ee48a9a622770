"""Drives a running fake Chatwoot through its `/_fake` endpoints (what its agents do)."""

from __future__ import annotations

from typing import Any

import httpx

BRIDGE_USER = {"id": 1, "name": "Baton bridge", "email": "bridge@baton.test"}
AGENTS = [
    BRIDGE_USER,
    {"id": 7, "name": "Ana", "email": "ana@example.com"},
    {"id": 8, "name": "Bruno", "email": "bruno@example.com"},
]


class ChatwootControl:
    def __init__(self, root_url: str) -> None:
        self._http = httpx.AsyncClient(base_url=f"{root_url.rstrip('/')}/_fake", timeout=10.0)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self._http.post(path, json=body or {})
        response.raise_for_status()
        return response.json()

    async def conversation_of(self, identifier: str) -> dict[str, Any] | None:
        """The contact's one conversation, with its messages (oldest first), or None."""
        response = await self._http.get("/conversations", params={"identifier": identifier})
        response.raise_for_status()
        found = response.json()
        return found[0] if found else None

    async def agent_open(self, conversation_id: int, agent_id: int) -> None:
        """An agent self-assigns and opens the conversation."""
        await self._post(f"/conversations/{conversation_id}/open", {"agent_id": agent_id})

    async def agent_reply(
        self, conversation_id: int, agent_id: int, content: str, *, private: bool = False
    ) -> int:
        body = {"agent_id": agent_id, "content": content, "private": private}
        return int((await self._post(f"/conversations/{conversation_id}/reply", body))["id"])

    async def agent_status(self, conversation_id: int, status: str) -> None:
        await self._post(f"/conversations/{conversation_id}/status", {"status": status})

    async def set_mode(self, **mode: bool) -> None:
        """down (API answers 503), duplicate (each callback twice), hold (keep callbacks)."""
        (await self._http.put("/mode", json=mode)).raise_for_status()

    async def flush(self, *, reverse: bool = False) -> None:
        """Deliver the held callbacks, in order or reversed."""
        await self._post("/flush", {"reverse": reverse})

    async def deliveries(self) -> list[dict[str, Any]]:
        response = await self._http.get("/deliveries")
        response.raise_for_status()
        return list(response.json())
