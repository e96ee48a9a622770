"""An agent's day at the desk, two agents racing for one conversation, and refused sign-ins.

Chromium (Playwright) against the whole stack; the customer is the WhatsApp simulator (webhooks
in, the messages Baton sends out), the bot a fake LLM that echoes.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from playwright.async_api import Browser, expect

from simulator import SimulatorClient
from tests.browser.conftest import (
    OBSERVER_TOKEN,
    DeskStack,
    customer_says,
    new_agent,
    new_context,
    new_customer,
    screenshot,
    sign_in,
)
from tests.fakes.llm import ECHO_PREFIX
from tests.waiting import eventually

pytestmark = pytest.mark.browser


async def api_conversation(desk_stack: DeskStack, customer: str) -> dict[str, object] | None:
    async with httpx.AsyncClient(
        base_url=desk_stack.url, headers={"Authorization": f"Bearer {OBSERVER_TOKEN}"}
    ) as api:
        listed = (await api.get("/conversations", params={"limit": 200})).json()["items"]
    found = [c for c in listed if c["wa_id"] == customer]
    return found[0] if found else None


async def waiting_conversation(desk_stack: DeskStack, customer: str, name: str) -> int:
    """A customer who asked for a human: the bot hands the conversation to the queue."""
    await customer_says(desk_stack, customer, "Quero falar com atendente, por favor", name)

    async def queued() -> int | None:
        found = await api_conversation(desk_stack, customer)
        if found and found["mode"] == "human" and found["waiting_since"]:
            return int(str(found["id"]))
        return None

    return await eventually(queued, timeout=30, what="the conversation in the queue")


async def received(sim: SimulatorClient, customer: str, text: str) -> None:
    async def probe() -> bool:
        return any(m.body == text and m.wamid for m in await sim.messages(to=customer))

    await eventually(probe, timeout=30, what=f"{text!r} at the simulator")


async def test_an_agents_whole_day(
    desk_stack: DeskStack, browser: Browser, sim: SimulatorClient
) -> None:
    agent = await new_agent(desk_stack, "alice")
    context = await new_context(browser)
    page = await context.new_page()
    await sign_in(page, desk_stack, agent)
    await expect(page.get_by_role("link", name="Waiting for a human")).to_have_attribute(
        "aria-current", "page"
    )

    # A customer asks for a human: the conversation appears live, the title counts it.
    customer, name = new_customer(), "Mariana Souza"
    await customer_says(desk_stack, customer, "Olá, meu pedido 4521 não chegou", name)
    await received(sim, customer, ECHO_PREFIX + "Olá, meu pedido 4521 não chegou")
    await waiting_conversation(desk_stack, customer, name)
    row = page.get_by_role("link", name=re.compile(name))
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("in queue")
    await expect(page).to_have_title(re.compile(r"^\(\d+\) "))
    await screenshot(page, "desk-inbox-waiting")

    # Take over: the holder's badge, Take over disabled with the reason, the composer open.
    await row.click()
    await expect(page.get_by_role("heading", name=name)).to_be_visible()
    await expect(page.locator(".handoff-reason")).not_to_have_text("—")
    await expect(page.get_by_label("Message")).to_be_disabled()
    await page.get_by_role("button", name="Take over").click()
    await expect(page.get_by_role("button", name="Take over")).to_be_disabled()
    await expect(page.locator("#why-takeover")).to_have_text("You hold this conversation")
    message = page.get_by_label("Message")
    await expect(message).to_be_enabled()
    # The inbox follows live: the badge now names the holder.
    await expect(row).to_contain_text(f"{agent} (you)")

    # Reply with the keyboard: Shift+Enter is a new line, Enter sends.
    await message.fill("Oi Mariana, sou a Alice.")
    await message.press("Shift+Enter")
    await message.type("Vou verificar o pedido 4521.")
    await message.press("Enter")
    reply = "Oi Mariana, sou a Alice.\nVou verificar o pedido 4521."
    await received(sim, customer, reply)
    sent = page.locator("li.msg.author-human:not(.pending)").filter(has_text="Vou verificar")
    await expect(sent).to_have_count(1)
    await expect(sent.locator(".tick")).to_be_visible()
    await expect(page.locator("li.pending")).to_have_count(0)

    # The customer answers: it appears live.
    await customer_says(desk_stack, customer, "Obrigada! Fico no aguardo.", name)
    await expect(page.locator("li.msg.in").filter(has_text="Fico no aguardo")).to_be_visible()
    await screenshot(page, "desk-conversation")

    # Back to the bot: it answers the next message (live in the page, and on WhatsApp).
    await page.get_by_role("button", name="Return to bot").click()
    await expect(page.get_by_role("button", name="Return to bot")).to_be_disabled()
    await expect(page.get_by_label("Message")).to_be_disabled()
    await customer_says(desk_stack, customer, "E o prazo de entrega?", name)
    await received(sim, customer, ECHO_PREFIX + "E o prazo de entrega?")
    await expect(
        page.locator("li.msg.author-bot").filter(has_text="E o prazo de entrega?")
    ).to_be_visible()

    # A private note (issue 12's API): shown to agents in the history, never sent.
    await page.get_by_label("Private note (never sent)").fill("Cliente VIP: pedido 4521 atrasado")
    await page.get_by_role("button", name="Add note").click()
    await expect(page.locator("li.msg.author-note").filter(has_text="Cliente VIP")).to_be_visible()
    assert not any("Cliente VIP" in (m.body or "") for m in await sim.messages(to=customer))

    # The connection drops: the desk says so, then reconnects by itself and carries on.
    await context.set_offline(True)
    await expect(page.locator("#offline")).to_be_visible(timeout=20_000)
    await context.set_offline(False)
    await expect(page.locator("#offline")).to_be_hidden(timeout=20_000)
    await customer_says(desk_stack, customer, "Ainda estão aí?", name)
    await expect(page.locator("li.msg.in").filter(has_text="Ainda estão aí?")).to_be_visible()

    # At phone width the same conversation is one column, in Portuguese by default.
    phone = await browser.new_context(
        locale="pt-BR",
        viewport={"width": 390, "height": 844},
        storage_state=await context.storage_state(),
    )
    small = await phone.new_page()
    await small.goto(page.url)
    await expect(small.get_by_role("button", name="Assumir")).to_be_visible()
    await expect(small.locator(".inbox")).to_be_hidden()
    await screenshot(small, "desk-phone")
    await phone.close()
    await context.close()


async def test_two_agents_take_over_at_once_and_exactly_one_wins(
    desk_stack: DeskStack, browser: Browser
) -> None:
    customer, name = new_customer(), "Carlos Lima"
    cid = await waiting_conversation(desk_stack, customer, name)
    agents = [await new_agent(desk_stack, "bruno"), await new_agent(desk_stack, "carla")]
    pages = []
    for agent in agents:
        context = await new_context(browser)
        page = await context.new_page()
        await sign_in(page, desk_stack, agent)
        await page.goto(f"{desk_stack.url}/c/{cid}")
        await expect(page.get_by_role("button", name="Take over")).to_be_enabled()
        pages.append(page)

    await asyncio.gather(*(page.get_by_role("button", name="Take over").click() for page in pages))

    async def holder() -> str | None:
        found = await api_conversation(desk_stack, customer)
        return str(found["assignee"]) if found and found["assignee"] else None

    winner = await eventually(holder, what="a holder")
    assert winner in agents
    loser_page = pages[1 - agents.index(winner)]
    winner_page = pages[agents.index(winner)]
    await expect(winner_page.locator("#why-takeover")).to_have_text("You hold this conversation")
    await expect(loser_page.get_by_text(f"{winner} holds this conversation").first).to_be_visible()
    await expect(loser_page.get_by_role("button", name="Take over")).to_be_disabled()
    await expect(loser_page.get_by_role("button", name="Return to bot")).to_be_disabled()
    await expect(loser_page.get_by_label("Message")).to_be_disabled()
    await expect(loser_page.locator(".conv.current")).to_contain_text(winner)
    await screenshot(loser_page, "desk-race-loser")
    # And it stayed that way: one holder.
    assert await holder() == winner


async def test_wrong_password_expired_session_and_csrf_are_refused(
    desk_stack: DeskStack, browser: Browser
) -> None:
    agent = await new_agent(desk_stack, "davi")
    customer = new_customer()
    cid = await waiting_conversation(desk_stack, customer, "Joana Prado")
    context = await new_context(browser)
    page = await context.new_page()

    # A wrong password: refused, still on the sign-in page, no session.
    await sign_in(page, desk_stack, agent, "not the password at all")
    await expect(page.get_by_role("alert")).to_have_text("Wrong agent or password.")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert not [c for c in await context.cookies() if c["name"] == "baton_session"]
    await screenshot(page, "desk-sign-in-refused")

    # The default language is pt-BR; the switch changes it. Then keyboard only: the agent field
    # has the focus after a refusal, Tab moves on, Enter signs in.
    await page.get_by_role("link", name="Português").click()
    await expect(page.get_by_role("button", name="Entrar")).to_be_visible()
    await page.get_by_role("link", name="English").click()
    await page.get_by_label("Agent").focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type(agent)
    await page.keyboard.press("Tab")
    await page.keyboard.type("a good long password")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("link", name="Waiting for a human")).to_be_visible()
    session = [c for c in await context.cookies() if c["name"] == "baton_session"]
    assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"

    # CSRF: the page's own script without the token, and another site's form, are refused.
    status = await page.evaluate(
        "id => fetch(`/conversations/${id}/takeover`, {method: 'POST'}).then(r => r.status)", cid
    )
    assert status == 403
    evil = "http://evil.test/"
    await page.route(
        evil,
        lambda route: route.fulfill(
            content_type="text/html",
            body=(
                f'<form id="f" method="post" action="{desk_stack.url}/conversations/{cid}/takeover">'
                "</form><script>document.getElementById('f').submit()</script>"
            ),
        ),
    )
    async with page.expect_response(re.compile(rf"/conversations/{cid}/takeover$")) as answer:
        await page.goto(evil)
    assert (await answer.value).status in (401, 403)
    found = await api_conversation(desk_stack, customer)
    assert found is not None and found["assignee"] is None  # nobody took it over

    # An expired session: the desk sends the agent to sign in again, the API answers 401.
    await page.goto(desk_stack.url + "/")
    import asyncpg  # the test's own clock: the session's expiry moved into the past

    conn = await asyncpg.connect(desk_stack.pg_url)
    try:
        await conn.execute(
            "UPDATE agent_sessions SET expires_at = now() - interval '1 second'"
            " WHERE agent_id = $1",
            agent,
        )
    finally:
        await conn.close()
    api_status = await page.evaluate("() => fetch('/conversations').then(r => r.status)")
    assert api_status == 401
    await page.close()  # its script may already be on its way to the sign-in page
    page = await context.new_page()
    await page.goto(desk_stack.url + "/")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text(
        "Your session ended. Please sign in again."
    )
    await context.close()
