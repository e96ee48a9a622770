"""The bridged inboxes at run time: per number, its Chatwoot client, agents and scope."""

from __future__ import annotations

from dataclasses import dataclass

from baton.settings import ChatwootInbox
from baton.types import PhoneNumberId
from services.chatwoot.client import ChatwootClient
from services.chatwoot.directory import AgentDirectory
from services.chatwoot.settings import scope_of


@dataclass
class Inbox:
    """One Chatwoot API inbox a business number is mirrored into."""

    config: ChatwootInbox
    client: ChatwootClient
    agents: AgentDirectory
    profile_id: int | None = None  # the bridge's own Chatwoot user (its posts are not agents')

    @property
    def scope(self) -> str:
        return scope_of(self.config)


class Inboxes:
    """Every bridged number's inbox; numbers sharing one inbox share one client."""

    def __init__(self, configs: dict[PhoneNumberId, ChatwootInbox], *, timeout: float) -> None:
        shared: dict[str, Inbox] = {}
        self._by_number: dict[PhoneNumberId, Inbox] = {}
        for pnid, config in configs.items():
            key = f"{config.url}|{scope_of(config)}"
            if key not in shared:
                client = ChatwootClient(config, timeout=timeout)
                shared[key] = Inbox(config, client, AgentDirectory(client))
            self._by_number[pnid] = shared[key]
        self._all = list(shared.values())

    def __bool__(self) -> bool:
        return bool(self._by_number)

    def get(self, phone_number_id: PhoneNumberId) -> Inbox | None:
        return self._by_number.get(phone_number_id)

    async def aclose(self) -> None:
        for inbox in self._all:
            await inbox.client.aclose()
