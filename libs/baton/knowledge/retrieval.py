"""Which past answers are worth ranking: a bounded candidate search from lexeme frequencies.

An OR of every word of a question finds every pair that shares a single word with it; at a
million messages a word like "entrega" or "pedido" is in tens of thousands of pairs, and ranking
them all is what made retrieval slow. A pair worth showing either shares a rare word with the
question (a city, a product model, a name) or shares at least two of its words. So the
candidates are the pairs that hold one of the question's rare lexemes, or two of its rarest
ones together; the ranking then scores them against every word of the question, as before.
The examples shown are distinct answers: five copies of one reply teach the model nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import combinations

from pydantic import BaseModel, ConfigDict

# A lexeme found in at most this many of the number's pairs selects candidates on its own.
RARE_PAIRS = 300
# The rarest lexemes of a question whose every two together select candidates.
PAIRED_LEXEMES = 6
# Two answers sharing this share of their words are one answer given twice: the model is shown
# it once (agents greet customers by name, so the same reply is stored as distinct pairs).
ANSWERS_ALIKE = 0.7


class CandidateQuery(BaseModel):
    """Two text-search queries: which pairs to rank (`narrow`), and how to rank them (`wide`)."""

    model_config = ConfigDict(frozen=True)

    narrow: str  # tsquery text over the pairs' keyed lexemes ("<key>:<lexeme>")
    wide: str  # tsquery text: an OR of every lexeme the number's pairs hold


def candidate_query(
    frequencies: Mapping[str, int],
    *,
    key: str,
    rare: int = RARE_PAIRS,
    paired: int = PAIRED_LEXEMES,
) -> CandidateQuery | None:
    """The candidate search for a question, from how many of the number's pairs hold each of
    its lexemes (`narrow` matches lexemes keyed by `key`, the number); None when no pair holds
    any of them."""
    known = sorted((count, lexeme) for lexeme, count in frequencies.items() if count > 0)
    if not known:
        return None
    lexemes = [lexeme for _, lexeme in known]
    # One word: it is the whole question. Several: a common word alone selects too much, two
    # of them together are what the question is about (a pair with a rare one is in already).
    alone = lexemes if len(lexemes) == 1 else [lex for count, lex in known if count <= rare]
    keyed = {lexeme: quote_lexeme(f"{key}:{lexeme}") for lexeme in lexemes}
    together = [
        f"( {keyed[a]} & {keyed[b]} )"
        for a, b in combinations(lexemes[:paired], 2)
        if a not in alone and b not in alone
    ]
    clauses = [keyed[lexeme] for lexeme in alone] + together
    return CandidateQuery(
        narrow=" | ".join(clauses),
        wide=" | ".join(quote_lexeme(lexeme) for lexeme in lexemes),
    )


def quote_lexeme(lexeme: str) -> str:
    """A lexeme as a tsquery operand, taken verbatim (no parsing, no stemming again)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", text.casefold()))


def distinct_answers(
    answers: Sequence[str], limit: int, *, alike: float = ANSWERS_ALIKE
) -> list[int]:
    """The positions of the first `limit` answers, best first, skipping any answer whose words
    are mostly those of one already taken (the same reply with another customer's name)."""
    taken: list[int] = []
    seen: list[frozenset[str]] = []
    if limit <= 0:
        return taken
    for position, answer in enumerate(answers):
        words = _words(answer)
        if any(len(words & other) >= alike * len(words | other) for other in seen):
            continue
        taken.append(position)
        seen.append(words)
        if len(taken) == limit:
            break
    return taken
