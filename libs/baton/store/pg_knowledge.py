"""Bot knowledge on PostgreSQL: stored knowledge bases, the past-answer index, retrieval.

The index is built by passes over new message rows (`index_past_answers`), not by triggers, so
neither the live insert path nor the history import's COPY pays for it. A pass pairs every new
business answer (agent, owner from the phone, bot) with the customer's messages since the
business last spoke in that conversation, and stores the pair's text-search vector in the
number's language. The same words answered the same way are one pair, counted in `uses`.
Passes are serialised by a row lock, and each answer row is counted once
(`knowledge_answers_seen`), so a pass repeated or overlapping another changes nothing.

The pass also counts, per number, how many distinct pairs hold each lexeme (`knowledge_lexemes`).
Retrieval reads those counts to bound its candidates (baton.knowledge.retrieval: a rare word
selects alone, common words two together) and adds the number's repeated pairs sharing any word;
it ranks them by full-text match against every lexeme of the question (an OR, so paraphrases
that share some words are found) plus trigram similarity (typos, inflections the stemmer
misses), within one number only, and shows each answer once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from baton.knowledge import Knowledge
from baton.knowledge.retrieval import candidate_query, distinct_answers
from baton.store.knowledge_records import PastAnswer, StoredKnowledge
from baton.store.pg_search import search_config
from baton.types import Author, PhoneNumberId

# A row with an id below `high` that commits this much later than its neighbours is still
# found: the late scan covers ids the mark passed at least this long ago.
LATE_COMMIT_SECONDS = 60

_ANSWER_AUTHORS = [Author.HUMAN.value, Author.APP.value, Author.BOT.value]

_INDEX_PASS = """
WITH new_rows AS (
    SELECT a.id FROM messages a
     WHERE a.id > $7 AND a.author = ANY($2::text[])
     ORDER BY a.id
     LIMIT $4
), late_rows AS (
    SELECT a.id FROM messages a
     WHERE a.id > $1 AND a.id <= $7 AND a.author = ANY($2::text[])
       AND NOT EXISTS (SELECT 1 FROM knowledge_answers_seen s WHERE s.answer_id = a.id)
     LIMIT $4
), seen AS (
    INSERT INTO knowledge_answers_seen (answer_id)
    SELECT id FROM new_rows UNION SELECT id FROM late_rows
    ON CONFLICT DO NOTHING
    RETURNING answer_id
), fresh AS (
    SELECT a.id, a.conversation_id, a.phone_number_id, a.author, a.body, a.sent_at, a.imported
      FROM messages a JOIN seen ON seen.answer_id = a.id
     WHERE a.body <> '' AND NOT (a.author = 'bot' AND a.body LIKE ANY($3::text[]))
), paired AS (
    SELECT a.phone_number_id, min(a.conversation_id) AS conversation_id,
           left(q.question, 2000) AS question, left(a.body, 4000) AS answer,
           (array_agg(a.author ORDER BY a.sent_at DESC))[1] AS author,
           max(a.sent_at) AS answered_at, bool_and(a.imported) AS imported, count(*) AS uses
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
     GROUP BY a.phone_number_id, left(q.question, 2000), left(a.body, 4000)
), configs AS (
    SELECT key AS phone_number_id, value::regconfig AS config FROM jsonb_each_text($5::jsonb)
), inserted AS (
    INSERT INTO knowledge_pairs AS k (phone_number_id, conversation_id, question, answer,
                                      answer_author, answered_at, imported, uses, tsv, keys)
    SELECT p.phone_number_id, p.conversation_id, p.question, p.answer, p.author, p.answered_at,
           p.imported, p.uses, v.tsv,
           array_to_tsvector(ARRAY(
               SELECT p.phone_number_id || ':' || w FROM unnest(tsvector_to_array(v.tsv)) AS w))
      FROM paired p LEFT JOIN configs c USING (phone_number_id)
      CROSS JOIN LATERAL (
          SELECT to_tsvector(COALESCE(c.config, $6::regconfig), p.question) AS tsv
      ) v
    ON CONFLICT (phone_number_id, md5(question), md5(answer)) DO UPDATE
       SET uses = k.uses + EXCLUDED.uses,
           answered_at = GREATEST(k.answered_at, EXCLUDED.answered_at),
           imported = k.imported AND EXCLUDED.imported
    RETURNING k.phone_number_id, k.tsv, k.xmax = 0 AS created
), counted AS (
    -- A new pair's lexemes, counted for the candidate search; a pair counted again adds none.
    INSERT INTO knowledge_lexemes AS l (phone_number_id, lexeme, pairs)
    SELECT i.phone_number_id, w.lexeme, count(*)
      FROM inserted i, unnest(tsvector_to_array(i.tsv)) AS w(lexeme)
     WHERE i.created
     GROUP BY i.phone_number_id, w.lexeme
    ON CONFLICT (phone_number_id, lexeme) DO UPDATE SET pairs = l.pairs + EXCLUDED.pairs
)
SELECT (SELECT count(*) FROM inserted) AS indexed,
       (SELECT count(*) FROM new_rows) AS scanned,
       (SELECT max(id) FROM new_rows) AS high
"""

_ADVANCE = """
UPDATE knowledge_index_state
   SET high = GREATEST(high, COALESCE($1, high)),
       low = CASE WHEN mark_at < now() - make_interval(secs => $2) THEN mark ELSE low END,
       mark = CASE WHEN mark_at < now() - make_interval(secs => $2) THEN high ELSE mark END,
       mark_at = CASE WHEN mark_at < now() - make_interval(secs => $2) THEN now() ELSE mark_at END
 WHERE id = 1
"""

# How many of the number's pairs hold each lexeme of the question: the input of the bounded
# candidate search (baton.knowledge.retrieval).
_LEXEMES = """
SELECT w.lexeme, COALESCE(k.pairs, 0) AS pairs
  FROM unnest(tsvector_to_array(to_tsvector($2::regconfig, $3))) AS w(lexeme)
  LEFT JOIN knowledge_lexemes k ON k.phone_number_id = $1 AND k.lexeme = w.lexeme
"""

# Candidates by the narrow query (capped: a safety net, never the usual case), and the number's
# most used pairs that share any word with the question (its canonical answers, found even when
# the question's words are all common); ranked by full text against every word of the question,
# then one ranking of both scores in [0, 1]: the text
# rank, and trigram similarity for the words the stemmer does not join. A trigram candidate
# search of its own was measured (bench/retrieval.py): it found nothing the text search missed
# and cost most of the time.
_RETRIEVE = """
WITH candidates AS (
    (SELECT p.id, p.tsv FROM knowledge_pairs p
      WHERE p.keys @@ $4::tsquery AND p.phone_number_id = $1
      LIMIT $7)
    UNION
    (SELECT f.id, f.tsv
       FROM (SELECT p.id, p.tsv FROM knowledge_pairs p
              WHERE p.phone_number_id = $1 AND p.uses > 1
              ORDER BY p.uses DESC
              LIMIT $8) f
      WHERE f.tsv @@ $5::tsquery)
), by_text AS (
    SELECT c.id, ts_rank_cd(c.tsv, $5::tsquery, 1) AS fts
      FROM candidates c
     ORDER BY fts DESC
     LIMIT $6
)
SELECT p.id, p.conversation_id, p.question, p.answer, p.answer_author, p.imported, p.uses,
       (c.fts / (c.fts + 0.1)) + similarity(p.question, $2) AS score
  FROM by_text c JOIN knowledge_pairs p USING (id)
 ORDER BY score DESC, p.uses DESC, p.answered_at DESC
 LIMIT $3
"""

# At most this many pairs of the narrow search are ranked by full text for one retrieval.
CANDIDATE_CAP = 2000
# The number's most used pairs, looked at for every retrieval.
FREQUENT_PAIRS = 1000


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
    ) -> tuple[int, bool]:
        """One indexing pass: how many pairs it added or counted again, and whether more new
        rows wait."""
        configs = {number: search_config(language) for number, language in languages.items()}
        patterns = [_like_prefix(prefix) for prefix in skip_bot_prefixes]
        async with self._pool.acquire() as conn, conn.transaction():
            state = await conn.fetchrow(
                "SELECT low, high FROM knowledge_index_state WHERE id = 1 FOR UPDATE"
            )
            assert state is not None
            row = await conn.fetchrow(
                _INDEX_PASS,
                state["low"],
                _ANSWER_AUTHORS,
                patterns,
                batch,
                configs,
                search_config(default_language),
                state["high"],
            )
            assert row is not None
            await conn.execute(_ADVANCE, row["high"], LATE_COMMIT_SECONDS)
            return int(row["indexed"]), row["scanned"] >= batch

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
        async with self._pool.acquire() as conn:
            counts = await conn.fetch(_LEXEMES, phone_number_id, search_config(language), text)
            query = candidate_query(
                {row["lexeme"]: row["pairs"] for row in counts}, key=phone_number_id
            )
            if query is None:
                return []
            rows = await conn.fetch(
                _RETRIEVE,
                phone_number_id,
                text,
                limit * 4,  # room for the near-copies distinct_answers skips
                query.narrow,
                query.wide,
                candidates,
                CANDIDATE_CAP,
                FREQUENT_PAIRS,
            )
        kept = distinct_answers([row["answer"] for row in rows], limit)
        return [
            PastAnswer(
                pair_id=row["id"],
                conversation_id=row["conversation_id"],
                question=row["question"],
                answer=row["answer"],
                author=Author(row["answer_author"]),
                imported=row["imported"],
                uses=row["uses"],
                score=float(row["score"]),
            )
            for row in (rows[position] for position in kept)
        ]


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
