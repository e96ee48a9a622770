"""`open_store` picks the adapter by the URL's scheme and refuses what it cannot serve."""

from __future__ import annotations

import pytest

from baton.store import open_store


async def test_a_mongodb_url_is_refused_with_a_clear_error() -> None:
    with pytest.raises(NotImplementedError, match="MongoDB adapter is not built yet"):
        await open_store("mongodb://127.0.0.1:27017/baton")


async def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported store URL scheme 'mysql'"):
        await open_store("mysql://127.0.0.1/baton")
