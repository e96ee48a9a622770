"""The bounded candidate search of past answers on real PostgreSQL (migration 0061).

The indexing pass counts each distinct pair's lexemes per number; retrieval reads the counts so
a question's rare words select candidates alone and its common words only two together.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from baton.knowledge.retrieval import RARE_PAIRS, quote_lexeme
from baton.store import PostgresStore
from baton.store.history_records import ChunkStart, HistoryRow
from tests.conftest import unique

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, 9, tzinfo=UTC)


def _pairs(wa_id: str, exchanges: list[tuple[str, str]]) -> list[HistoryRow]:
    rows = []
    for n, (question, answer) in enumerate(exchanges):
        for k, (author, body) in enumerate((("customer", question), ("app", answer))):
            rows.append(
                HistoryRow(
                    wa_id=wa_id,
                    wamid=unique("wamid"),
                    direction="in" if author == "customer" else "out",
                    author=author,
                    type="text",
                    body=body,
                    payload="{}",
                    sent_at=START + timedelta(minutes=2 * n + k),
                    status=None,
                    status_rank=0,
                )
            )
    return rows


async def _import_and_index(
    store: PostgresStore, number: str, exchanges: list[tuple[str, str]]
) -> None:
    key = unique("chunk")
    rows = _pairs(unique("55"), exchanges)
    await store.begin_history_chunk(
        ChunkStart(phone_number_id=number, chunk_key=key, kind="chunk", messages_total=len(rows))
    )
    assert await store.store_history_rows(number, key, rows) == len(rows)
    more = True
    while more:
        _, more = await store.index_past_answers(
            languages={number: "pt-BR"}, default_language="pt-BR", batch=5000
        )


async def _counts(store: PostgresStore, number: str) -> dict[str, int]:
    rows = await store._pool.fetch(
        "SELECT lexeme, pairs FROM knowledge_lexemes WHERE phone_number_id = $1", number
    )
    return {row["lexeme"]: row["pairs"] for row in rows}


async def test_each_distinct_pair_counts_its_lexemes_once_per_number(
    store: PostgresStore,
) -> None:
    ours, theirs = unique("pn"), unique("pn")
    await _import_and_index(
        store,
        ours,
        [
            ("Vocês entregam em Campinas?", "Entregamos sim."),
            ("Vocês entregam em Campinas?", "Entregamos sim."),  # the same pair: counted in uses
            ("Vocês entregam em Santos?", "Entregamos sim."),
        ],
    )
    await _import_and_index(store, theirs, [("Vocês entregam em Santos?", "Não.")])
    assert await _counts(store, ours) == {"entreg": 2, "campin": 1, "sant": 1}
    assert await _counts(store, theirs) == {"entreg": 1, "sant": 1}
    # A later import of the same pair again counts a use, not its lexemes.
    await _import_and_index(store, ours, [("Vocês entregam em Campinas?", "Entregamos sim.")])
    assert await _counts(store, ours) == {"entreg": 2, "campin": 1, "sant": 1}
    found = await store.retrieve_past_answers(
        ours, "entregam em Campinas", language="pt-BR", limit=1
    )
    assert [(past.question, past.uses) for past in found] == [("Vocês entregam em Campinas?", 3)]


async def test_common_words_select_only_together_and_a_rare_word_alone(
    store: PostgresStore,
) -> None:
    number = unique("pn")
    common = RARE_PAIRS + 10
    # Hundreds of pairs that share one common word with the question each ("pedido", "entrega"):
    # ranking them all is what a bounded search avoids.
    filler = [(f"pedido {i}", f"ok pedido {i}") for i in range(common)]
    filler += [(f"entrega {i}", f"ok entrega {i}") for i in range(common)]
    wanted = [
        ("pedido com entrega expressa", "A entrega expressa sai hoje."),
        ("moro em Sorocaba", "Atendemos Sorocaba."),
        # Given again and again: a canonical answer, ranked though it shares one common word.
        ("como faço um pedido?", "Pedidos pelo site."),
        ("como faço um pedido?", "Pedidos pelo site."),
    ]
    await _import_and_index(store, number, filler + wanted)
    counts = await _counts(store, number)
    assert counts["ped"] > RARE_PAIRS and counts["entreg"] > RARE_PAIRS
    found = await store.retrieve_past_answers(
        number, "quero um pedido com entrega em Sorocaba", language="pt-BR", limit=5
    )
    assert sorted(past.answer for past in found) == [
        "A entrega expressa sai hoje.",
        "Atendemos Sorocaba.",
        "Pedidos pelo site.",
    ]
    # One common word is the whole question: it is searched, and a word no pair holds is not.
    alone = await store.retrieve_past_answers(number, "entrega", language="pt-BR", limit=3)
    assert len(alone) == 3 and all("entrega" in past.question for past in alone)
    assert await store.retrieve_past_answers(number, "xilofone", language="pt-BR", limit=3) == []


@pytest.mark.parametrize("lexeme", ["it's", "a\\b", "ção", "'", "\\"])
async def test_a_quoted_lexeme_matches_exactly_that_lexeme(
    store: PostgresStore, lexeme: str
) -> None:
    matches = await store._pool.fetchval(
        "SELECT array_to_tsvector(ARRAY[$1::text]) @@ $2::tsquery", lexeme, quote_lexeme(lexeme)
    )
    assert matches is True
