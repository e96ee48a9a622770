"""Past-answer retrieval: quality (recall@5, MRR) and latency at 1 M stored messages.

    .venv/bin/python -m bench.retrieval [--messages 1000000] [--queries 300] [--keep]
    .venv/bin/python -m bench.retrieval --database NAME   # measure a kept database again

1. Quality: a synthetic six-month backlog (bench/retrieval_corpus.py: intents, long-tail support
   talk, greetings) of `--quality-messages` messages over three numbers (pt-BR, es, en) goes in
   through the history import's COPY path; the indexing pass pairs the answers; then every
   intent is asked with paraphrases the backlog never contains. Prints recall@5 and MRR per
   language, and checks that no answer of a fourth number (same questions, other answers) is
   ever retrieved.
2. Indexing cost: the COPY import's rate, and the indexing pass's rate, over the same rows.
3. Latency: p50/p99 of retrievals at the quality size, then after the pt-BR number grows to
   `--messages` stored messages, beside a `SELECT 1` round trip.
Every measurement is made twice on the same database: the store's retrieval (bounded) and the
unbounded OR search of commit 0ef9da2 (baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from baton.store import PostgresStore, open_store
from baton.store.history_records import ChunkStart, HistoryRow
from baton.store.pg_search import search_config
from bench.retrieval_corpus import Intent, conversations, intents
from services.bot.knowledge import CANNOT_ANSWER_PREFIXES

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
START = datetime(2026, 1, 1, tzinfo=UTC)
SIX_MONTHS = timedelta(days=182)
NUMBERS = {"pt-BR": "910000000000001", "es": "910000000000002", "en": "910000000000003"}
OTHER = "910000000000009"  # same questions, other answers: must never be retrieved
BATCH = 2000


class Loader:
    """Writes conversations through the history import's COPY path, counting messages."""

    def __init__(self, store: PostgresStore, seed: int) -> None:
        self.store = store
        self.messages = 0
        self.copy_seconds = 0.0
        self._seed = seed
        self._conversation = 0

    async def load(
        self, number: str, language: str, count: int, *, answer_suffix: str = ""
    ) -> None:
        rows: list[HistoryRow] = []
        self._seed += 1
        step = SIX_MONTHS / max(count, 1)
        for index, turns in enumerate(conversations(language, count, self._seed)):
            self._conversation += 1
            wa_id = f"5511{self._conversation:09d}"
            at = START + step * index
            for offset, turn in enumerate(turns):
                body = turn.body + (answer_suffix if turn.author != "customer" else "")
                rows.append(
                    HistoryRow(
                        wa_id=wa_id,
                        wamid=f"wamid.{uuid.uuid4().hex}",
                        direction="in" if turn.author == "customer" else "out",
                        author=turn.author,
                        type="text",
                        body=body,
                        payload="{}",
                        sent_at=at + timedelta(seconds=30 * offset),
                        status=None,
                        status_rank=0,
                    )
                )
            if len(rows) >= BATCH:
                await self._flush(number, rows)
                rows = []
        await self._flush(number, rows)

    async def _flush(self, number: str, rows: list[HistoryRow]) -> None:
        if not rows:
            return
        key = uuid.uuid4().hex
        await self.store.begin_history_chunk(
            ChunkStart(
                phone_number_id=number, chunk_key=key, kind="chunk", messages_total=len(rows)
            )
        )
        started = time.perf_counter()
        stored = await self.store.store_history_rows(number, key, rows)
        self.copy_seconds += time.perf_counter() - started
        self.messages += stored


async def index_all(store: PostgresStore) -> tuple[int, float]:
    languages = {number: language for language, number in NUMBERS.items()} | {OTHER: "pt-BR"}
    started = time.perf_counter()
    total = 0
    more = True
    while more:
        added, more = await store.index_past_answers(
            languages=languages,
            default_language="pt-BR",
            skip_bot_prefixes=CANNOT_ANSWER_PREFIXES,
            batch=20000,
        )
        total += added
    return total, time.perf_counter() - started


# The retrieval of commit 0ef9da2 (an OR of every lexeme, each match ranked), run on the same
# database as the baseline: what the bounded candidate search is measured against.
_BASELINE = """
WITH query AS (
    SELECT NULLIF(replace(plainto_tsquery($2::regconfig, $3)::text, '&', '|'), '')::tsquery AS q
), candidates AS (
    SELECT p.id, ts_rank_cd(p.tsv, query.q, 1) AS fts
      FROM knowledge_pairs p, query
     WHERE p.phone_number_id = $1 AND query.q IS NOT NULL AND p.tsv @@ query.q
     ORDER BY fts DESC
     LIMIT 50
)
SELECT p.answer
  FROM candidates c JOIN knowledge_pairs p USING (id)
 ORDER BY (c.fts / (c.fts + 0.1)) + similarity(p.question, $3) DESC, p.uses DESC,
          p.answered_at DESC
 LIMIT $4
"""

# A retrieval: (number, question, language) -> the top five answers.
Retrieve = Callable[[str, str, str], Awaitable[list[str]]]


def current(store: PostgresStore) -> Retrieve:
    async def retrieve(number: str, question: str, language: str) -> list[str]:
        found = await store.retrieve_past_answers(number, question, language=language, limit=5)
        return [past.answer for past in found]

    return retrieve


def baseline(store: PostgresStore) -> Retrieve:
    async def retrieve(number: str, question: str, language: str) -> list[str]:
        rows = await store._pool.fetch(_BASELINE, number, search_config(language), question, 5)
        return [row["answer"] for row in rows]

    return retrieve


async def evaluate(retrieve: Retrieve, pool: list[Intent]) -> dict[str, tuple[float, float, int]]:
    """recall@5 and MRR per language over every held-out paraphrase.

    An answer is right when it is the intent's answer, with or without the customer's name.
    """
    results: dict[str, list[float]] = {}
    for intent in pool:
        number = NUMBERS[intent.language]
        for question in intent.eval_questions:
            found = await retrieve(number, question, intent.language)
            assert all("OUTRO-NUMERO" not in answer for answer in found), "crossed numbers"
            ranks = [i for i, answer in enumerate(found, 1) if answer.endswith(intent.answer)]
            results.setdefault(intent.language, []).append(1.0 / ranks[0] if ranks else 0.0)
    return {
        language: (
            sum(1 for r in rr if r > 0) / len(rr),
            sum(rr) / len(rr),
            len(rr),
        )
        for language, rr in results.items()
    }


async def latencies(retrieve: Retrieve, pool: list[Intent], queries: int) -> list[float]:
    pt = [i for i in pool if i.language == "pt-BR"]
    times = []
    for k in range(queries):
        intent = pt[k % len(pt)]
        question = intent.eval_questions[k % len(intent.eval_questions)]
        started = time.perf_counter()
        await retrieve(NUMBERS["pt-BR"], question, "pt-BR")
        times.append(time.perf_counter() - started)
    return times


async def round_trips(store: PostgresStore, queries: int) -> list[float]:
    times = []
    async with store._pool.acquire() as conn:
        for _ in range(queries):
            started = time.perf_counter()
            await conn.fetchval("SELECT 1")
            times.append(time.perf_counter() - started)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def pairs_of(store: PostgresStore, number: str) -> int:
    async with store._pool.acquire() as conn:
        await conn.execute("ANALYZE knowledge_pairs")
        count = await conn.fetchval(
            "SELECT count(*) FROM knowledge_pairs WHERE phone_number_id = $1", number
        )
    return int(count)


async def compare(
    store: PostgresStore, pool: list[Intent], queries: int, messages: int, languages: list[str]
) -> None:
    """Quality and latency of this design and the baseline on the database as it is now."""
    pairs = await pairs_of(store, NUMBERS["pt-BR"])
    asked = [i for i in pool if i.language in languages]
    for name, retrieve in (("baseline", baseline(store)), ("bounded", current(store))):
        await latencies(retrieve, pool, 20)  # warm the cache and the prepared statements
        times = await latencies(retrieve, pool, queries)
        quality = await evaluate(retrieve, asked)
        for language, (recall, mrr, n) in sorted(quality.items()):
            print(f"  {name} quality {language}: recall@5 {recall:.3f}  MRR {mrr:.3f}  ({n} q)")
        n_all = sum(n for *_, n in quality.values())
        recall_all = sum(r * n for r, _, n in quality.values()) / n_all
        mrr_all = sum(m * n for _, m, n in quality.values()) / n_all
        print(
            f"| {messages:,} | {pairs:,} | {name} | {pct(times, 0.5):.2f} | {pct(times, 0.99):.2f}"
            f" | {recall_all:.3f} | {mrr_all:.3f} | {'+'.join(languages)} |"
        )


async def main(
    total_messages: int, quality_messages: int, queries: int, keep: bool, reuse: str | None
) -> None:
    name = reuse or f"bench_retrieval_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    if reuse is None:
        await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    store = await open_store(url, migrate=True)
    assert isinstance(store, PostgresStore)
    pool = intents()
    header = (
        "| messages | distinct pairs (pt-BR number) | retrieval | p50 ms | p99 ms | recall@5"
        " | MRR | languages asked |"
    )
    try:
        if reuse is not None:
            async with store._pool.acquire() as conn:
                messages = int(await conn.fetchval("SELECT count(*) FROM messages"))
            await index_all(store)
            print(header)
            await compare(store, pool, queries, messages, ["pt-BR"])
            return
        loader = Loader(store, seed=7)
        per_language = quality_messages // 3 // 5  # about five messages a conversation
        for language, number in NUMBERS.items():
            await loader.load(number, language, per_language)
        await loader.load(OTHER, "pt-BR", per_language // 4, answer_suffix=" OUTRO-NUMERO")
        pairs, index_seconds = await index_all(store)
        copy_rate = loader.messages / loader.copy_seconds
        print(
            f"backlog: {loader.messages} messages in 4 numbers, {len(pool)} intents, "
            f"{sum(len(i.eval_questions) for i in pool)} held-out questions"
        )
        print(
            f"import (COPY path): {copy_rate:,.0f} messages/s; indexing pass: "
            f"{loader.messages / index_seconds:,.0f} messages/s ({pairs} pairs, "
            f"{index_seconds:.1f} s), run after it, off the COPY path"
        )
        base = await round_trips(store, queries)
        print(
            f"latency SELECT 1 baseline: p50 {pct(base, 0.5):.2f} ms  p99 {pct(base, 0.99):.2f} ms"
        )
        print(header)
        await compare(store, pool, queries, loader.messages, ["pt-BR", "es", "en"])

        grow = max(0, total_messages - loader.messages) // 5
        if grow:
            await loader.load(NUMBERS["pt-BR"], "pt-BR", grow)
            more, more_seconds = await index_all(store)
            print(
                f"grown to {loader.messages:,} messages ({more} more pairs indexed in"
                f" {more_seconds:.1f} s, {loader.messages / loader.copy_seconds:,.0f} messages/s"
                " by COPY)"
            )
            print(header)
            await compare(store, pool, queries, loader.messages, ["pt-BR"])
    finally:
        await store.close()
        if keep or reuse is not None:
            print(f"kept database {name}")
        else:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--quality-messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the database to inspect it")
    parser.add_argument("--database", help="measure a kept database again (no load)")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.quality_messages, args.queries, args.keep, args.database))
