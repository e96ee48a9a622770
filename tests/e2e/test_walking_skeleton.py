"""A signed webhook becomes a bot reply, end to end, across real processes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from devstack import REPO_ROOT, Ports
from services.bot.texts import PT_BR
from simulator import DEV_APP_SECRET, SentMessage, SimulatorClient
from simulator.webhooks import customer_text, envelope, meta_json, post_webhook
from tests.conftest import unique
from tests.e2e.conftest import RunningStack, free_port, stack_env
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

PHONE_NUMBER_ID = "900000000000001"


@pytest.fixture
async def sim(running_stack: RunningStack) -> AsyncIterator[SimulatorClient]:
    client = SimulatorClient(running_stack.sim_url)
    yield client
    await client.aclose()


def _customer() -> str:
    return "55" + unique("")[1:10].translate(str.maketrans("abcdef", "123456"))


async def _replies_to(sim: SimulatorClient, wa_id: str) -> list[SentMessage]:
    return [m for m in await sim.messages(to=wa_id) if m.wamid is not None]


async def test_signed_webhook_becomes_a_bot_reply(
    running_stack: RunningStack, sim: SimulatorClient
) -> None:
    customer = _customer()
    body = meta_json(envelope([customer_text(PHONE_NUMBER_ID, customer, "Olá, bom dia!")]))
    response = await post_webhook(running_stack.webhook_url, body, DEV_APP_SECRET)
    assert response.status_code == 200

    replies = await eventually(lambda: _replies_to(sim, customer), what="the bot's reply")
    assert len(replies) == 1
    assert replies[0].type == "text"
    assert replies[0].body


async def test_same_webhook_twice_gives_exactly_one_reply(
    running_stack: RunningStack, sim: SimulatorClient, pg_url: str
) -> None:
    customer = _customer()
    body = meta_json(envelope([customer_text(PHONE_NUMBER_ID, customer, "Qual o horário?")]))
    for _ in range(2):
        response = await post_webhook(running_stack.webhook_url, body, DEV_APP_SECRET)
        assert response.status_code == 200
    await eventually(lambda: _replies_to(sim, customer), what="the bot's reply")

    # A later message from the same customer gets its reply only after the duplicate has
    # gone through the whole pipeline before it; then exactly two replies exist, not three.
    follow_up = meta_json(envelope([customer_text(PHONE_NUMBER_ID, customer, "obrigado")]))
    assert (
        await post_webhook(running_stack.webhook_url, follow_up, DEV_APP_SECRET)
    ).status_code == 200

    async def two_replies() -> list[SentMessage] | None:
        replies = await _replies_to(sim, customer)
        return replies if len(replies) >= 2 else None

    await eventually(two_replies, what="the follow-up's reply")
    conn = await asyncpg.connect(pg_url)
    try:
        counts = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE direction = 'in'), count(*) FILTER (WHERE direction = 'out')"
            " FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.wa_id = $1",
            customer,
        )
    finally:
        await conn.close()
    assert counts is not None
    assert tuple(counts) == (2, 2)  # messages in, replies out
    assert len(await _replies_to(sim, customer)) == 2


async def test_a_webhook_redelivered_after_its_reply_is_not_answered_again(
    running_stack: RunningStack, sim: SimulatorClient
) -> None:
    # Meta retries a webhook it saw no 200 for, possibly long after: by then the message left
    # the debounce buffer and was answered, so only the store's dedupe by wamid can catch it.
    customer = _customer()
    body = meta_json(envelope([customer_text(PHONE_NUMBER_ID, customer, "Vocês entregam?")]))
    assert (await post_webhook(running_stack.webhook_url, body, DEV_APP_SECRET)).status_code == 200
    await eventually(lambda: _replies_to(sim, customer), what="the bot's reply")
    assert (await post_webhook(running_stack.webhook_url, body, DEV_APP_SECRET)).status_code == 200

    follow_up = meta_json(envelope([customer_text(PHONE_NUMBER_ID, customer, "obrigado!")]))
    assert (
        await post_webhook(running_stack.webhook_url, follow_up, DEV_APP_SECRET)
    ).status_code == 200

    async def two_replies() -> list[SentMessage] | None:
        replies = await _replies_to(sim, customer)
        return replies if len(replies) >= 2 else None

    # Had the redelivery reached the bot again, it would be a third reply, or would share the
    # follow-up's burst and turn the offline responder's "you're welcome" into a non-answer.
    replies = await eventually(two_replies, what="the follow-up's reply")
    assert replies[1].body == PT_BR.thanks
    assert len(await _replies_to(sim, customer)) == 2


async def test_delivery_statuses_reach_the_stored_reply(
    running_stack: RunningStack, sim: SimulatorClient, pg_url: str
) -> None:
    customer = _customer()
    body = meta_json(envelope([customer_text(PHONE_NUMBER_ID, customer, "oi")]))
    assert (await post_webhook(running_stack.webhook_url, body, DEV_APP_SECRET)).status_code == 200
    [reply] = await eventually(lambda: _replies_to(sim, customer), what="the bot's reply")

    async def status() -> str | None:
        conn = await asyncpg.connect(pg_url)
        try:
            value: str | None = await conn.fetchval(
                "SELECT status FROM messages WHERE wamid = $1", reply.wamid
            )
        finally:
            await conn.close()
        return value if value == "delivered" else None

    # The simulator posts signed `sent` then `delivered` webhooks, as Meta does.
    assert await eventually(status, what="the delivered status") == "delivered"


async def test_dead_broker_means_503_not_200(running_stack: RunningStack, pg_url: str) -> None:
    port = free_port()
    ports = Ports(ingest=port, simulator=running_stack.ports.simulator)
    env = stack_env("amqp://guest:guest@127.0.0.1:1/", pg_url, ports, BATON_INGEST_PORT=str(port))
    ingest = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.ingest",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        async def alive() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{url}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(alive, what="ingest to listen")
        body = meta_json(envelope([customer_text(PHONE_NUMBER_ID, _customer(), "alô?")]))
        response = await post_webhook(f"{url}/webhook", body, DEV_APP_SECRET)
        assert response.status_code == 503
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/readyz")).status_code == 503
    finally:
        ingest.terminate()
        await asyncio.wait_for(ingest.wait(), 20)
