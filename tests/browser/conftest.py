"""The desk in a real browser: Debian's Chromium driven by Playwright, against the whole stack.

The stack (every service as a process, the WhatsApp simulator, a fake LLM that echoes) starts
once per module; each test gets a fresh browser. Screenshots go to `.run/screenshots/`
(kept by CI as artefacts; a few are copied into docs/screenshots for the README).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from baton.store import open_store
from devstack import REPO_ROOT
from services.console import accounts
from simulator import DEV_APP_SECRET, SimulatorClient
from simulator.webhooks import customer_text, envelope, meta_json, post_webhook
from tests.conftest import unique
from tests.e2e.conftest import (
    fake_llm,
    free_port,
    fresh_ports,
    launched,
    numbers_file,
    stack_env,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO_ROOT / ".run" / "screenshots"
PHONE_NUMBER_ID = "900000000000001"
OBSERVER_TOKEN = "observer-token-0123456789"  # the tests' own view through the agent API
PASSWORD = "a good long password"

pytestmark = pytest.mark.browser
# Generous on a loaded machine: every `expect` waits for its condition up to this long.
expect.set_options(timeout=20_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} missing: scripts/setup installs it")
        for item in items:
            if "tests/browser" in str(item.path):
                item.add_marker(skip)


@dataclass(frozen=True)
class DeskStack:
    url: str  # the console: desk and agent API
    webhook_url: str
    sim_url: str
    pg_url: str


@pytest.fixture(scope="module")
def desk_stack(
    amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeskStack]:
    llm_port = free_port()
    ports = fresh_ports()
    workdir: Path = tmp_path_factory.mktemp("desk-stack")
    env = stack_env(
        amqp_url,
        pg_url,
        ports,
        BATON_LLM_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
        BATON_LLM_API_KEY="fake-key",
        BATON_NUMBERS_FILE=str(numbers_file(workdir, PHONE_NUMBER_ID)),
        BATON_AGENT_TOKENS=f"observer:{OBSERVER_TOKEN}",
    )
    with launched(env, ports, workdir / "logs", fakes=[fake_llm(llm_port)], timeout=90) as running:
        yield DeskStack(
            url=f"http://127.0.0.1:{ports.console}",
            webhook_url=running.webhook_url,
            sim_url=running.sim_url,
            pg_url=pg_url,
        )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def sim(desk_stack: DeskStack) -> AsyncIterator[SimulatorClient]:
    client = SimulatorClient(desk_stack.sim_url)
    yield client
    await client.aclose()


async def new_agent(desk_stack: DeskStack, name: str) -> str:
    """A desk account made the way an operator makes one (the agents command's logic)."""
    agent_id = unique(name)
    store = await open_store(desk_stack.pg_url)
    try:
        await accounts.add(store, agent_id, PASSWORD, display_name=name.title())
    finally:
        await store.close()
    return agent_id


async def new_context(
    browser: Browser, *, locale: str = "en-US", phone: bool = False
) -> BrowserContext:
    viewport: ViewportSize = (
        {"width": 390, "height": 844} if phone else {"width": 1280, "height": 800}
    )
    context = await browser.new_context(locale=locale, viewport=viewport)
    context.set_default_timeout(20_000)
    return context


async def sign_in(
    page: Page, desk_stack: DeskStack, agent_id: str, password: str = PASSWORD
) -> None:
    await page.goto(desk_stack.url + "/")
    await page.get_by_label("Agent").fill(agent_id)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


def new_customer() -> str:
    return "55" + unique("")[1:10].translate(str.maketrans("abcdef", "123456"))


async def customer_says(desk_stack: DeskStack, customer: str, text: str, name: str) -> None:
    body = meta_json(envelope([customer_text(PHONE_NUMBER_ID, customer, text, name=name)]))
    response = await post_webhook(desk_stack.webhook_url, body, DEV_APP_SECRET)
    assert response.status_code == 200


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path


__all__ = ["expect", "re"]
