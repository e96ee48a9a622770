"""The LLM client and the brain's LLM paths against the fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry

from baton.messages import AskBot, BurstMessage
from baton.settings import Settings
from baton.types import Author
from services.bot.brain import MAX_REPLY_CHARS, answer
from services.bot.llm import (
    HANDOFF_TOOL_NAME,
    ChatMessage,
    HandoffCall,
    LLMClient,
    LLMReply,
    LLMUnavailable,
)
from services.bot.metrics import BotMetrics
from services.bot.policy import BotPolicy
from services.bot.texts import PT_BR
from services.bot.types import Handoff, HandoffReason, NoReply, Reply, Turn
from tests.fakes.llm import FakeLLM, Step, serve_fake_llm

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)
PROMPT = [ChatMessage(role="system", content="be nice"), ChatMessage(role="user", content="oi")]


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with serve_fake_llm() as running:
        yield running


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def client(fake: FakeLLM, registry: CollectorRegistry) -> AsyncIterator[LLMClient]:
    async with LLMClient(
        base_url=fake.base_url,
        model="fake-model",
        api_key="sk-test",
        timeout_seconds=2.0,
        max_attempts=3,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.05,
        metrics=BotMetrics(registry),
    ) as opened:
        yield opened


def requests_with(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value("baton_llm_requests_total", {"outcome": outcome})
    return value or 0.0


def gave_up(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("baton_llm_gave_up_total", {"reason": reason}) or 0.0


# --- the client ------------------------------------------------------------------------------


async def test_text_reply_and_request_shape(
    fake: FakeLLM, client: LLMClient, registry: CollectorRegistry
) -> None:
    reply = await client.complete(PROMPT)

    assert reply == LLMReply(content="Resposta: oi")
    [recorded] = fake.requests
    assert recorded.authorization == "Bearer sk-test"
    assert recorded.body["model"] == "fake-model"
    assert recorded.messages == [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "oi"},
    ]
    [tool] = recorded.body["tools"]
    assert tool["function"]["name"] == HANDOFF_TOOL_NAME
    assert tool["function"]["parameters"]["required"] == ["reason", "summary"]
    assert requests_with(registry, "ok") == 1
    assert registry.get_sample_value("baton_llm_latency_seconds_count") == 1


async def test_tool_call_is_parsed(fake: FakeLLM, client: LLMClient) -> None:
    fake.handoff_next(reason="angry", summary="wants refund for #123")
    reply = await client.complete(PROMPT)
    assert reply.handoff == HandoffCall(reason="angry", summary="wants refund for #123")
    assert reply.content == ""


async def test_tool_call_with_broken_arguments_still_hands_off(
    fake: FakeLLM, client: LLMClient
) -> None:
    fake.script(Step(kind="tool_call", arguments="{not json"))
    reply = await client.complete(PROMPT)
    assert reply.handoff == HandoffCall()


async def test_empty_content(fake: FakeLLM, client: LLMClient) -> None:
    fake.empty_next()
    assert await client.complete(PROMPT) == LLMReply(content="")


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_retries_then_succeeds(
    fake: FakeLLM, client: LLMClient, registry: CollectorRegistry, status: int
) -> None:
    fake.fail_next(2, status=status)
    fake.reply_next("finalmente")

    assert await client.complete(PROMPT) == LLMReply(content="finalmente")
    assert len(fake.requests) == 3
    failed = "rate_limited" if status == 429 else "server_error"
    assert requests_with(registry, failed) == 2
    assert requests_with(registry, "ok") == 1
    assert gave_up(registry, failed) == 0


async def test_retry_after_is_honoured(fake: FakeLLM, registry: CollectorRegistry) -> None:
    fake.fail_next(1, status=429, retry_after=0.3)
    async with LLMClient(
        base_url=fake.base_url,
        model="m",
        backoff_base_seconds=0.001,
        backoff_max_seconds=1.0,
        metrics=BotMetrics(registry),
    ) as client:
        started = time.monotonic()
        await client.complete(PROMPT)
    assert time.monotonic() - started >= 0.3
    assert len(fake.requests) == 2


async def test_retries_exhausted_raise_llm_unavailable(
    fake: FakeLLM, client: LLMClient, registry: CollectorRegistry
) -> None:
    fake.fail_next(5, status=503)

    with pytest.raises(LLMUnavailable) as raised:
        await client.complete(PROMPT)

    assert raised.value.reason == "server_error"
    assert raised.value.attempts == 3
    assert raised.value.status_code == 503
    assert len(fake.requests) == 3
    assert gave_up(registry, "server_error") == 1


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_client_errors_are_not_retried(
    fake: FakeLLM, client: LLMClient, registry: CollectorRegistry, status: int
) -> None:
    fake.fail_next(1, status=status)

    with pytest.raises(LLMUnavailable) as raised:
        await client.complete(PROMPT)

    assert raised.value.reason == "rejected"
    assert raised.value.attempts == 1
    assert raised.value.status_code == status
    assert len(fake.requests) == 1
    assert gave_up(registry, "rejected") == 1


async def test_timeout_is_retried(fake: FakeLLM, registry: CollectorRegistry) -> None:
    fake.hang_next(1)
    async with LLMClient(
        base_url=fake.base_url,
        model="m",
        timeout_seconds=0.2,
        max_attempts=2,
        backoff_base_seconds=0.01,
        metrics=BotMetrics(registry),
    ) as client:
        reply = await client.complete(PROMPT)
    assert reply.content == "Resposta: oi"
    assert requests_with(registry, "timeout") == 1
    assert requests_with(registry, "ok") == 1


async def test_a_slow_reply_past_the_deadline_is_a_timeout(
    fake: FakeLLM, registry: CollectorRegistry
) -> None:
    fake.reply_next("tarde demais", delay_seconds=1.0)
    async with LLMClient(
        base_url=fake.base_url,
        model="m",
        timeout_seconds=0.2,
        max_attempts=2,
        backoff_base_seconds=0.01,
        metrics=BotMetrics(registry),
    ) as client:
        reply = await client.complete(PROMPT)
    assert reply.content == "Resposta: oi"
    assert requests_with(registry, "timeout") == 1


async def test_timeouts_exhausted(fake: FakeLLM, registry: CollectorRegistry) -> None:
    fake.hang_next(2)
    async with LLMClient(
        base_url=fake.base_url,
        model="m",
        timeout_seconds=0.2,
        max_attempts=2,
        backoff_base_seconds=0.01,
        metrics=BotMetrics(registry),
    ) as client:
        with pytest.raises(LLMUnavailable) as raised:
            await client.complete(PROMPT)
    assert raised.value.reason == "timeout"
    assert raised.value.attempts == 2
    assert raised.value.status_code is None
    assert gave_up(registry, "timeout") == 1


async def test_bad_response_body_is_not_retried(
    fake: FakeLLM, client: LLMClient, registry: CollectorRegistry
) -> None:
    fake.script(Step(kind="malformed"))
    with pytest.raises(LLMUnavailable) as raised:
        await client.complete(PROMPT)
    assert raised.value.reason == "bad_response"
    assert raised.value.attempts == 1
    assert len(fake.requests) == 1
    assert gave_up(registry, "bad_response") == 1


async def test_connection_refused_is_a_transport_error(registry: CollectorRegistry) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with LLMClient(
        base_url=f"http://127.0.0.1:{port}/v1",
        model="m",
        max_attempts=2,
        backoff_base_seconds=0.01,
        metrics=BotMetrics(registry),
    ) as client:
        with pytest.raises(LLMUnavailable) as raised:
            await client.complete(PROMPT)
    assert raised.value.reason == "transport_error"
    assert raised.value.attempts == 2


def test_from_settings() -> None:
    assert LLMClient.from_settings(Settings(llm_base_url=None)) is None
    configured = LLMClient.from_settings(
        Settings(llm_base_url="http://127.0.0.1:1/v1"), metrics=BotMetrics(CollectorRegistry())
    )
    assert isinstance(configured, LLMClient)


# --- the brain with an LLM -------------------------------------------------------------------


def ask(*texts: str) -> AskBot:
    return AskBot(
        conversation_id=9,
        phone_number_id="pn1",
        wa_id="5511988887777",
        epoch=1,
        messages=tuple(
            BurstMessage(wamid=f"b{i}", type="text", text=t, timestamp=T0 + timedelta(seconds=i))
            for i, t in enumerate(texts)
        ),
    )


HISTORY = [
    Turn(author=Author.CUSTOMER, text="oi, meu pedido #4242 atrasou", at=T0 - timedelta(minutes=5)),
    Turn(author=Author.HUMAN, text="Vou verificar, um momento.", at=T0 - timedelta(minutes=4)),
]
POLICY = BotPolicy()


async def test_brain_replies_with_the_model_text(fake: FakeLLM, client: LLMClient) -> None:
    decision = await answer(ask("e aí?", "alguma novidade"), HISTORY, llm=client, policy=POLICY)

    assert decision == Reply(text="Resposta: e aí?\nalguma novidade")
    roles = [(m["role"], m["content"]) for m in fake.requests[0].messages[1:]]
    assert roles == [
        ("user", "oi, meu pedido #4242 atrasou"),
        ("assistant", "Vou verificar, um momento."),
        ("user", "e aí?\nalguma novidade"),
    ]


async def test_brain_caps_long_replies(fake: FakeLLM, client: LLMClient) -> None:
    fake.reply_next("x" * 5000)
    decision = await answer(ask("conta uma história"), [], llm=client, policy=POLICY)
    assert decision == Reply(text="x" * MAX_REPLY_CHARS)


async def test_brain_keyword_handoff_asks_the_llm_only_for_the_agents_summary(
    fake: FakeLLM, client: LLMClient
) -> None:
    fake.reply_next("Cliente quer saber do pedido 4242 atrasado e pediu um atendente.")
    decision = await answer(ask("quero falar com um atendente"), HISTORY, llm=client, policy=POLICY)
    assert decision == Handoff(
        reason=HandoffReason.CUSTOMER_ASKED,
        summary=(
            "Motivo: o cliente pediu para falar com uma pessoa\n"
            "Resumo: Cliente quer saber do pedido 4242 atrasado e pediu um atendente.\n"
            "Pedidos: 4242"
        ),
    )
    [call] = fake.requests
    messages = call.messages
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "human agent" in messages[0]["content"]
    assert "Brazilian Portuguese" in messages[0]["content"]
    assert "quero falar com um atendente" in messages[1]["content"]


async def test_brain_keyword_handoff_keeps_the_extractive_summary_when_the_llm_fails(
    fake: FakeLLM, client: LLMClient
) -> None:
    fake.fail_next(3, status=500)
    decision = await answer(ask("quero falar com um atendente"), HISTORY, llm=client, policy=POLICY)
    assert isinstance(decision, Handoff)
    assert decision.reason is HandoffReason.CUSTOMER_ASKED
    assert "Resumo" not in decision.summary
    assert "- quero falar com um atendente" in decision.summary
    assert "Pedidos: 4242" in decision.summary


async def test_brain_tool_call_hands_off_with_the_model_summary(
    fake: FakeLLM, client: LLMClient
) -> None:
    fake.handoff_next(reason="cliente irritado", summary="Quer reembolso do pedido atrasado.")
    decision = await answer(ask("isso é um absurdo"), HISTORY, llm=client, policy=POLICY)
    assert decision == Handoff(
        reason=HandoffReason.LLM_TOOL_CALL,
        summary=(
            "Motivo: cliente irritado\nResumo: Quer reembolso do pedido atrasado.\nPedidos: 4242"
        ),
    )


async def test_brain_hands_off_when_the_llm_stays_down(
    fake: FakeLLM, client: LLMClient, registry: CollectorRegistry
) -> None:
    fake.fail_next(3, status=500)
    decision = await answer(ask("e o meu pedido?"), HISTORY, llm=client, policy=POLICY)
    assert isinstance(decision, Handoff)
    assert decision.reason is HandoffReason.LLM_UNAVAILABLE
    assert "- e o meu pedido?" in decision.summary
    assert "Pedidos: 4242" in decision.summary
    assert gave_up(registry, "server_error") == 1


async def test_brain_cannot_help_marker_is_a_fallback_then_a_handoff(
    fake: FakeLLM, client: LLMClient
) -> None:
    fake.reply_next("[[CANNOT_HELP]]")
    first = await answer(ask("qual a cor do céu em marte?"), [], llm=client, policy=POLICY)
    assert first == Reply(
        text=PT_BR.llm_unanswered.format(cannot_answer=PT_BR.cannot_answer), answered=False
    )

    assert isinstance(first, Reply)
    history = [
        Turn(author=Author.CUSTOMER, text="?", at=T0 - timedelta(minutes=3)),
        Turn(author=Author.BOT, text=first.text, at=T0 - timedelta(minutes=2)),
        Turn(author=Author.CUSTOMER, text="??", at=T0 - timedelta(minutes=1)),
        Turn(author=Author.BOT, text=first.text, at=T0 - timedelta(seconds=30)),
    ]
    fake.reply_next("Hmm. [[CANNOT_HELP]]")
    third = await answer(ask("e agora?"), history, llm=client, policy=POLICY)
    assert isinstance(third, Handoff)
    assert third.reason is HandoffReason.BOT_FAILED


async def test_brain_empty_content_is_no_reply(fake: FakeLLM, client: LLMClient) -> None:
    fake.empty_next()
    assert await answer(ask("ok obrigado"), [], llm=client, policy=POLICY) == NoReply()


async def test_a_held_call_waits_for_its_release(fake: FakeLLM, client: LLMClient) -> None:
    hold = fake.hold_next()
    pending = asyncio.create_task(answer(ask("demora?"), [], llm=client, policy=POLICY))

    await hold.wait_arrived()
    assert not pending.done()
    hold.release()

    assert await asyncio.wait_for(pending, 5) == Reply(text="Resposta: demora?")


# --- the fake as a process, driven over HTTP -------------------------------------------------


@pytest.fixture
async def fake_process() -> AsyncIterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.llm", "--port", str(port)
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 10
            while True:
                try:
                    (await http.get(f"{base}/_control/requests")).raise_for_status()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or process.returncode is not None:
                        raise
                    await asyncio.sleep(0.05)
        yield base
    finally:
        process.terminate()
        await process.wait()


async def test_fake_as_a_process_is_scripted_over_http(
    fake_process: str, registry: CollectorRegistry
) -> None:
    async with (
        httpx.AsyncClient(base_url=fake_process) as control,
        LLMClient(
            base_url=f"{fake_process}/v1",
            model="m",
            backoff_base_seconds=0.01,
            metrics=BotMetrics(registry),
        ) as client,
    ):
        steps = [{"kind": "error", "status": 503}, {"kind": "reply", "text": "olá"}]
        (await control.post("/_control/steps", json={"steps": steps})).raise_for_status()
        assert await client.complete(PROMPT) == LLMReply(content="olá")

        hold_id = (await control.post("/_control/holds")).json()["hold_id"]
        pending = asyncio.create_task(client.complete(PROMPT))
        deadline = time.monotonic() + 5
        while not (await control.get(f"/_control/holds/{hold_id}")).json()["arrived"]:
            assert time.monotonic() < deadline, "the held call never arrived"
            await asyncio.sleep(0.02)
        assert not pending.done()
        (await control.post(f"/_control/holds/{hold_id}/release")).raise_for_status()
        assert await asyncio.wait_for(pending, 5) == LLMReply(content="Resposta: oi")

        recorded = (await control.get("/_control/requests")).json()
        assert len(recorded) == 3
        (await control.post("/_control/reset")).raise_for_status()
        assert (await control.get("/_control/requests")).json() == []
