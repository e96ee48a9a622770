"""Shared test harness: a throwaway PostgreSQL database and RabbitMQ vhost per test session.

Both servers are the real local ones (see README). Each session gets its own database and vhost,
so tests never see each other's queues or rows, and CI can run beside a developer's stack.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import asyncpg
import pytest

from baton.broker import Broker
from baton.store import PostgresStore, open_store
from simulator import Simulator, running_simulator

PG_ADMIN_URL = os.environ.get("BATON_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("BATON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = unique("baton_test").replace("-", "_")

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        store = await open_store(_db_url(name), migrate=True)
        await store.close()

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield _db_url(name)
    asyncio.run(drop())


def _db_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A fresh vhost on the local RabbitMQ, removed afterwards."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        pytest.fail("rabbitmqctl not found: the tests need the local RabbitMQ (see README)")
    vhost = unique("baton-test")
    subprocess.run([ctl, "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        [ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    yield AMQP_BASE.rstrip("/") + "/" + quote(vhost, safe="")
    subprocess.run([ctl, "delete_vhost", vhost], check=False, capture_output=True)


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(pg_url)
    yield opened
    await opened.close()


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    connected = Broker(amqp_url, name="tests")
    await connected.connect()
    yield connected
    await connected.close()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """The WhatsApp Cloud API simulator on loopback, fresh for each test."""
    async with running_simulator() as simulator:
        yield simulator
