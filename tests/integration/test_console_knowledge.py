"""The knowledge API: agents of a number read and edit what its bot knows; others cannot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

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

pytestmark = pytest.mark.integration

KNOWLEDGE = {
    "persona": "Você é a assistente da Padaria Pão Quente.",
    "hours": {
        "timezone": "America/Sao_Paulo",
        "weekly": {"mon": "07:00-19:00", "sun": "closed"},
        "holidays": [{"date": "2026-12-25", "name": "Natal"}],
    },
    "faq": [{"questions": ["tem pão de queijo"], "answer": "Temos!"}],
    "links": [{"title": "Cardápio", "url": "https://example.com/menu"}],
    "contact": "(11) 3333-4444",
}


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
    async with in_process_console(pg_url, console_amqp, agents_file=str(agents)) as running:
        yield running


async def test_an_agent_saves_knowledge_and_reads_it_back(console: InProcessConsole) -> None:
    url = f"/numbers/{SCOPED_NUMBER}/knowledge"
    async with console.client(CAROL_TOKEN) as carol:
        before = await carol.get(url)
        assert before.status_code == 200
        assert before.json()["source"] == "numbers_file"
        saved = await carol.put(url, json=KNOWLEDGE)
        assert saved.status_code == 200, saved.text
        assert saved.json()["source"] == "console"
        assert saved.json()["updated_by"] == "carol"
        again = (await carol.get(url)).json()
        assert again["knowledge"]["persona"] == KNOWLEDGE["persona"]
        assert again["knowledge"]["hours"]["weekly"]["mon"] == [
            {"opens": "07:00:00", "closes": "19:00:00"}
        ]
        assert isinstance(again["open_now"], bool)
        assert (await carol.delete(url)).status_code == 204
        assert (await carol.get(url)).json()["source"] == "numbers_file"


@pytest.mark.parametrize(
    "bad",
    [
        {"hours": {"timezone": "Mars/Olympus"}},
        {"hours": {"weekly": {"mon": "19:00-07:00"}}},
        {"links": [{"title": "x", "url": "not a url"}]},
        {"faq": [{"questions": [], "answer": "x"}]},
        {"unknown_field": 1},
    ],
)
async def test_bad_knowledge_is_a_422_and_changes_nothing(
    console: InProcessConsole, bad: dict[str, object]
) -> None:
    url = f"/numbers/{SCOPED_NUMBER}/knowledge"
    async with console.client(CAROL_TOKEN) as carol:
        refused = await carol.put(url, json=bad)
        assert refused.status_code == 422
        assert (await carol.get(url)).json()["source"] == "numbers_file"


async def test_out_of_scope_bots_and_strangers_are_refused(console: InProcessConsole) -> None:
    other = f"/numbers/{SCOPED_NUMBER}1/knowledge"
    async with console.client(CAROL_TOKEN) as carol:
        assert (await carol.put(other, json=KNOWLEDGE)).status_code == 403
    async with console.client(HELPER_TOKEN) as bot:
        assert (await bot.get(f"/numbers/{SCOPED_NUMBER}/knowledge")).status_code == 403
    async with console.client(ALICE_TOKEN) as alice:
        assert (await alice.get(other)).status_code == 200  # alice sees every number
    transport = httpx.ASGITransport(app=console.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as anonymous:
        assert (await anonymous.put(other, json=KNOWLEDGE)).status_code == 401
