"""The store port and its adapters; `open_store(url)` picks the adapter by the URL's scheme."""

from __future__ import annotations

from baton.store.port import Store
from baton.store.postgres import PostgresStore, ensure_database


async def open_store(url: str, *, migrate: bool = False) -> PostgresStore:
    """Open the adapter for `url` (postgresql://…); optionally create the DB and migrate it."""
    scheme = url.split("://", 1)[0]
    if scheme in ("postgresql", "postgres"):
        if migrate:
            await ensure_database(url)
        store = await PostgresStore.open(url)
        if migrate:
            await store.migrate()
        return store
    if scheme in ("mongodb", "mongodb+srv"):
        raise NotImplementedError(
            "the MongoDB adapter is not built yet; use a postgresql:// BATON_STORE_URL"
        )
    raise ValueError(f"unsupported store URL scheme {scheme!r} (expected postgresql://)")


__all__ = ["PostgresStore", "Store", "ensure_database", "open_store"]
