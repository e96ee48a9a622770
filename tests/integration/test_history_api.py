"""The onboarding endpoints of the agent API: auth, onboarding once, deadline, decisions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton.store.history_records import SyncOutcome, SyncStatus
from services.history.handlers import History
from simulator.webhooks import history_chunk
from tests.conftest import unique
from tests.e2e.console_support import (
    ALICE_TOKEN,
    CAROL_TOKEN,
    HELPER_TOKEN,
    SCOPED_NUMBER,
    InProcessConsole,
    agents_file_text,
    in_process_console,
    private_vhost,
)
from tests.integration.test_history_handlers import deliveries_of, history_thread
from tests.waiting import eventually

pytestmark = pytest.mark.integration

WINDOW = 2.0


@pytest.fixture(scope="module")
def console_amqp() -> Iterator[str]:
    with private_vhost() as url:
        yield url


@pytest.fixture
async def console(
    pg_url: str, console_amqp: str, tmp_path: Path
) -> AsyncIterator[InProcessConsole]:
    agents = tmp_path / "agents.toml"
    agents.write_text(agents_file_text())
    async with in_process_console(
        pg_url,
        console_amqp,
        agents_file=str(agents),
        history_sync_window_seconds=WINDOW,
        history_sync_at_risk_seconds=WINDOW / 2,
    ) as running:
        yield running


@pytest.fixture
async def alice(console: InProcessConsole) -> AsyncIterator[httpx.AsyncClient]:
    async with console.client(ALICE_TOKEN) as client:
        yield client


async def _onboard(client: httpx.AsyncClient, pnid: str, **extra: str) -> httpx.Response:
    return await client.post("/onboarding/numbers", json={"phone_number_id": pnid, **extra})


async def test_only_agents_in_scope_may_onboard(console: InProcessConsole) -> None:
    pnid = _pnid()
    async with console.client() as anonymous:
        assert (await _onboard(anonymous, pnid)).status_code == 401
        assert (await anonymous.get("/onboarding/numbers")).status_code == 401
    async with console.client("not-a-token") as stranger:
        assert (await _onboard(stranger, pnid)).status_code == 401
    async with console.client(HELPER_TOKEN) as bot:
        assert (await _onboard(bot, pnid)).status_code == 403
    async with console.client(CAROL_TOKEN) as carol:
        assert (await _onboard(carol, pnid)).status_code == 403  # not her number
        assert (await _onboard(carol, SCOPED_NUMBER)).status_code in (200, 201)
        listed = (await carol.get("/onboarding/numbers")).json()
        assert {n["phone_number_id"] for n in listed} == {SCOPED_NUMBER}


async def test_onboarding_is_recorded_once_with_its_deadline(alice: httpx.AsyncClient) -> None:
    pnid = _pnid()
    before = datetime.now(UTC)
    created = await _onboard(alice, pnid, display_phone_number="+15550001111")
    assert created.status_code == 201
    body = created.json()
    onboarded_at = datetime.fromisoformat(body["onboarded_at"])
    assert before <= onboarded_at <= datetime.now(UTC)
    assert datetime.fromisoformat(body["deadline_at"]) - onboarded_at == timedelta(seconds=WINDOW)
    assert body["display_phone_number"] == "15550001111"
    assert [(s["sync_type"], s["status"]) for s in body["syncs"]] == [
        ("smb_app_state_sync", "pending"),
        ("history", "pending"),
    ]
    assert body["progress"]["state"] == "waiting"
    again = await _onboard(alice, pnid)
    assert again.status_code == 200
    assert again.json()["onboarded_at"] == body["onboarded_at"]
    assert (await alice.get("/onboarding/numbers/424242")).status_code == 404
    assert (await _onboard(alice, "not digits")).status_code == 422


async def test_a_number_without_accepted_sync_goes_at_risk_then_missed(
    alice: httpx.AsyncClient,
) -> None:
    pnid = _pnid()
    # Nothing sends its sync requests here (no history service): the window runs out.
    assert (await _onboard(alice, pnid)).json()["deadline"] in ("on_track", "at_risk")

    async def deadline_is(state: str) -> dict[str, Any] | None:
        body: dict[str, Any] = (await alice.get(f"/onboarding/numbers/{pnid}")).json()
        return body if body["deadline"] == state else None

    await eventually(lambda: deadline_is("at_risk"), timeout=10, what="at_risk")
    missed = await eventually(lambda: deadline_is("missed"), timeout=10, what="missed")
    assert missed is not None
    assert missed["seconds_left"] <= 0


async def test_a_person_settles_an_unclear_request(
    alice: httpx.AsyncClient, console: InProcessConsole
) -> None:
    pnid = _pnid()
    await _onboard(alice, pnid)
    store = console.console.store
    [claim] = await store.claim_sync_requests(now=datetime.now(UTC), phone_number_id=pnid)
    await store.finish_sync_request(
        claim,
        SyncOutcome(status=SyncStatus.UNCLEAR, error="ReadTimeout"),
        now=datetime.now(UTC),
    )
    status = (await alice.get(f"/onboarding/numbers/{pnid}")).json()
    assert status["needs_person"]
    url = f"/onboarding/numbers/{pnid}/syncs/smb_app_state_sync/resolve"
    assert (await alice.post(url, json={"resolution": "maybe"})).status_code == 422
    settled = await alice.post(url, json={"resolution": "accepted", "note": "seen in Meta"})
    assert settled.status_code == 200
    [contacts, _] = settled.json()["syncs"]
    assert contacts["status"] == "accepted"
    assert contacts["resolved_by"] == "agent alice: seen in Meta"
    assert not settled.json()["needs_person"]
    assert (await alice.post(url, json={"resolution": "retry"})).status_code == 409


async def test_progress_is_exposed(alice: httpx.AsyncClient, console: InProcessConsole) -> None:
    pnid = _pnid()
    await _onboard(alice, pnid)
    history = History(console.console.store)
    chunks = [
        history_chunk(
            pnid,
            {"5511900000001": history_thread(f"{pnid}-{n}", 10)},
            phase=1,
            chunk_order=n,
            progress=n * 50,
        )
        for n in (1, 2)
    ]
    [first] = deliveries_of(chunks[0])
    await history.on_webhook(first)
    progress = (await alice.get(f"/onboarding/numbers/{pnid}")).json()["progress"]
    assert (progress["state"], progress["percent"], progress["phase"], progress["chunk"]) == (
        "importing",
        50,
        1,
        1,
    )
    assert progress["messages_imported"] == 10
    assert not progress["completed"]
    [second] = deliveries_of(chunks[1])
    await history.on_webhook(second)
    body = (await alice.get(f"/onboarding/numbers/{pnid}")).json()
    assert body["progress"]["completed"]
    assert body["progress"]["messages_imported"] == 20
    assert body["deadline"] == "met"  # history arriving proves the request was accepted


def _pnid() -> str:
    return "9" + unique("")[1:11].translate(str.maketrans("abcdef", "123456"))
