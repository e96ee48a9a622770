"""Chatwoot's Application API (`/api/v1/accounts/{account_id}/…`, header `api_access_token`).

Only what the bridge uses, parsed at the boundary. Errors split in two: `ChatwootUnavailable`
(connection, timeout, 5xx, 429: try again later) and `ChatwootRejected` (any other 4xx: the
same request will never work).
"""

from __future__ import annotations

from typing import Any

import httpx

from baton import tracing
from baton.settings import ChatwootInbox
from baton.types import JSON


class ChatwootError(Exception):
    """A Chatwoot call did not succeed."""


class ChatwootUnavailable(ChatwootError):
    """Chatwoot could not be reached or failed on its side; the call may be retried."""

    def __init__(self, message: str, *, ambiguous: bool) -> None:
        super().__init__(message)
        # True when Chatwoot may have done it anyway (timeout, 5xx after the request was sent).
        self.ambiguous = ambiguous


class ChatwootRejected(ChatwootError):
    """Chatwoot refused the request (4xx other than 429): retrying cannot help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail[:200]}")
        self.status = status


class ChatwootClient:
    """One Chatwoot account through one access token."""

    def __init__(
        self,
        inbox: ChatwootInbox,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.inbox_id = inbox.inbox_id
        self._http = httpx.AsyncClient(
            base_url=f"{inbox.url.rstrip('/')}/api/v1",
            headers={"api_access_token": inbox.access_token.get_secret_value()},
            timeout=timeout,
            transport=transport or tracing.http_transport("chatwoot"),
        )
        self._account = f"/accounts/{inbox.account_id}"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, *, json: JSON | None = None, params: JSON | None = None
    ) -> Any:
        try:
            response = await self._http.request(method, path, json=json, params=params)
        except httpx.ConnectError as exc:
            raise ChatwootUnavailable(f"cannot connect: {exc!r}", ambiguous=False) from exc
        except httpx.TransportError as exc:
            raise ChatwootUnavailable(f"{type(exc).__name__}: {exc}", ambiguous=True) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ChatwootUnavailable(
                f"HTTP {response.status_code}", ambiguous=response.status_code >= 500
            )
        if response.status_code >= 400:
            raise ChatwootRejected(response.status_code, response.text)
        return response.json() if response.content else {}

    async def profile_id(self) -> int:
        """The id of the user (or bot) the access token belongs to."""
        body = await self._call("GET", "/profile")
        return int(body["id"])

    async def agents(self) -> list[JSON]:
        """The account's agents: id, name, email."""
        body = await self._call("GET", f"{self._account}/agents")
        return [a for a in body if isinstance(a, dict)] if isinstance(body, list) else []

    async def search_contacts(self, query: str) -> list[JSON]:
        body = await self._call("GET", f"{self._account}/contacts/search", params={"q": query})
        return list(body.get("payload") or [])

    async def create_contact(self, *, name: str, phone_number: str, identifier: str) -> int:
        body = await self._call(
            "POST",
            f"{self._account}/contacts",
            json={
                "inbox_id": self.inbox_id,
                "name": name,
                "phone_number": phone_number,
                "identifier": identifier,
            },
        )
        payload = body.get("payload", body)
        contact = payload.get("contact", payload)
        return int(contact["id"])

    async def contact_conversations(self, contact_id: int) -> list[JSON]:
        body = await self._call("GET", f"{self._account}/contacts/{contact_id}/conversations")
        return list(body.get("payload") or [])

    async def create_conversation(
        self, *, contact_id: int, source_id: str, status: str, custom_attributes: JSON
    ) -> int:
        body = await self._call(
            "POST",
            f"{self._account}/conversations",
            json={
                "source_id": source_id,
                "inbox_id": self.inbox_id,
                "contact_id": contact_id,
                "status": status,
                "custom_attributes": custom_attributes,
            },
        )
        return int(body["id"])

    async def create_message(
        self,
        conversation_id: int,
        *,
        content: str,
        message_type: str,
        private: bool = False,
        content_attributes: JSON | None = None,
    ) -> int:
        body = await self._call(
            "POST",
            f"{self._account}/conversations/{conversation_id}/messages",
            json={
                "content": content,
                "message_type": message_type,
                "private": private,
                "content_type": "text",
                "content_attributes": content_attributes or {},
            },
        )
        return int(body["id"])

    async def messages(self, conversation_id: int) -> list[JSON]:
        body = await self._call("GET", f"{self._account}/conversations/{conversation_id}/messages")
        return list(body.get("payload") or [])

    async def toggle_status(
        self, conversation_id: int, status: str, *, snoozed_until: int | None = None
    ) -> None:
        payload: JSON = {"status": status}
        if snoozed_until is not None:
            payload["snoozed_until"] = snoozed_until
        await self._call(
            "POST", f"{self._account}/conversations/{conversation_id}/toggle_status", json=payload
        )

    async def assign(self, conversation_id: int, assignee_id: int | None) -> None:
        """Assign to an agent; None unassigns."""
        await self._call(
            "POST",
            f"{self._account}/conversations/{conversation_id}/assignments",
            json={"assignee_id": assignee_id},
        )
