"""SIGTERM while a consumer is mid-message: the message is finished, settled once, not lost."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aio_pika
import pytest

from baton.broker import Broker
from baton.broker.topology import BOT_REQUESTS, COMMANDS
from baton.messages import AskBot, BurstMessage, SendText, utcnow
from devstack import REPO_ROOT
from tests.e2e.conftest import free_port
from tests.fakes.llm import serve_fake_llm

pytestmark = pytest.mark.integration


async def _drain(amqp_url: str, queue: str) -> list[bytes]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        q = await channel.get_queue(queue)
        bodies = []
        while (message := await q.get(fail=False)) is not None:
            bodies.append(message.body)
            await message.ack()
        return bodies
    finally:
        await connection.close()


async def _tap_replies(amqp_url: str, queue: str) -> None:
    """A private queue that sees every reply the bot publishes (outbox.intake only allows consumers)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(COMMANDS)
        tap = await channel.declare_queue(queue, durable=False, auto_delete=False)
        await tap.bind(exchange, routing_key=SendText.TYPE)
    finally:
        await connection.close()


async def test_sigterm_finishes_in_flight_request_and_acks_it_once(
    broker: Broker, amqp_url: str, pg_url: str
) -> None:
    await broker.declare_topology()
    tap = "test.graceful.replies"
    await _tap_replies(amqp_url, tap)
    await _drain(amqp_url, tap)
    # The session's vhost is shared: bot requests other tests left behind are not this bot's.
    await _drain(amqp_url, BOT_REQUESTS.name)
    async with serve_fake_llm() as llm:
        hold = llm.hold_next()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
            "BATON_AMQP_URL": amqp_url,
            "BATON_STORE_URL": pg_url,
            "BATON_LLM_BASE_URL": llm.base_url,
            "BATON_METRICS_PORT": str(free_port()),
        }
        bot = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.bot",
            cwd=REPO_ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            ask = AskBot(
                request_id="graceful-1",
                conversation_id=424242,
                phone_number_id="900000000000001",
                wa_id="5511988887777",
                epoch=0,
                messages=(
                    BurstMessage(
                        wamid="wamid.G1", type="text", text="qual o prazo?", timestamp=utcnow()
                    ),
                ),
            )
            await broker.publish_command(ask)
            await hold.wait_arrived(timeout=30)
            bot.send_signal(signal.SIGTERM)  # mid-message: the LLM call is still in flight
            hold.release()
            code = await asyncio.wait_for(bot.wait(), 30)
        finally:
            if bot.returncode is None:
                bot.kill()
                await bot.wait()
        stderr = (await bot.stderr.read()).decode() if bot.stderr else ""
        assert code == 0, stderr[-2000:]
        assert len(llm.requests) == 1, "the request was redelivered to the bot"

    replies = [SendText.model_validate_json(b) for b in await _drain(amqp_url, tap)]
    assert [r.request_id for r in replies] == ["graceful-1"]
    assert await _drain(amqp_url, BOT_REQUESTS.name) == [], "the request was not acked"
