"""Desk sign-in against the real store and broker: cookies, CSRF, expiry, throttling, the CLI.

The console app runs in-process (its real store, broker and Conversations); the client is an
httpx client that keeps cookies like a browser. The browser tests (tests/browser) drive the
same flows through Chromium.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from baton.settings import Settings
from baton.store import PostgresStore
from services.console import accounts, accounts_cli
from services.console.agents import AgentsConfigError
from services.console.sessions import CSRF_HEADER, SESSION_COOKIE
from tests.conftest import unique
from tests.e2e.console_support import ALICE_TOKEN, bearer, in_process_console, private_vhost

pytestmark = pytest.mark.integration

PASSWORD = "a long enough password"


@pytest.fixture
async def desk(pg_url: str) -> AsyncIterator[httpx.AsyncClient]:
    with private_vhost() as amqp:
        async with in_process_console(
            pg_url, amqp, desk_failures_per_agent=3, desk_failures_per_address=6
        ) as console:
            # An address of its own: failed sign-ins of other tests never throttle this one.
            address = (
                f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
            )
            transport = httpx.ASGITransport(app=console.app, client=(address, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://desk") as client:
                yield client


async def sign_in(client: httpx.AsyncClient, agent: str, password: str) -> httpx.Response:
    form = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return await client.post(
        "/login", data={"agent": agent, "password": password, "csrf_token": token.group(1)}
    )


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'data-csrf="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


async def test_a_signed_in_agent_uses_the_api_with_the_cookie_and_writes_need_csrf(
    desk: httpx.AsyncClient, store: PostgresStore
) -> None:
    agent = unique("ana")
    await accounts.add(store, agent, PASSWORD)
    assert (await desk.get("/")).status_code == 303  # to the sign-in page

    signed_in = await sign_in(desk, agent, PASSWORD)
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/")
    cookie = signed_in.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # local: plain http on loopback

    page = await desk.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert (await desk.get("/conversations")).status_code == 200  # GET: the cookie is enough
    # A write with the cookie but without the session's CSRF token is refused …
    missing = await desk.post("/conversations/999999999/takeover")
    assert missing.status_code == 403
    wrong = await desk.post("/conversations/999999999/takeover", headers={CSRF_HEADER: "nope"})
    assert wrong.status_code == 403
    foreign = await desk.post(
        "/conversations/999999999/takeover",
        headers={CSRF_HEADER: csrf_of(page), "Origin": "http://evil.test"},
    )
    assert foreign.status_code == 403
    # … and with it, it reaches the route (no such conversation).
    allowed = await desk.post(
        "/conversations/999999999/takeover", headers={CSRF_HEADER: csrf_of(page)}
    )
    assert allowed.status_code == 404

    # Signing out ends the session: the same cookie no longer works.
    token = desk.cookies[SESSION_COOKIE]
    out = await desk.post("/logout", data={"csrf_token": csrf_of(page)})
    assert (out.status_code, out.headers["location"]) == (303, "/login?signed_out=1")
    assert SESSION_COOKIE not in desk.cookies
    desk.cookies.set(SESSION_COOKIE, token)  # a copy kept from before signing out
    assert (await desk.get("/conversations")).status_code == 401


async def test_bearer_tokens_keep_working_beside_sessions(desk: httpx.AsyncClient) -> None:
    listed = await desk.get("/conversations", headers=bearer(ALICE_TOKEN))
    assert listed.status_code == 200
    # A bearer client needs no CSRF token: it has no ambient credential to abuse.
    answer = await desk.post("/conversations/999999999/takeover", headers=bearer(ALICE_TOKEN))
    assert answer.status_code == 404
    assert (await desk.get("/conversations")).status_code == 401


async def test_an_expired_session_is_refused(desk: httpx.AsyncClient, store: PostgresStore) -> None:
    agent = unique("bia")
    await accounts.add(store, agent, PASSWORD)
    assert (await sign_in(desk, agent, PASSWORD)).status_code == 303
    assert (await desk.get("/conversations")).status_code == 200
    await store.pool.execute(
        "UPDATE agent_sessions SET expires_at = now() - interval '1 second' WHERE agent_id = $1",
        agent,
    )
    assert (await desk.get("/conversations")).status_code == 401
    page = await desk.get("/")
    assert page.status_code == 303
    assert "expired=1" in page.headers["location"]


async def test_wrong_passwords_are_refused_then_throttled_per_agent_and_per_address(
    desk: httpx.AsyncClient, store: PostgresStore
) -> None:
    agent = unique("caio")
    await accounts.add(store, agent, PASSWORD)
    for _ in range(3):
        refused = await sign_in(desk, agent, "not the password")
        assert refused.status_code == 401
        assert "Agente ou senha incorretos." in refused.text  # pt-BR unless the browser asks
    # The agent's limit (3) is reached: even the right password waits now.
    throttled = await sign_in(desk, agent, PASSWORD)
    assert throttled.status_code == 429
    assert "Retry-After" in throttled.headers
    # Other agents from the same address still get in until the address's limit (6) …
    other = unique("duda")
    await accounts.add(store, other, PASSWORD)
    for _ in range(3):
        assert (await sign_in(desk, unique("nobody"), "guess")).status_code == 401
    # … which three unknown agents' failures have now reached, for everyone from there.
    assert (await sign_in(desk, other, PASSWORD)).status_code == 429


async def test_the_sign_in_form_needs_its_own_token(
    desk: httpx.AsyncClient, store: PostgresStore
) -> None:
    agent = unique("eva")
    await accounts.add(store, agent, PASSWORD)
    forged = await desk.post("/login", data={"agent": agent, "password": PASSWORD})
    assert forged.status_code == 403
    assert SESSION_COOKIE not in forged.headers.get("set-cookie", "")


async def test_disabling_or_a_new_password_ends_sessions(
    desk: httpx.AsyncClient, store: PostgresStore
) -> None:
    agent = unique("fabi")
    await accounts.add(store, agent, PASSWORD)
    assert (await sign_in(desk, agent, PASSWORD)).status_code == 303
    await accounts.set_password(store, agent, "another long password")
    assert (await desk.get("/conversations")).status_code == 401
    assert (await sign_in(desk, agent, PASSWORD)).status_code == 401
    assert (await sign_in(desk, agent, "another long password")).status_code == 303
    await accounts.set_disabled(store, agent, True)
    assert (await desk.get("/conversations")).status_code == 401
    assert (await sign_in(desk, agent, "another long password")).status_code == 401


async def test_the_agents_command_adds_changes_disables_and_lists(
    pg_url: str,
    store: PostgresStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(store_url=pg_url)
    agent = unique("gil")
    monkeypatch.setattr("sys.stdin", _Lines(f"{PASSWORD}\n"))
    assert (
        await accounts_cli.run(
            ["add", agent, "--numbers", "9001,9002", "--password-stdin"], settings
        )
        == 0
    )
    account = await store.account(agent)
    assert account is not None and account.numbers == frozenset({"9001", "9002"})
    assert accounts.password_matches(account.password_hash, PASSWORD)
    monkeypatch.setattr("sys.stdin", _Lines(f"{PASSWORD}\n"))
    assert await accounts_cli.run(["add", agent, "--password-stdin"], settings) == 1  # taken
    monkeypatch.setattr("sys.stdin", _Lines("short\n"))
    assert await accounts_cli.run(["passwd", agent, "--password-stdin"], settings) == 1
    monkeypatch.setattr("sys.stdin", _Lines("a brand new password\n"))
    assert await accounts_cli.run(["passwd", agent, "--password-stdin"], settings) == 0
    assert await accounts_cli.run(["disable", agent], settings) == 0
    assert await accounts_cli.run(["list"], settings) == 0
    listed = capsys.readouterr().out
    assert f"{agent}\tdisabled\t9001,9002" in listed


class _Lines:
    def __init__(self, text: str) -> None:
        self._lines = text.splitlines(keepends=True)

    def readline(self) -> str:
        return self._lines.pop(0) if self._lines else ""


async def test_accounts_are_seeded_from_the_agents_file_and_production_refuses_the_dev_password(
    store: PostgresStore, tmp_path: Path
) -> None:
    seeded = unique("hugo")
    agents_file = tmp_path / "agents.toml"
    agents_file.write_text(
        f'[agents.{seeded}]\npassword_hash = "{accounts.hash_password(PASSWORD)}"\n'
        f'numbers = ["9003"]\n'
    )
    await accounts.prepare(store, Settings(agents_file=agents_file))
    account = await store.account(seeded)
    assert account is not None and account.numbers == frozenset({"9003"})
    production = Settings(
        environment="production",
        app_secret=SecretStr("s" * 20),
        verify_token=SecretStr("v" * 20),
        access_token=SecretStr("a" * 20),
    )
    weak = unique("weak")
    await accounts.add(store, weak, accounts.DEV_PASSWORD)  # allowed locally …
    with pytest.raises(AgentsConfigError, match="development password"):
        await accounts.prepare(store, production)  # … never in production
    await accounts.set_disabled(store, weak, True)
    # A local start on an empty store (this one's or an earlier test's) made the dev agent: it
    # signs in with the development password, so production refuses it too until disabled.
    dev = await store.account(accounts.DEV_AGENT_ID)
    if dev is not None:
        assert accounts.password_matches(dev.password_hash, accounts.DEV_PASSWORD)
        with pytest.raises(AgentsConfigError, match=f"'{accounts.DEV_AGENT_ID}'"):
            await accounts.prepare(store, production)
        await accounts.set_disabled(store, accounts.DEV_AGENT_ID, True)
    try:
        await accounts.prepare(store, production)
    finally:
        if dev is not None:
            await accounts.set_disabled(store, accounts.DEV_AGENT_ID, False)
