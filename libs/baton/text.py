"""Text normalisation shared by the bot's rules and the handoff summary: folded word tokens."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"\w+")
_SPACES = re.compile(r"\s+")
_CLAUSE_BREAK = re.compile(r"[.,;:!?¿¡()\n]+")
# Apostrophes are dropped before tokenising so "don't" reads as one word ("dont").
_APOSTROPHES = str.maketrans("", "", "'\u2019`\u00b4")


def fold(text: str) -> str:
    """Lower-case `text` and strip accents ("Não É" → "nao e")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> tuple[str, ...]:
    """The folded word tokens of `text`; punctuation and emoji separate words and vanish."""
    return tuple(_WORD.findall(fold(text).translate(_APOSTROPHES)))


def clauses(text: str) -> list[str]:
    """`text` cut at punctuation, so that a negation stays within its own clause."""
    return [part for part in _CLAUSE_BREAK.split(text) if part.strip()]


def find(haystack: Sequence[str], needle: Sequence[str], start: int = 0) -> int:
    """Index of the first contiguous occurrence of `needle` in `haystack` from `start`, or -1."""
    size = len(needle)
    if size == 0:
        return -1
    for index in range(start, len(haystack) - size + 1):
        if tuple(haystack[index : index + size]) == tuple(needle):
            return index
    return -1


def without(tokens: Iterable[str], dropped: frozenset[str]) -> tuple[str, ...]:
    return tuple(token for token in tokens if token not in dropped)


def squash(text: str) -> str:
    """Collapse runs of whitespace (newlines included) into single spaces."""
    return _SPACES.sub(" ", text).strip()


def clip(text: str, limit: int) -> str:
    """`text` squashed and cut to at most `limit` characters, marking the cut with "…"."""
    flat = squash(text)
    if len(flat) <= limit:
        return flat
    return flat[: max(limit - 1, 0)].rstrip() + "…"
