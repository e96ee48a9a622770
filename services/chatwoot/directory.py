"""Chatwoot's agents of one account, by id and by e-mail (the Baton agent id of a Chatwoot user)."""

from __future__ import annotations

import time

from services.chatwoot.client import ChatwootClient
from services.chatwoot.sync import TEAM_AGENT

REFRESH_SECONDS = 10.0
UNKNOWN_USER_PREFIX = "chatwoot-user:"


class AgentDirectory:
    """Maps Chatwoot user ids to Baton agent ids (their e-mail) and back, cached."""

    def __init__(self, client: ChatwootClient) -> None:
        self._client = client
        self._emails: dict[int, str] = {}
        self._ids: dict[str, int] = {}
        self._loaded_at = float("-inf")

    async def _refresh(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < REFRESH_SECONDS:
            return
        agents = await self._client.agents()
        self._emails = {
            int(a["id"]): str(a["email"]).lower() for a in agents if a.get("email") and "id" in a
        }
        self._ids = {email: uid for uid, email in self._emails.items()}
        self._loaded_at = time.monotonic()

    async def agent_id(self, user_id: int, email: str | None = None) -> str:
        """The Baton agent id of a Chatwoot user."""
        if email:
            return email.lower()
        if user_id not in self._emails:
            await self._refresh()
        return self._emails.get(user_id, f"{UNKNOWN_USER_PREFIX}{user_id}")

    async def user_id(self, agent_id: str) -> int | None:
        """The Chatwoot user a Baton agent id stands for; None if none does."""
        if agent_id == TEAM_AGENT:
            return None
        if agent_id.startswith(UNKNOWN_USER_PREFIX):
            return int(agent_id.removeprefix(UNKNOWN_USER_PREFIX))
        if agent_id.lower() not in self._ids:
            await self._refresh()
        return self._ids.get(agent_id.lower())

    def is_chatwoot_agent(self, agent_id: str) -> bool:
        """Whether a Baton agent id belongs to Chatwoot (its team, or one of its users)."""
        return (
            agent_id == TEAM_AGENT
            or agent_id.startswith(UNKNOWN_USER_PREFIX)
            or agent_id.lower() in self._ids
        )
