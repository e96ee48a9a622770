"""The whole stack as real processes, on this test session's vhost and database."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from baton.devstack import GRAPH_API_VERSION, Ports, Stack, plan
from tests.fakes.whatsapp import DEV_APP_SECRET


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RunningStack:
    stack: Stack
    ports: Ports
    env: dict[str, str]

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.ingest}/webhook"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.simulator}"

    def metrics_url(self, service: str) -> str:
        return f"http://127.0.0.1:{getattr(self.ports, service)}/metrics"


def stack_env(amqp_url: str, pg_url: str, ports: Ports, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.update(
        BATON_AMQP_URL=amqp_url,
        BATON_STORE_URL=pg_url,
        BATON_APP_SECRET=DEV_APP_SECRET,
        BATON_GRAPH_API_URL=f"http://127.0.0.1:{ports.simulator}/{GRAPH_API_VERSION}",
        BATON_LOG_JSON="true",
        BATON_LOG_LEVEL="DEBUG",
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def running_stack(
    amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    ports = Ports(
        ingest=free_port(),
        simulator=free_port(),
        router=free_port(),
        bot=free_port(),
        outbox=free_port(),
        history=free_port(),
        console=free_port(),
    )
    env = stack_env(amqp_url, pg_url, ports)
    logs: Path = tmp_path_factory.mktemp("stack-logs")
    stack = Stack(plan(env, ports, with_simulator=True), env, logs)
    stack.start()
    try:
        asyncio.run(stack.wait_ready(timeout=60))
        yield RunningStack(stack, ports, env)
    finally:
        codes = stack.stop()
        # SIGTERM must stop every Baton service cleanly: drained, settled, exit code 0.
        unclean = {name: code for name, code in codes.items() if name != "simulator" and code}
        assert not unclean, f"services did not stop cleanly: {unclean}; logs in {logs}"
