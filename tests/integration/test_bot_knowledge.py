"""Retrieval over a number's own history: indexed from imports and live traffic, never crossed.

Real PostgreSQL (the COPY import path and the indexing pass), the real broker, and the fake LLM
as a real HTTP server: the test reads the prompt the bot actually sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from baton.broker import Broker, Delivery
from baton.messages import AskBot, BurstMessage
from baton.settings import NumbersConfig, NumberSettings
from baton.store import PostgresStore
from baton.store.history_records import ChunkStart, HistoryRow
from services.bot.app import Bot
from services.bot.knowledge import CANNOT_ANSWER_PREFIXES
from services.bot.llm import LLMClient
from tests.conftest import unique
from tests.fakes.llm import FakeLLM, serve_fake_llm

pytestmark = pytest.mark.integration

START = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with serve_fake_llm() as running:
        yield running


def _row(wa_id: str, n: int, author: str, body: str) -> HistoryRow:
    return HistoryRow(
        wa_id=wa_id,
        wamid=unique(f"wamid.{n}"),
        direction="in" if author == "customer" else "out",
        author=author,
        type="text",
        body=body,
        payload="{}",
        sent_at=START + timedelta(minutes=n),
        status=None,
        status_rank=0,
    )


async def _import(store: PostgresStore, number: str, rows: list[HistoryRow]) -> None:
    key = unique("chunk")
    await store.begin_history_chunk(
        ChunkStart(phone_number_id=number, chunk_key=key, kind="chunk", messages_total=len(rows))
    )
    assert await store.store_history_rows(number, key, rows) == len(rows)


async def _index_everything(store: PostgresStore, numbers: dict[str, str]) -> None:
    more = True
    while more:
        _, more = await store.index_past_answers(
            languages=numbers,
            default_language="pt-BR",
            skip_bot_prefixes=CANNOT_ANSWER_PREFIXES,
            batch=2,
        )


async def test_the_bot_prompt_carries_this_numbers_imported_answer_and_never_anothers(
    store: PostgresStore, broker: Broker, fake: FakeLLM
) -> None:
    ours, theirs = unique("pn"), unique("pn")
    past, other, stranger = unique("55"), unique("55"), unique("55")
    # Our backlog: the only place the answer about the Campinas store exists.
    await _import(
        store,
        ours,
        [
            _row(past, 1, "customer", "Vocês têm loja física em Campinas?"),
            _row(past, 2, "app", "Temos sim! Rua Barão de Jaguara 1200, aberta até as 20h."),
            _row(past, 3, "customer", "qual o telefone de vocês? o meu é 11 98765-4321"),
            _row(past, 4, "app", "Anota: 19 3232-1000, ou escreve para contato@loja.com"),
        ],
    )
    # Another number with the same question and a different answer.
    await _import(
        store,
        theirs,
        [
            _row(stranger, 1, "customer", "Vocês têm loja física em Campinas?"),
            _row(stranger, 2, "app", "Não, só vendemos online. SEGREDO-DO-OUTRO-NUMERO"),
        ],
    )
    await _index_everything(store, {ours: "pt-BR", theirs: "pt-BR"})

    fake.reply_next("Temos sim, na Rua Barão de Jaguara.")
    numbers = NumbersConfig(numbers={ours: NumberSettings(phone_number_id=ours)})
    async with LLMClient(base_url=fake.base_url, model="fake", max_attempts=1) as llm:
        await broker.declare_topology()  # the bot publishes its reply to the outbox
        bot = Bot(store, broker, llm, numbers)
        conversation = await store.conversation(ours, other)
        request = AskBot(
            conversation_id=conversation.id,
            phone_number_id=ours,
            wa_id=other,
            epoch=0,
            messages=(
                BurstMessage(
                    wamid=unique("wamid.live"),
                    type="text",
                    text="vcs tem loja em campinas?",
                    timestamp=datetime.now(UTC),
                ),
            ),
        )
        # The router asked this request: the conversation's fence expects it.
        state = await store.load_conversation_state(conversation.id)
        assert state is not None
        asked = state.model_copy(
            update={"current_request_id": request.request_id, "version": state.version + 1}
        )
        saved = await store.save_conversation_state(
            asked,
            expected_version=state.version,
            timers=None,
            effects=(),
            relay_after=datetime.now(UTC),
        )
        assert saved is not None
        await bot.on_request(
            Delivery(
                body=request.model_dump_json().encode(),
                type=AskBot.TYPE,
                message_id=unique("m"),
                correlation_id=None,
                routing_key=AskBot.TYPE,
                attempt=1,
            )
        )
    assert len(fake.requests) == 1
    prompt = "\n".join(str(m.get("content")) for m in fake.requests[0].messages)
    assert "Rua Barão de Jaguara 1200" in prompt, prompt
    assert "not facts about this customer" in prompt
    assert "SEGREDO-DO-OUTRO-NUMERO" not in prompt


async def test_live_answers_are_indexed_and_personal_data_is_masked_in_the_prompt(
    store: PostgresStore,
) -> None:
    number, customer = unique("pn"), unique("55")
    await _import(
        store,
        number,
        [
            _row(customer, 1, "customer", "quero o boleto do pedido 4521"),
            _row(customer, 2, "bot", "Desculpe, ainda não sei responder isso. Anotei: boleto."),
            _row(customer, 3, "customer", "me manda o boleto do pedido por email"),
            _row(customer, 4, "app", "Enviei para maria@exemplo.com, CPF 123.456.789-09"),
        ],
    )
    await _index_everything(store, {number: "pt-BR"})
    found = await store.retrieve_past_answers(
        number, "pode mandar o boleto por email?", language="pt-BR", limit=3
    )
    assert [answer.answer for answer in found] == [
        "Enviei para maria@exemplo.com, CPF 123.456.789-09"
    ], "the bot's 'cannot answer' reply teaches nothing and is not indexed"
    from services.bot.knowledge import examples_for_model

    shown = examples_for_model(found)
    assert shown is not None
    assert "maria@exemplo.com" not in shown and "123.456.789-09" not in shown
    assert "[email]" in shown and "[document]" in shown


async def test_indexing_is_idempotent_and_spanish_stems_match(store: PostgresStore) -> None:
    number, customer = unique("pn"), unique("34")
    await _import(
        store,
        number,
        [
            _row(customer, 1, "customer", "¿Cuánto tarda el envío a Sevilla?"),
            _row(customer, 2, "human", "Los envíos a Sevilla tardan dos días."),
        ],
    )
    await _index_everything(store, {number: "es"})
    await _index_everything(store, {number: "es"})
    found = await store.retrieve_past_answers(
        number, "cuanto tardan los envios", language="es", limit=5
    )
    assert [answer.answer for answer in found] == ["Los envíos a Sevilla tardan dos días."]
