"""Agents' desk accounts: argon2 password hashes in the store, managed from a command line.

The logic the `agents` command runs (`python -m services.console agents …`), importable so other
front ends (a `baton` command) can call the same functions. The local stack gets the development
agent `dev` / `baton-dev-password`; production refuses to start while any account has it.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from baton.settings import Settings
from baton.store import Store
from baton.store.account_records import AgentAccount
from baton.types import PhoneNumberId
from services.console.agents import AgentsConfigError, check_id

log = structlog.get_logger()

DEV_AGENT_ID = "dev"
DEV_PASSWORD = "baton-dev-password"
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 defaults
# Verified when the agent does not exist, so an unknown id costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("no such agent: constant-time refusal")


class AccountError(ValueError):
    """A refused account change (its message is for the operator)."""


def hash_password(password: str, *, environment: str = "local") -> str:
    """An argon2id hash of an acceptable password; AccountError otherwise."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if environment == "production" and password == DEV_PASSWORD:
        raise AccountError("production refuses the development password")
    return _hasher.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the account's (None: no account, still spends the same time)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify(password_hash: str | None, password: str) -> bool:
    """`password_matches` off the event loop (argon2 is deliberately slow)."""
    return await asyncio.to_thread(password_matches, password_hash, password)


def _numbers(numbers: Iterable[str] | None) -> frozenset[PhoneNumberId] | None:
    if numbers is None:
        return None
    found = frozenset(n.strip() for n in numbers if n.strip())
    if not found:
        raise AccountError("give at least one business number, or none for all")
    return found


async def add(
    store: Store,
    agent_id: str,
    password: str,
    *,
    display_name: str | None = None,
    numbers: Iterable[str] | None = None,
    environment: str = "local",
) -> AgentAccount:
    """Create an account; AccountError if the id is taken or unusable."""
    try:
        check_id(agent_id)
    except AgentsConfigError as exc:
        raise AccountError(str(exc)) from exc
    account = AgentAccount(
        agent_id=agent_id,
        display_name=display_name,
        password_hash=hash_password(password, environment=environment),
        numbers=_numbers(numbers),
    )
    if not await store.create_account(account):
        raise AccountError(f"agent {agent_id!r} already has an account")
    log.info("desk.account_added", agent=agent_id)
    return account


async def set_password(
    store: Store, agent_id: str, password: str, *, environment: str = "local"
) -> None:
    """Change an account's password (its sessions end)."""
    if not await store.set_account_password(
        agent_id, hash_password(password, environment=environment)
    ):
        raise AccountError(f"no account {agent_id!r}")
    log.info("desk.password_changed", agent=agent_id)


async def set_disabled(store: Store, agent_id: str, disabled: bool) -> None:
    """Disable an account (its sessions end) or enable it again."""
    if not await store.set_account_disabled(agent_id, disabled):
        raise AccountError(f"no account {agent_id!r}")
    log.info("desk.account_disabled" if disabled else "desk.account_enabled", agent=agent_id)


def seeds_from_file(path: Path) -> list[AgentAccount]:
    """Accounts named in the agents TOML file: `[agents.<id>]` tables with a `password_hash`."""
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AgentsConfigError(f"cannot read the agents file {path}: {exc}") from exc
    section = raw.get("agents", {})
    found = []
    if isinstance(section, Mapping):
        for agent_id, values in section.items():
            if not isinstance(values, Mapping) or "password_hash" not in values:
                continue
            encoded = str(values["password_hash"])
            if not encoded.startswith("$argon2"):
                raise AgentsConfigError(f"agents.{agent_id}.password_hash is not an argon2 hash")
            numbers = values.get("numbers")
            found.append(
                AgentAccount(
                    agent_id=agent_id,
                    display_name=values.get("name"),
                    password_hash=encoded,
                    numbers=frozenset(str(n) for n in numbers) if numbers is not None else None,
                )
            )
    return found


async def prepare(store: Store, settings: Settings) -> None:
    """At console start: seed accounts from the agents file, give a local stack its dev agent,
    and refuse production while any enabled account has the development password."""
    if settings.agents_file is not None:
        for account in seeds_from_file(settings.agents_file):
            if await store.create_account(account):
                log.info("desk.account_seeded", agent=account.agent_id)
    accounts = await store.list_accounts()
    if settings.environment != "production":
        if not accounts:
            await store.create_account(
                AgentAccount(agent_id=DEV_AGENT_ID, password_hash=_hasher.hash(DEV_PASSWORD))
            )
            log.info("desk.dev_agent", agent=DEV_AGENT_ID)
        return
    for account in accounts:
        if not account.disabled and await verify(account.password_hash, DEV_PASSWORD):
            raise AgentsConfigError(
                f"production refuses the development password of agent {account.agent_id!r}:"
                " set another with `python -m services.console agents passwd`"
            )
