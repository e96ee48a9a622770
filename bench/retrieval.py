"""Past-answer retrieval: quality (recall@5, MRR) and latency at 1 M stored messages.

    .venv/bin/python -m bench.retrieval [--messages 1000000] [--quality-messages 100000]

1. Quality: a synthetic six-month backlog (bench/retrieval_corpus.py) of `--quality-messages`
   messages over three numbers (pt-BR, es, en) goes in through the history import's COPY path;
   the indexing pass pairs the answers; then every intent is asked with paraphrases the backlog
   never contains. Prints recall@5 and MRR per language, and checks that no answer of a fourth
   number (same questions, other answers) is ever retrieved.
2. Indexing cost: the COPY import's rate, and the indexing pass's rate, over the same rows.
3. Latency: the pt-BR number grows to `--messages` stored messages; p50/p99 of retrievals, beside
   the p50/p99 at the quality size and a `SELECT 1` round trip measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from baton.store import PostgresStore, open_store
from baton.store.history_records import ChunkStart, HistoryRow
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


async def evaluate(store: PostgresStore, pool: list[Intent]) -> dict[str, tuple[float, float, int]]:
    """recall@5 and MRR per language over every held-out paraphrase."""
    by_answer = {intent.answer: intent.key for intent in pool}
    results: dict[str, list[float]] = {}
    for intent in pool:
        number = NUMBERS[intent.language]
        for question in intent.eval_questions:
            found = await store.retrieve_past_answers(
                number, question, language=intent.language, limit=5
            )
            assert all("OUTRO-NUMERO" not in past.answer for past in found), "crossed numbers"
            ranks = [
                i for i, past in enumerate(found, 1) if by_answer.get(past.answer) == intent.key
            ]
            results.setdefault(intent.language, []).append(1.0 / ranks[0] if ranks else 0.0)
    return {
        language: (
            sum(1 for r in rr if r > 0) / len(rr),
            sum(rr) / len(rr),
            len(rr),
        )
        for language, rr in results.items()
    }


async def latencies(store: PostgresStore, pool: list[Intent], queries: int) -> list[float]:
    pt = [i for i in pool if i.language == "pt-BR"]
    times = []
    for k in range(queries):
        intent = pt[k % len(pt)]
        question = intent.eval_questions[k % len(intent.eval_questions)]
        started = time.perf_counter()
        await store.retrieve_past_answers(NUMBERS["pt-BR"], question, language="pt-BR", limit=5)
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


async def main(total_messages: int, quality_messages: int, queries: int, keep: bool) -> None:
    name = f"bench_retrieval_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    store = await open_store(url, migrate=True)
    assert isinstance(store, PostgresStore)
    try:
        pool = intents()
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
            f"{index_seconds:.1f} s) = {copy_rate * loader.copy_seconds / index_seconds / copy_rate:.2f}"
            f"x the import's rate, run after it, off the COPY path"
        )
        quality = await evaluate(store, pool)
        for language, (recall, mrr, n) in sorted(quality.items()):
            print(f"quality {language}: recall@5 {recall:.3f}  MRR {mrr:.3f}  ({n} questions)")
        all_recall = sum(r * n for r, _, n in quality.values()) / sum(
            n for *_, n in quality.values()
        )
        all_mrr = sum(m * n for _, m, n in quality.values()) / sum(n for *_, n in quality.values())
        print(f"quality all: recall@5 {all_recall:.3f}  MRR {all_mrr:.3f}  (goal: recall@5 >= 0.8)")
        small = await latencies(store, pool, queries)
        base = await round_trips(store, queries)

        grow = max(0, total_messages - loader.messages) // 5
        await loader.load(NUMBERS["pt-BR"], "pt-BR", grow)
        more, more_seconds = await index_all(store)
        async with store._pool.acquire() as conn:
            await conn.execute("ANALYZE knowledge_pairs")
        print(
            f"grown to {loader.messages:,} messages ({more} more pairs indexed in {more_seconds:.1f} s)"
        )
        big = await latencies(store, pool, queries)
        quality_big = await evaluate(store, [i for i in pool if i.language == "pt-BR"])
        recall_big, mrr_big, _ = quality_big["pt-BR"]
        print(
            f"quality pt-BR at {loader.messages:,} messages: recall@5 {recall_big:.3f}  MRR {mrr_big:.3f}"
        )
        print(
            f"latency SELECT 1 baseline: p50 {pct(base, 0.5):.2f} ms  p99 {pct(base, 0.99):.2f} ms"
        )
        print(
            f"latency at {quality_messages:,}: p50 {pct(small, 0.5):.2f} ms  p99 {pct(small, 0.99):.2f} ms"
        )
        print(
            f"latency at {loader.messages:,}: p50 {pct(big, 0.5):.2f} ms  p99 {pct(big, 0.99):.2f} ms  "
            f"(x{pct(big, 0.99) / pct(small, 0.99):.2f} the p99 at the quality size; goal p99 < 50 ms)"
        )
        print(f"mean {statistics.mean(big) * 1000:.2f} ms over {queries} retrievals")
    finally:
        await store.close()
        if keep:
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
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.quality_messages, args.queries, args.keep))
