"""Private RabbitMQ and PostgreSQL servers that a test may stop, restart and break at will.

Faults on the shared local servers (127.0.0.1:5672 and :5432) would break every other test
running at the same moment, so a fault-injection test starts its own, on free ports, under a
temporary directory that is removed afterwards (even when start-up or the test fails).

API (both are async context managers yielding a handle):

    async with private_broker() as rabbit:        # a RabbitMQ node of its own (~5 s to start)
        rabbit.url                                 # amqp://guest:guest@127.0.0.1:<port>/
        rabbit.node                                # its Erlang node name, for `rabbitmqctl -n`
        await rabbit.stop()                        # `stop_app`: connections drop, port refuses
        await rabbit.start()                       # `start_app`: back, durable queues intact
        await rabbit.restart()                     # stop() then start()
        await rabbit.close_connections("router")   # close every connection whose client-given
                                                   # name starts with the prefix; returns count
        await rabbit.connections()                 # [ConnectionInfo(name, pid)]
        await rabbit.list_consumers()              # [ConsumerInfo(queue, consumer_tag, ...)]
        await rabbit.consumed_queues()             # {queue name: consumer count}
        await rabbit.ctl("list_queues", "name")    # any rabbitmqctl command on this node

    async with private_postgres() as pg:           # a PostgreSQL 15 cluster of its own (~2 s)
        pg.url                                     # postgresql://postgres@127.0.0.1:<port>/postgres
        pg.database_url("baton")                   # same server, another database
        await pg.create_database("baton")          # returns its URL
        await pg.stop()                            # `pg_ctl stop -m fast`: clients disconnected
        await pg.start()
        await pg.restart()

For a module- or session-scoped pytest fixture (sync, no event loop of its own), the same as
plain context managers: `with broker_for_module() as rabbit:` / `with postgres_for_module() as pg:`
(the handles' async methods then run in whichever loop the test uses).

Nothing here touches the shared servers. The RabbitMQ node runs without plugins (no management
port to clash), with its own cookie, node name, AMQP and distribution ports, mnesia and log
directories; the PostgreSQL cluster runs as the `postgres` user with trust authentication, its
own port and socket directory, and fsync off (a test server, not a durable one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RABBITMQ_BIN = Path(os.environ.get("BATON_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
POSTGRES_BIN = Path(os.environ.get("BATON_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
POSTGRES_USER = "postgres"


class FaultInfraError(RuntimeError):
    """A private server could not be started, stopped or queried."""


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _run(
    argv: list[str], *, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise FaultInfraError(f"{argv[0]} timed out after {timeout}s") from None
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise FaultInfraError(f"{' '.join(argv)} exited {proc.returncode}: {text[-2000:]}")
    return text


def _kill_pid_file(path: Path) -> None:
    """Last resort: SIGKILL the process whose pid the file holds (first line)."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


# --- RabbitMQ ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionInfo:
    name: str  # the client-given connection_name ("" if none)
    pid: str  # what `rabbitmqctl close_connection` takes


@dataclass(frozen=True)
class ConsumerInfo:
    queue: str
    consumer_tag: str
    channel_pid: str
    active: bool  # False for a single-active-consumer queue's waiting consumers


class PrivateBroker:
    """A RabbitMQ node of this test's own; see the module docstring."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.node = f"baton-fault-{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        home = base / "home"
        for sub in ("home", "mnesia", "log"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "log.console = false\n"
        )
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")  # not the system's (it names the node)
        self._env = {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self._booted = False

    async def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run `rabbitmqctl -n <this node> <args>` and return its output."""
        return await _run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self._env,
            timeout=timeout,
        )

    async def _boot(self, *, timeout: float = 60.0) -> None:
        await _run([str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"], env=self._env)
        self._booted = True
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Fails at once while the node has not registered with epmd yet.
                await self.ctl("-q", "await_startup", "--timeout", "30", timeout=40)
                return
            except FaultInfraError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def start(self) -> None:
        """Start the node (first time) or its RabbitMQ application (after `stop`)."""
        if not self._booted:
            await self._boot()
        else:
            await self.ctl("start_app")
            await self.ctl("-q", "await_startup", "--timeout", "30", timeout=40)

    async def stop(self) -> None:
        """Stop the RabbitMQ application: every connection drops, the port refuses new ones."""
        await self.ctl("stop_app")

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def connections(self) -> list[ConnectionInfo]:
        # Tabular, not JSON: the JSON formatter renders pids in a form close_connection refuses.
        out = await self.ctl(
            "-q", "--no-table-headers", "list_connections", "pid", "client_properties"
        )
        found: list[ConnectionInfo] = []
        for line in out.splitlines():
            pid, _, properties = line.partition("\t")
            if pid.startswith("<"):
                match = _CONNECTION_NAME.search(properties)
                found.append(ConnectionInfo(match.group(1) if match else "", pid))
        return found

    async def close_connections(self, name_prefix: str, *, reason: str = "fault injection") -> int:
        """Close every connection whose client-given name starts with `name_prefix`."""
        closed = 0
        for conn in await self.connections():
            if conn.name.startswith(name_prefix):
                with contextlib.suppress(FaultInfraError):  # it may have gone by itself
                    await self.ctl("close_connection", conn.pid, reason)
                    closed += 1
        return closed

    async def list_consumers(self) -> list[ConsumerInfo]:
        rows = await self._json(
            "list_consumers", "queue_name", "consumer_tag", "channel_pid", "active"
        )
        return [
            ConsumerInfo(
                queue=str(row["queue_name"]),
                consumer_tag=str(row["consumer_tag"]),
                channel_pid=str(row["channel_pid"]),
                active=bool(row.get("active", True)),
            )
            for row in rows
        ]

    async def consumed_queues(self) -> dict[str, int]:
        """Queue name → number of consumers, for every queue that has one."""
        counts: dict[str, int] = {}
        for consumer in await self.list_consumers():
            counts[consumer.queue] = counts.get(consumer.queue, 0) + 1
        return counts

    async def _json(self, *args: str) -> list[dict[str, Any]]:
        out = await self.ctl("-q", *args, "--formatter", "json")
        text = out.strip()
        if not text:
            return []
        parsed = json.loads(text)
        return [row for row in parsed if isinstance(row, dict)]

    async def destroy(self) -> None:
        """Halt the node (kill it if it will not halt)."""
        if self._booted:
            try:
                await self.ctl("stop", timeout=30)
            except FaultInfraError:
                _kill_pid_file(self.base / "rabbit.pid")
            self._booted = False


# `{"connection_name","router"}` inside the Erlang term of the client properties.
_CONNECTION_NAME = re.compile(r'\{"connection_name",(?:longstr,)?"([^"]*)"\}')


@contextlib.asynccontextmanager
async def private_broker() -> AsyncIterator[PrivateBroker]:
    """A started private RabbitMQ node; halted and removed on exit."""
    base = Path(tempfile.mkdtemp(prefix="baton-rabbit-"))
    broker = PrivateBroker(base)
    try:
        await broker.start()
        yield broker
    finally:
        try:
            await broker.destroy()
        finally:
            shutil.rmtree(base, ignore_errors=True)


# --- PostgreSQL ---------------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own; see the module docstring."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.data = base / "data"
        self.sockets = base / "sockets"
        self.log = base / "postgres.log"
        self.url = self.database_url("postgres")
        self._initialized = False

    def database_url(self, name: str) -> str:
        return f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/{name}"

    async def _as_postgres(self, *argv: str, timeout: float = 60.0) -> str:
        if os.geteuid() == 0:
            return await _run(["runuser", "-u", POSTGRES_USER, "--", *argv], timeout=timeout)
        return await _run(list(argv), timeout=timeout)

    async def _init(self) -> None:
        self.sockets.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, POSTGRES_USER)
            shutil.chown(self.sockets, POSTGRES_USER)
        await self._as_postgres(
            str(POSTGRES_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            POSTGRES_USER,
            "-A",
            "trust",
            "--no-sync",
            "--no-instructions",
        )
        self._initialized = True

    async def start(self) -> None:
        if not self._initialized:
            await self._init()
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off"
        )
        await self._as_postgres(
            str(POSTGRES_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    async def stop(self, *, mode: str = "fast") -> None:
        """Stop the server; `fast` disconnects clients, `immediate` is a crash."""
        await self._as_postgres(
            str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"
        )

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def create_database(self, name: str) -> str:
        """CREATE DATABASE `name`; returns its URL."""
        import asyncpg  # only tests that use PostgreSQL pay for the import

        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.database_url(name)

    async def destroy(self) -> None:
        if not self._initialized:
            return
        if (self.data / "postmaster.pid").exists():
            try:
                await self.stop(mode="immediate")
            except FaultInfraError:
                _kill_pid_file(self.data / "postmaster.pid")


@contextlib.asynccontextmanager
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A started private PostgreSQL cluster; stopped and removed on exit."""
    base = Path(tempfile.mkdtemp(prefix="baton-pg-"))
    server = PrivatePostgres(base)
    try:
        await server.start()
        yield server
    finally:
        try:
            await server.destroy()
        finally:
            shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def broker_for_module() -> Iterator[PrivateBroker]:
    """`private_broker` for sync (module- or session-scoped) fixtures."""
    base = Path(tempfile.mkdtemp(prefix="baton-rabbit-"))
    broker = PrivateBroker(base)
    try:
        asyncio.run(broker.start())
        yield broker
    finally:
        try:
            asyncio.run(broker.destroy())
        finally:
            shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def postgres_for_module() -> Iterator[PrivatePostgres]:
    """`private_postgres` for sync (module- or session-scoped) fixtures."""
    base = Path(tempfile.mkdtemp(prefix="baton-pg-"))
    server = PrivatePostgres(base)
    try:
        asyncio.run(server.start())
        yield server
    finally:
        try:
            asyncio.run(server.destroy())
        finally:
            shutil.rmtree(base, ignore_errors=True)
