"""Message search on PostgreSQL: full-text over a business number's history in its language.

Each shipped language has its own text-search configuration and its own expression index
(migration 0066); the query repeats the index's expression with the configuration spelled as a
constant, so the planner can use it. Results come newest first, paged by keyset on
(sent_at, id) like history pages.
"""

from __future__ import annotations

import asyncpg

from baton.store.search_records import MessageSearch, SearchHit, SearchPage
from baton.types import Author, Direction

# A per-number language code (pt-BR, es, en …) by its primary subtag → PostgreSQL configuration.
_CONFIGS = {"pt": "portuguese", "es": "spanish", "en": "english"}
_DEFAULT_CONFIG = "portuguese"  # Baton's default language is Brazilian Portuguese

_SEARCH = """
SELECT m.id, m.wamid, m.direction, m.author, m.type, m.body, m.sent_at, m.imported, m.status,
       m.error_code, m.error_reason, m.agent_id, m.conversation_id, c.wa_id,
       ts_headline('{config}'::regconfig, m.body, q,
                   'StartSel=«, StopSel=», MaxFragments=2, MaxWords=16, MinWords=5')
           AS snippet
  FROM websearch_to_tsquery('{config}'::regconfig, $2) AS q,
       messages m
  JOIN conversations c ON c.id = m.conversation_id
 WHERE m.phone_number_id = $1
   AND to_tsvector('{config}'::regconfig, m.body) @@ q
   AND ($3::bigint IS NULL OR m.conversation_id = $3)
   AND ($4::timestamptz IS NULL OR (m.sent_at, m.id) < ($4, $5))
 ORDER BY m.sent_at DESC, m.id DESC
 LIMIT $6
"""
_QUERIES = {config: _SEARCH.format(config=config) for config in _CONFIGS.values()}


def search_config(language: str) -> str:
    """The text-search configuration of a per-number language code."""
    primary = language.strip().replace("_", "-").split("-")[0].casefold()
    return _CONFIGS.get(primary, _DEFAULT_CONFIG)


def _hit(row: asyncpg.Record) -> SearchHit:
    return SearchHit(
        id=row["id"],
        wamid=row["wamid"],
        direction=Direction(row["direction"]),
        author=Author(row["author"]),
        type=row["type"],
        body=row["body"],
        sent_at=row["sent_at"],
        imported=row["imported"],
        status=row["status"],
        error_code=row["error_code"],
        error_reason=row["error_reason"],
        agent_id=row["agent_id"],
        conversation_id=row["conversation_id"],
        wa_id=row["wa_id"],
        snippet=row["snippet"],
    )


class PostgresSearchStore:
    """Mixin of `PostgresStore` for message search (uses `self._pool`)."""

    _pool: asyncpg.Pool

    async def search_messages(self, search: MessageSearch) -> SearchPage:
        before_at, before_id = search.before if search.before is not None else (None, None)
        rows = await self._pool.fetch(
            _QUERIES[search_config(search.language)],
            search.phone_number_id,
            search.text,
            search.conversation_id,
            before_at,
            before_id,
            search.limit + 1,
        )
        hits = tuple(_hit(row) for row in rows[: search.limit])
        return SearchPage(items=hits, has_more=len(rows) > search.limit)
