"""Bot knowledge on PostgreSQL: stored knowledge bases, the past-answer index, retrieval.

The index is built by passes over new message rows (`index_past_answers`), not by triggers, so
neither the live insert path nor the history import's COPY pays for it. A pass pairs every new
business answer (agent, owner from the phone, bot) with the customer's messages since the
business last spoke in that conversation, and stores the pair's text-search vector in the
number's language. Passes are serialised by a row lock and idempotent (a pair per answer row).

Retrieval ranks by full-text match (an OR of the question's lexemes, so paraphrases that share
some words are found) plus trigram similarity (typos, inflections the stemmer misses), within
one number only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from baton.knowledge import Knowledge
from baton.store.knowledge_records import PastAnswer, StoredKnowledge
from baton.store.pg_search import search_config
from baton.types import Author, PhoneNumberId

# The watermark only passes answers older than this: a lower id may still commit late, so
# younger rows are scanned again on the next pass (cheaply: made pairs are skipped by key).
RESCAN_SECONDS = 60

_ANSWER_AUTHORS = [Author.HUMAN.value, Author.APP.value, Author.BOT.value]

_INDEX_PASS = """
WITH answers AS (
    SELECT a.id, a.conversation_id, a.phone_number_id, a.author, a.body, a.sent_at, a.imported,
           a.created_at
      FROM messages a
     WHERE a.id > $1 AND a.author = ANY($2::text[])
     ORDER BY a.id
     LIMIT $4
), fresh AS (
    SELECT a.* FROM answers a
     WHERE a.body <> ''
       AND NOT (a.author = 'bot' AND a.body LIKE ANY($3::text[]))
       AND NOT EXISTS (SELECT 1 FROM knowledge_pairs p WHERE p.answer_id = a.id)
), paired AS (
    SELECT a.*, q.question
      FROM fresh a
      CROSS JOIN LATERAL (
          SELECT string_agg(c.body, ' ' ORDER BY c.sent_at, c.id) AS question
            FROM messages c
           WHERE c.conversation_id = a.conversation_id
             AND c.author = 'customer'
             AND c.body <> ''
             AND (c.sent_at, c.id) < (a.sent_at, a.id)
             AND c.sent_at > COALESCE((
                 SELECT max(b.sent_at) FROM messages b
                  WHERE b.conversation_id = a.conversation_id
                    AND b.author = ANY($2::text[])
                    AND (b.sent_at, b.id) < (a.sent_at, a.id)
             ), '-infinity'::timestamptz)
      ) q
     WHERE q.question IS NOT NULL
), configs AS (
    SELECT key AS phone_number_id, value::regconfig AS config FROM jsonb_each_text($5::jsonb)
), inserted AS (
    INSERT INTO knowledge_pairs (answer_id, phone_number_id, conversation_id, question, answer,
                                 answer_author, answered_at, imported, tsv)
    SELECT p.id, p.phone_number_id, p.conversation_id, left(p.question, 2000),
           left(p.body, 4000), p.author, p.sent_at, p.imported,
           to_tsvector(COALESCE(c.config, $6::regconfig), left(p.question, 2000))
      FROM paired p LEFT JOIN configs c USING (phone_number_id)
    ON CONFLICT (answer_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted) AS indexed,
       (SELECT max(id) FROM answers
         WHERE created_at < now() - make_interval(secs => $7)) AS settled
"""

# Candidates by full text and by trigram, then one ranking: both scores in [0, 1].
_RETRIEVE = """
WITH query AS (
    SELECT NULLIF(replace(plainto_tsquery($2::regconfig, $3)::text, '&', '|'), '')::tsquery AS q
), by_text AS (
    SELECT p.answer_id, ts_rank_cd(p.tsv, query.q, 1) AS fts
      FROM knowledge_pairs p, query
     WHERE p.phone_number_id = $1 AND query.q IS NOT NULL AND p.tsv @@ query.q
     ORDER BY fts DESC
     LIMIT $5
), by_trigram AS (
    SELECT p.answer_id, 0.0::real AS fts
      FROM knowledge_pairs p
     WHERE p.phone_number_id = $1 AND p.question % $3
     ORDER BY p.question <-> $3
     LIMIT $5
), candidates AS (
    SELECT answer_id, max(fts) AS fts FROM (
        SELECT * FROM by_text UNION ALL SELECT * FROM by_trigram
    ) u GROUP BY answer_id
)
SELECT p.answer_id, p.conversation_id, p.question, p.answer, p.answer_author, p.imported,
       (c.fts / (c.fts + 0.1)) + similarity(p.question, $3) AS score
  FROM candidates c JOIN knowledge_pairs p USING (answer_id)
 ORDER BY score DESC, p.answered_at DESC
 LIMIT $4
"""


class PostgresKnowledgeStore:
    """Mixin of `PostgresStore` for bot knowledge (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def load_knowledge(self, phone_number_id: PhoneNumberId) -> StoredKnowledge | None:
        row = await self._pool.fetchrow(
            "SELECT document, updated_at, updated_by FROM number_knowledge"
            " WHERE phone_number_id = $1",
            phone_number_id,
        )
        if row is None:
            return None
        return StoredKnowledge(
            knowledge=Knowledge.model_validate(row["document"]),
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
        )

    async def save_knowledge(
        self, phone_number_id: PhoneNumberId, knowledge: Knowledge, *, by: str
    ) -> StoredKnowledge:
        row = await self._pool.fetchrow(
            """
            INSERT INTO number_knowledge (phone_number_id, document, updated_by)
            VALUES ($1, $2::jsonb, $3)
            ON CONFLICT (phone_number_id) DO UPDATE
               SET document = EXCLUDED.document, updated_by = EXCLUDED.updated_by,
                   updated_at = now()
            RETURNING updated_at, updated_by
            """,
            phone_number_id,
            knowledge.model_dump(mode="json"),
            by,
        )
        assert row is not None
        return StoredKnowledge(
            knowledge=knowledge, updated_at=row["updated_at"], updated_by=row["updated_by"]
        )

    async def delete_knowledge(self, phone_number_id: PhoneNumberId) -> bool:
        status = await self._pool.execute(
            "DELETE FROM number_knowledge WHERE phone_number_id = $1", phone_number_id
        )
        return bool(status.endswith(" 1"))

    async def index_past_answers(
        self,
        *,
        languages: Mapping[PhoneNumberId, str],
        default_language: str,
        skip_bot_prefixes: Sequence[str] = (),
        batch: int = 5000,
    ) -> int:
        """One indexing pass over new messages; returns how many pairs it added."""
        configs = {number: search_config(language) for number, language in languages.items()}
        patterns = [_like_prefix(prefix) for prefix in skip_bot_prefixes]
        async with self._pool.acquire() as conn, conn.transaction():
            low = await conn.fetchval(
                "SELECT low_watermark FROM knowledge_index_state WHERE id = 1 FOR UPDATE"
            )
            row = await conn.fetchrow(
                _INDEX_PASS,
                low,
                _ANSWER_AUTHORS,
                patterns,
                batch,
                configs,
                search_config(default_language),
                RESCAN_SECONDS,
            )
            assert row is not None
            if row["settled"] is not None:
                await conn.execute(
                    "UPDATE knowledge_index_state SET low_watermark = $1 WHERE id = 1",
                    row["settled"],
                )
            return int(row["indexed"])

    async def retrieve_past_answers(
        self,
        phone_number_id: PhoneNumberId,
        text: str,
        *,
        language: str,
        limit: int,
        candidates: int = 50,
    ) -> list[PastAnswer]:
        """The `limit` past answers of this number whose questions best match `text`."""
        if not text.strip() or limit <= 0:
            return []
        rows = await self._pool.fetch(
            _RETRIEVE, phone_number_id, search_config(language), text, limit, candidates
        )
        return [
            PastAnswer(
                answer_id=row["answer_id"],
                conversation_id=row["conversation_id"],
                question=row["question"],
                answer=row["answer"],
                author=Author(row["answer_author"]),
                imported=row["imported"],
                score=float(row["score"]),
            )
            for row in rows
        ]


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
