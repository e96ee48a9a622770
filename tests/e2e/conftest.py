"""The whole stack as real processes, on this test session's vhost and database."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import GRAPH_API_VERSION, Ports, ServiceSpec, Stack, plan
from simulator import DEV_APP_SECRET


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


def fresh_ports() -> Ports:
    """A free port for every service (the bridge's is used only when Chatwoot is configured)."""
    return Ports(**{field.name: free_port() for field in dataclasses.fields(Ports)})


def numbers_file(workdir: Path, number: str, *, quiet: float = 0.3, cap: float = 2.0) -> Path:
    """A numbers file configuring one business number with a short debounce window."""
    path = workdir / "numbers.toml"
    path.write_text(
        f'[numbers."{number}"]\ndebounce_quiet_seconds = {quiet}\ndebounce_cap_seconds = {cap}\n'
    )
    return path


def fake_llm(port: int) -> ServiceSpec:
    """The fake LLM provider as a process (chat, speech-to-text and its control API)."""
    return ServiceSpec(
        "llm",
        (sys.executable, "-m", "tests.fakes.llm", "--port", str(port)),
        f"http://127.0.0.1:{port}/_control/requests",
    )


@contextlib.contextmanager
def launched(
    env: dict[str, str],
    ports: Ports,
    logs: Path,
    *,
    fakes: Sequence[ServiceSpec] = (),
    timeout: float = 60,
) -> Iterator[RunningStack]:
    """The fakes, the simulator and every configured service as processes, once all are ready."""
    stack = Stack([*fakes, *plan(env, ports, with_simulator=True)], env, logs)
    stack.start()
    try:
        asyncio.run(stack.wait_ready(timeout=timeout))
        yield RunningStack(stack, ports, env)
    finally:
        codes = stack.stop()
        # SIGTERM must stop every Baton service cleanly: drained, settled, exit code 0.
        not_ours = {"simulator", *(fake.name for fake in fakes)}
        unclean = {name: code for name, code in codes.items() if name not in not_ours and code}
        assert not unclean, f"services did not stop cleanly: {unclean}; logs in {logs}"


@pytest.fixture(scope="module")
def running_stack(
    amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    ports = fresh_ports()
    logs: Path = tmp_path_factory.mktemp("stack-logs")
    with launched(stack_env(amqp_url, pg_url, ports), ports, logs) as running:
        yield running
