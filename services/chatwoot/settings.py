"""The bridge's settings: which numbers go to which Chatwoot inbox, and where callbacks land.

A number is bridged when its `[numbers."<id>".chatwoot]` table is set in the numbers file, or
when it is listed in `BATON_CHATWOOT_NUMBERS` with the `BATON_CHATWOOT_*` inbox below (the
file wins for a number it configures).
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from baton.settings import ChatwootInbox, NumbersConfig
from baton.types import PhoneNumberId


class BridgeSettings(BaseSettings):
    """`BATON_CHATWOOT_*` environment variables."""

    # BATON_CHATWOOT_HOST / _PORT are process settings (baton.settings.Settings).
    model_config = SettingsConfigDict(env_prefix="BATON_CHATWOOT_", extra="ignore", frozen=True)

    numbers: str = ""  # comma-separated phone_number_ids bridged with the inbox below
    url: str | None = None
    account_id: int | None = None
    inbox_id: int | None = None
    access_token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    import_history: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0)
    # A Chatwoot call failing this long holds the event back before the delivery is requeued
    # (the bridge lags behind; nothing is dropped). Keep under RabbitMQ's consumer timeout.
    retry_for_seconds: float = Field(default=600.0, gt=0)
    history_limit: int = Field(default=500, ge=0)  # imported messages posted per conversation

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.numbers.strip() and self.env_inbox() is None:
            raise ValueError(
                "BATON_CHATWOOT_NUMBERS needs BATON_CHATWOOT_URL, _ACCOUNT_ID, _INBOX_ID,"
                " _ACCESS_TOKEN and _WEBHOOK_SECRET"
            )
        return self

    def env_inbox(self) -> ChatwootInbox | None:
        if None in (
            self.url,
            self.account_id,
            self.inbox_id,
            self.access_token,
            self.webhook_secret,
        ):
            return None
        assert self.url and self.account_id and self.inbox_id
        assert self.access_token and self.webhook_secret
        return ChatwootInbox(
            url=self.url,
            account_id=self.account_id,
            inbox_id=self.inbox_id,
            access_token=self.access_token,
            webhook_secret=self.webhook_secret,
            import_history=self.import_history,
        )


def bridged_numbers(
    bridge: BridgeSettings, numbers: NumbersConfig
) -> dict[PhoneNumberId, ChatwootInbox]:
    """Every bridged number and its inbox; empty means the bridge has nothing to do."""
    found: dict[PhoneNumberId, ChatwootInbox] = {}
    inbox = bridge.env_inbox()
    if inbox is not None:
        for pnid in (n.strip() for n in bridge.numbers.split(",")):
            if pnid:
                found[pnid] = inbox
    for pnid, number in numbers.numbers.items():
        if number.chatwoot is not None:
            found[pnid] = number.chatwoot
    return found


def scope_of(inbox: ChatwootInbox) -> str:
    """The store's name for one Chatwoot inbox."""
    return f"{inbox.account_id}:{inbox.inbox_id}"
