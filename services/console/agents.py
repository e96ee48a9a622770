"""Who may call the console: agents and external bots, each with a bearer token.

Configured by `BATON_AGENT_TOKENS` / `BATON_BOT_TOKENS` ("alice:token,bob:token") and/or a TOML
file named by `BATON_AGENTS_FILE`:

    [agents.alice]
    token = "a long random string"
    numbers = ["900000000000001"]   # optional: only these business numbers (default: all)
    admin = false                   # optional: may transfer/resolve what others hold
    max_conversations = 5           # optional: capacity for auto-assignment and transfers

    [bots.helpdesk]
    token = "another long random string"

With nothing configured a local stack gets one development agent (`dev`, token
`baton-dev-agent-token`); production refuses to start instead, and refuses that token.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from baton.settings import Settings
from baton.types import PhoneNumberId

DEV_AGENT_ID = "dev"
DEV_AGENT_TOKEN = "baton-dev-agent-token"
MIN_PRODUCTION_TOKEN_LENGTH = 16
# Words the API gives a meaning in `?assignee=`: no principal may be called that.
RESERVED_IDS = frozenset({"me", "none"})
DEFAULT_MAX_CONVERSATIONS = 5  # conversations an agent holds at most (issue 12)


class AgentsConfigError(ValueError):
    """The agents configuration is unusable (the console refuses to start)."""


class Kind(StrEnum):
    AGENT = "agent"  # a person: takes over, releases, sends as `human`
    BOT = "bot"  # an external bot: sends as `bot` under an expected epoch, nothing else


class Principal(BaseModel):
    """An authenticated caller."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Kind
    numbers: frozenset[PhoneNumberId] | None = None  # None → every business number
    # Workflow (issue 12): an admin may transfer or resolve what others hold; auto-assignment
    # (and transfers, takeovers) never give an agent more than `max_conversations`.
    admin: bool = False
    max_conversations: int = Field(default=DEFAULT_MAX_CONVERSATIONS, ge=1)

    def may_see(self, phone_number_id: PhoneNumberId) -> bool:
        return self.numbers is None or phone_number_id in self.numbers


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token: SecretStr | None = None  # None: a desk-only agent (signs in with a password)
    numbers: tuple[PhoneNumberId, ...] | None = Field(default=None, min_length=1)
    admin: bool = False
    max_conversations: int = Field(default=DEFAULT_MAX_CONVERSATIONS, ge=1)
    # The desk (services/console/accounts.py) seeds an account from these.
    password_hash: str | None = None
    name: str | None = None

    @field_validator("numbers", mode="before")
    @classmethod
    def _numbers_as_strings(cls, value: object) -> object:
        if isinstance(value, list):
            return [str(item) for item in value]
        return value


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Directory:
    """Principals by token; looks tokens up by their SHA-256 so no comparison leaks timing."""

    def __init__(self, entries: Iterable[tuple[Principal, SecretStr]]) -> None:
        self._by_digest: dict[bytes, Principal] = {}
        self._by_id: dict[str, Principal] = {}
        for principal, token in entries:
            check_id(principal.id)
            if principal.id in self._by_id:
                raise AgentsConfigError(f"principal {principal.id!r} is configured twice")
            if not token.get_secret_value():
                raise AgentsConfigError(f"principal {principal.id!r} has an empty token")
            digest = _digest(token.get_secret_value())
            if digest in self._by_digest:
                raise AgentsConfigError(f"principal {principal.id!r} reuses another's token")
            self._by_digest[digest] = principal
            self._by_id[principal.id] = principal

    def authenticate(self, token: str) -> Principal | None:
        """The principal holding this token, if any."""
        return self._by_digest.get(_digest(token))

    def __len__(self) -> int:
        return len(self._by_id)

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def get(self, principal_id: str) -> Principal | None:
        """The principal configured under this id, if any."""
        return self._by_id.get(principal_id)


def check_id(principal_id: str) -> None:
    """AgentsConfigError unless `principal_id` is usable as an agent's or bot's id."""
    if not principal_id or principal_id != principal_id.strip():
        raise AgentsConfigError(f"bad principal id {principal_id!r}")
    if any(ch in principal_id for ch in ":,") or principal_id.casefold() in RESERVED_IDS:
        raise AgentsConfigError(f"principal id {principal_id!r} is reserved or has ':' or ','")


def parse_pairs(raw: str, kind: Kind) -> list[tuple[Principal, SecretStr]]:
    """`"alice:token,bob:token"` → principals of `kind` (tokens may contain ':')."""
    found = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        principal_id, sep, token = item.partition(":")
        if not sep or not token:
            raise AgentsConfigError(f"expected id:token, got an entry for {principal_id!r}")
        found.append((Principal(id=principal_id.strip(), kind=kind), SecretStr(token)))
    return found


def parse_file(path: Path) -> list[tuple[Principal, SecretStr]]:
    """Principals from the TOML agents file (`[agents.<id>]`, `[bots.<id>]`)."""
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AgentsConfigError(f"cannot read the agents file {path}: {exc}") from exc
    unknown = raw.keys() - {"agents", "bots"}
    if unknown:
        raise AgentsConfigError(f"unknown tables in {path}: {sorted(unknown)}")
    found = []
    for table, kind in (("agents", Kind.AGENT), ("bots", Kind.BOT)):
        section = raw.get(table, {})
        if not isinstance(section, Mapping):
            raise AgentsConfigError(f"[{table}] in {path} must be a table")
        for principal_id, values in section.items():
            try:
                entry = _Entry.model_validate(values)
            except ValueError as exc:
                raise AgentsConfigError(f"{table}.{principal_id} in {path}: {exc}") from exc
            numbers = frozenset(entry.numbers) if entry.numbers is not None else None
            if entry.token is None:
                if entry.password_hash is None or kind is not Kind.AGENT:
                    raise AgentsConfigError(f"{table}.{principal_id} in {path} needs a token")
                continue  # seeded as a desk account, not a bearer principal
            principal = Principal(
                id=principal_id,
                kind=kind,
                numbers=numbers,
                admin=entry.admin,
                max_conversations=entry.max_conversations,
            )
            found.append((principal, entry.token))
    return found


def _has_desk_passwords(path: Path | None) -> bool:
    """Whether the agents file names desk accounts (`password_hash`): agents enough to start."""
    if path is None:
        return False
    with path.open("rb") as fh:
        section = tomllib.load(fh).get("agents", {})
    return any(isinstance(v, Mapping) and "password_hash" in v for v in section.values())


def load_directory(settings: Settings) -> Directory:
    """Every configured principal; raises AgentsConfigError if the configuration is unusable."""
    entries: list[tuple[Principal, SecretStr]] = []
    if settings.agent_tokens is not None:
        entries += parse_pairs(settings.agent_tokens.get_secret_value(), Kind.AGENT)
    if settings.bot_tokens is not None:
        entries += parse_pairs(settings.bot_tokens.get_secret_value(), Kind.BOT)
    if settings.agents_file is not None:
        entries += parse_file(settings.agents_file)
    production = settings.environment == "production"
    if not entries:
        if not production:
            entries = [(Principal(id=DEV_AGENT_ID, kind=Kind.AGENT), SecretStr(DEV_AGENT_TOKEN))]
        elif not _has_desk_passwords(settings.agents_file):
            raise AgentsConfigError(
                "production needs agents: set BATON_AGENT_TOKENS or BATON_AGENTS_FILE"
            )
    if production:
        for principal, token in entries:
            secret = token.get_secret_value()
            if secret == DEV_AGENT_TOKEN or len(secret) < MIN_PRODUCTION_TOKEN_LENGTH:
                raise AgentsConfigError(
                    f"production refuses the token of {principal.id!r}: use a random string"
                    f" of at least {MIN_PRODUCTION_TOKEN_LENGTH} characters"
                )
    return Directory(entries)
