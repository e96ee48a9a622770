"""The desk's accounts on PostgreSQL: agents with passwords, browser sessions, failed sign-ins.

Sessions are looked up by the SHA-256 of their token, joined to an enabled account: disabling
an account or changing its password ends its sessions at once (rows deleted in the same
statement's transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from baton.store.account_records import AgentAccount, DeskSession, NewSession

_ACCOUNT_COLUMNS = "agent_id, display_name, password_hash, numbers, disabled, created_at"


def _account(row: asyncpg.Record) -> AgentAccount:
    numbers = row["numbers"]
    return AgentAccount(
        agent_id=row["agent_id"],
        display_name=row["display_name"],
        password_hash=row["password_hash"],
        numbers=frozenset(numbers) if numbers is not None else None,
        disabled=row["disabled"],
        created_at=row["created_at"],
    )


class PostgresAccountsStore:
    """Mixin of `PostgresStore` for the desk's accounts and sessions (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def create_account(self, account: AgentAccount) -> bool:
        status = await self._pool.execute(
            "INSERT INTO agent_accounts (agent_id, display_name, password_hash, numbers, disabled)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (agent_id) DO NOTHING",
            account.agent_id,
            account.display_name,
            account.password_hash,
            sorted(account.numbers) if account.numbers is not None else None,
            account.disabled,
        )
        return status == "INSERT 0 1"

    async def account(self, agent_id: str) -> AgentAccount | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ACCOUNT_COLUMNS} FROM agent_accounts WHERE agent_id = $1", agent_id
        )
        return _account(row) if row is not None else None

    async def list_accounts(self) -> Sequence[AgentAccount]:
        rows = await self._pool.fetch(
            f"SELECT {_ACCOUNT_COLUMNS} FROM agent_accounts ORDER BY agent_id"
        )
        return [_account(r) for r in rows]

    async def set_account_password(self, agent_id: str, password_hash: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE agent_accounts SET password_hash = $2, updated_at = now()"
                " WHERE agent_id = $1",
                agent_id,
                password_hash,
            )
            await conn.execute("DELETE FROM agent_sessions WHERE agent_id = $1", agent_id)
        return status == "UPDATE 1"

    async def set_account_disabled(self, agent_id: str, disabled: bool) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE agent_accounts SET disabled = $2, updated_at = now() WHERE agent_id = $1",
                agent_id,
                disabled,
            )
            if disabled:
                await conn.execute("DELETE FROM agent_sessions WHERE agent_id = $1", agent_id)
        return status == "UPDATE 1"

    async def create_session(self, session: NewSession) -> None:
        await self._pool.execute(
            "INSERT INTO agent_sessions (token_hash, agent_id, csrf_token, created_at,"
            " last_seen_at, expires_at, address) VALUES ($1, $2, $3, $4, $4, $5, $6)",
            session.token_hash,
            session.agent_id,
            session.csrf_token,
            session.created_at,
            session.expires_at,
            session.address,
        )

    async def desk_session(self, token_hash: bytes, now: datetime) -> DeskSession | None:
        row = await self._pool.fetchrow(
            f"SELECT s.token_hash, s.csrf_token, s.created_at AS session_created_at,"
            f" s.last_seen_at, s.expires_at, {', '.join('a.' + c for c in _ACCOUNT_COLUMNS.split(', '))}"
            " FROM agent_sessions s JOIN agent_accounts a USING (agent_id)"
            " WHERE s.token_hash = $1 AND s.expires_at > $2 AND NOT a.disabled",
            token_hash,
            now,
        )
        if row is None:
            return None
        return DeskSession(
            token_hash=row["token_hash"],
            csrf_token=row["csrf_token"],
            created_at=row["session_created_at"],
            last_seen_at=row["last_seen_at"],
            expires_at=row["expires_at"],
            account=_account(row),
        )

    async def renew_session(
        self, token_hash: bytes, seen_at: datetime, expires_at: datetime
    ) -> None:
        await self._pool.execute(
            "UPDATE agent_sessions SET last_seen_at = $2, expires_at = $3 WHERE token_hash = $1",
            token_hash,
            seen_at,
            expires_at,
        )

    async def delete_session(self, token_hash: bytes) -> None:
        await self._pool.execute("DELETE FROM agent_sessions WHERE token_hash = $1", token_hash)

    async def delete_expired_sessions(self, now: datetime) -> int:
        status = await self._pool.execute("DELETE FROM agent_sessions WHERE expires_at <= $1", now)
        return int(status.split()[-1])

    async def record_sign_in_failure(
        self, keys: Sequence[str], at: datetime, *, forget_before: datetime
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM sign_in_failures WHERE key = ANY($1) AND failed_at < $2",
                list(keys),
                forget_before,
            )
            await conn.executemany(
                "INSERT INTO sign_in_failures (key, failed_at) VALUES ($1, $2)",
                [(key, at) for key in keys],
            )

    async def sign_in_failures(self, keys: Sequence[str], since: datetime) -> dict[str, int]:
        rows = await self._pool.fetch(
            "SELECT key, count(*) AS n FROM sign_in_failures"
            " WHERE key = ANY($1) AND failed_at >= $2 GROUP BY key",
            list(keys),
            since,
        )
        found = {r["key"]: int(r["n"]) for r in rows}
        return {key: found.get(key, 0) for key in keys}

    async def clear_sign_in_failures(self, key: str) -> None:
        await self._pool.execute("DELETE FROM sign_in_failures WHERE key = $1", key)
