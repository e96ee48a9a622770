"""Message search picks the text-search configuration of the number's language."""

from __future__ import annotations

import pytest

from baton.store.pg_search import search_config


@pytest.mark.parametrize(
    ("language", "config"),
    [
        ("pt-BR", "portuguese"),
        ("pt", "portuguese"),
        ("es", "spanish"),
        ("es-MX", "spanish"),
        ("en", "english"),
        ("en_US", "english"),
        ("fr", "portuguese"),  # unshipped: Baton's default language
        ("", "portuguese"),
    ],
)
def test_the_language_picks_the_configuration(language: str, config: str) -> None:
    assert search_config(language) == config
