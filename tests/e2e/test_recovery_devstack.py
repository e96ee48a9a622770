"""`scripts/up` heals: a service killed with SIGKILL is restarted; Ctrl-C still stops all cleanly."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from devstack import REPO_ROOT
from simulator import DEV_APP_SECRET
from tests.e2e.conftest import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def _children(parent: int) -> dict[int, str]:
    """pid → command line of `parent`'s direct children."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent:
                found[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
        except (OSError, ValueError, IndexError):
            continue
    return found


async def test_a_killed_service_is_restarted_and_ctrl_c_stops_everything(
    amqp_url: str, pg_url: str, tmp_path: Path
) -> None:
    ports = {
        name: free_port()
        for name in ("ingest", "sim", "console", "router", "bot", "outbox", "history")
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.update(
        BATON_AMQP_URL=amqp_url,
        BATON_STORE_URL=pg_url,
        BATON_APP_SECRET=DEV_APP_SECRET,
        BATON_LOG_JSON="true",
        BATON_INGEST_PORT=str(ports["ingest"]),
        BATON_SIM_PORT=str(ports["sim"]),
        BATON_CONSOLE_PORT=str(ports["console"]),
        **{
            f"BATON_DEV_{n.upper()}_PORT": str(ports[n])
            for n in ("router", "bot", "outbox", "history")
        },
    )
    stderr_path = tmp_path / "devstack.err"
    stdout_path = tmp_path / "devstack.out"
    with stderr_path.open("wb") as stderr, stdout_path.open("wb") as stdout:
        launcher = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "devstack",
            cwd=REPO_ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    router_ready = f"http://127.0.0.1:{ports['router']}/readyz"

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(router_ready)).status_code == 200
        except httpx.TransportError:
            return False

    def router_pid() -> int | None:
        pids = [p for p, cmd in _children(launcher.pid).items() if "services.router" in cmd]
        return pids[0] if pids else None

    try:
        await eventually(ready, timeout=90, what="the router to be ready")

        async def banner() -> bool:  # the launcher saw every service ready
            return "Baton is running." in stdout_path.read_text()

        await eventually(banner, timeout=90, what="the whole stack to be ready")
        first = router_pid()
        assert first is not None
        os.kill(first, signal.SIGKILL)

        async def replaced() -> bool:
            pid = router_pid()
            return pid is not None and pid != first and await ready()

        await eventually(replaced, timeout=90, what="a new router, ready")
        events = [
            json.loads(line)
            for line in stderr_path.read_text().splitlines()
            if line.startswith("{")
        ]
        died = [e for e in events if e["event"] == "devstack.service_died"]
        assert died and died[0]["service"] == "router" and died[0]["exit_code"] == -signal.SIGKILL
        assert any(
            e["event"] == "devstack.service_restarted" and e["service"] == "router" for e in events
        )
    finally:
        if launcher.returncode is None:
            launcher.send_signal(signal.SIGINT)  # what Ctrl-C does
        code = await asyncio.wait_for(launcher.wait(), 60)
    assert code == 0
    stopped = [line for line in stderr_path.read_text().splitlines() if line.startswith("stopped:")]
    assert stopped, stderr_path.read_text()[-2000:]
    codes = ast.literal_eval(stopped[0].removeprefix("stopped: "))  # a dict literal
    assert {name: c for name, c in codes.items() if name != "simulator" and c} == {}
