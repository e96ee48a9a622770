"""Run the whole stack locally as real processes: `python -m devstack`.

Starts the WhatsApp Cloud API simulator (unless BATON_GRAPH_API_URL is set), migrates the store,
then ingest, router, bot, outbox, history and console; waits until each answers `/readyz`;
restarts one that dies (with backoff and a JSON line on stderr); stops them all cleanly on
SIGINT/SIGTERM. The e2e tests drive the same `Stack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from baton.backoff import Backoff
from baton.settings import Settings
from baton.store import open_store

REPO_ROOT = Path(__file__).resolve().parent
SIMULATOR_MODULE = "simulator"
GRAPH_API_VERSION = "v25.0"
DEFAULT_SIM_PORT = 8090


# Restarting a dead service: the one backoff policy, from 1 s up to 30 s for a crash loop.
RESTART_BACKOFF = Backoff(base=1.0, cap=30.0)
MIN_RESTART_SECONDS = 0.5
HEALTHY_AFTER_SECONDS = 60.0


def _event(event: str, **fields: object) -> None:
    """One JSON line on stderr (the launcher's own log, beside the services' files)."""
    print(json.dumps({"event": event, **fields}), file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: tuple[str, ...]
    ready_url: str
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Ports:
    ingest: int = 8080
    simulator: int = DEFAULT_SIM_PORT
    router: int = 9101
    bot: int = 9102
    outbox: int = 9103
    history: int = 9104
    console: int = 8081  # the agent API (also its /metrics, /readyz)
    chatwoot: int = 8082  # the Chatwoot bridge's callbacks (also its /metrics, /readyz)


def plan(env: Mapping[str, str], ports: Ports, *, with_simulator: bool) -> list[ServiceSpec]:
    """Which processes to start, in order, with their readiness URLs."""
    settings = Settings.from_env(env)
    specs: list[ServiceSpec] = []
    if with_simulator:
        specs.append(
            ServiceSpec(
                "simulator",
                (
                    sys.executable,
                    "-m",
                    SIMULATOR_MODULE,
                    "serve",
                    "--port",
                    str(ports.simulator),
                    "--token",
                    settings.access_token.get_secret_value(),
                    "--webhook-url",
                    f"http://127.0.0.1:{ports.ingest}/webhook",
                    "--app-secret",
                    settings.app_secret.get_secret_value(),
                ),
                f"http://127.0.0.1:{ports.simulator}/_sim/health",
            )
        )
    specs.append(
        ServiceSpec(
            "ingest",
            (sys.executable, "-m", "services.ingest"),
            f"http://127.0.0.1:{ports.ingest}/readyz",
            {"BATON_INGEST_PORT": str(ports.ingest)},
        )
    )
    for name in ("router", "bot", "outbox", "history"):
        port = getattr(ports, name)
        specs.append(
            ServiceSpec(
                name,
                (sys.executable, "-m", f"services.{name}"),
                f"http://127.0.0.1:{port}/readyz",
                {"BATON_METRICS_PORT": str(port)},
            )
        )
    specs.append(
        ServiceSpec(
            "console",
            (sys.executable, "-m", "services.console"),
            f"http://127.0.0.1:{ports.console}/readyz",
            {"BATON_CONSOLE_PORT": str(ports.console)},
        )
    )
    bridged = env.get("BATON_CHATWOOT_NUMBERS", "").strip() or any(
        number.chatwoot is not None for number in settings.numbers().numbers.values()
    )
    if bridged:  # the Chatwoot bridge runs only where a number is bridged
        specs.append(
            ServiceSpec(
                "chatwoot",
                (sys.executable, "-m", "services.chatwoot"),
                f"http://127.0.0.1:{ports.chatwoot}/readyz",
                {"BATON_CHATWOOT_PORT": str(ports.chatwoot)},
            )
        )
    return specs


class Stack:
    """A set of service processes started together and stopped together."""

    def __init__(
        self, specs: Sequence[ServiceSpec], base_env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.specs = list(specs)
        self._base_env = dict(base_env)
        self._log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._started_at: dict[str, float] = {}
        self._restarts: dict[str, int] = {}
        self._due: dict[str, float] = {}  # died: restart at this monotonic time

    def start(self, name: str | None = None) -> None:
        """Start every process (or just `name`), in plan order."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.specs:
            if name is not None and spec.name != name:
                continue
            env = {**self._base_env, **spec.env, "PYTHONUNBUFFERED": "1"}
            with (self._log_dir / f"{spec.name}.log").open("ab") as log:
                self.processes[spec.name] = subprocess.Popen(
                    spec.argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
                self._started_at[spec.name] = time.monotonic()

    async def wait_ready(self, *, timeout: float = 60.0) -> None:
        """Poll every process's readiness URL until all answer 200; fail fast if one exits."""
        deadline = time.monotonic() + timeout
        pending = {spec.name: spec.ready_url for spec in self.specs if spec.name in self.processes}
        async with httpx.AsyncClient(timeout=2.0) as client:
            while pending:
                for name, url in list(pending.items()):
                    code = self.processes[name].poll()
                    if code is not None:
                        raise RuntimeError(f"{name} exited with {code}; see {self.log_path(name)}")
                    try:
                        if (await client.get(url)).status_code == 200:
                            del pending[name]
                    except httpx.TransportError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {timeout:.0f}s: {sorted(pending)}")
                if pending:
                    await asyncio.sleep(0.2)

    def heal(self, *, backoff: Backoff = RESTART_BACKOFF) -> list[str]:
        """Restart every process that died, as Kubernetes would: after a growing backoff.

        Call it periodically; returns the names restarted by this call. A process that stayed
        up for `HEALTHY_AFTER_SECONDS` starts its backoff over.
        """
        now = time.monotonic()
        restarted: list[str] = []
        for name, proc in list(self.processes.items()):
            code = proc.poll()
            if code is None:
                if now - self._started_at.get(name, now) > HEALTHY_AFTER_SECONDS:
                    self._restarts.pop(name, None)
                continue
            if name not in self._due:
                attempt = self._restarts.get(name, 0) + 1
                self._restarts[name] = attempt
                delay = max(MIN_RESTART_SECONDS, backoff.delay(attempt))
                self._due[name] = now + delay
                _event(
                    "devstack.service_died",
                    service=name,
                    exit_code=code,
                    restart=attempt,
                    restart_in=round(delay, 2),
                    log=str(self.log_path(name)),
                )
            elif now >= self._due[name]:
                del self._due[name]
                self.start(name)
                restarted.append(name)
                _event("devstack.service_restarted", service=name, restart=self._restarts[name])
        return restarted

    def log_path(self, name: str) -> Path:
        return self._log_dir / f"{name}.log"

    def exited(self) -> dict[str, int]:
        return {n: c for n, p in self.processes.items() if (c := p.poll()) is not None}

    def stop(
        self, name: str | None = None, *, sig: int = signal.SIGTERM, timeout: float = 20.0
    ) -> dict[str, int]:
        """Signal processes (all, or `name`), wait for them, kill what does not stop in time."""
        targets = {n: p for n, p in self.processes.items() if name is None or n == name}
        for proc in targets.values():
            if proc.poll() is None:
                proc.send_signal(sig)
        codes: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        for n, proc in targets.items():
            try:
                codes[n] = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[n] = proc.wait()
        return codes


def _banner(env: Mapping[str, str], ports: Ports, with_simulator: bool) -> str:
    settings = Settings.from_env(env)
    say = (
        f"  .venv/bin/python -m {SIMULATOR_MODULE} say --from 5511999990000 --text 'Olá, tudo bem?' \\\n"
        f"      --webhook-url http://127.0.0.1:{ports.ingest}/webhook"
        f" --sim-url http://127.0.0.1:{ports.simulator}"
    )
    lines = [
        "",
        "Baton is running.",
        f"  webhook:   http://127.0.0.1:{ports.ingest}/webhook  (GET verify, POST signed)",
        f"  graph api: {settings.graph_api_url}",
        f"  metrics:   ingest :{ports.ingest}, router :{ports.router}, bot :{ports.bot},"
        f" outbox :{ports.outbox}, history :{ports.history} (/metrics, /readyz)",
        f"  console:   http://127.0.0.1:{ports.console}/docs  (the agent API; {_agents_hint(env)})",
        f"  desk:      http://127.0.0.1:{ports.console}/  (sign in as agent `dev`,"
        " password baton-dev-password, when no other desk account exists)",
        f"  logs:      {REPO_ROOT / '.run' / 'logs'}",
    ]
    if with_simulator:
        lines += ["", "Send a test customer message and see the bot's reply:", say]
    lines += ["", "Ctrl-C stops everything.", ""]
    return "\n".join(lines)


def _agents_hint(env: Mapping[str, str]) -> str:
    if any(env.get(name) for name in ("BATON_AGENT_TOKENS", "BATON_AGENTS_FILE")):
        return "agents as configured"
    return "agent `dev`, token baton-dev-agent-token"


async def _main() -> int:
    env = dict(os.environ)
    ports = Ports(
        ingest=int(env.get("BATON_INGEST_PORT", "8080")),
        simulator=int(env.get("BATON_SIM_PORT", str(DEFAULT_SIM_PORT))),
        console=int(env.get("BATON_CONSOLE_PORT", "8081")),
        # The consumers' ops ports (/metrics, /readyz), e.g. for a second stack beside the first.
        **{
            name: int(env[f"BATON_DEV_{name.upper()}_PORT"])
            for name in ("router", "bot", "outbox", "history")
            if f"BATON_DEV_{name.upper()}_PORT" in env
        },
    )
    with_simulator = not env.get("BATON_GRAPH_API_URL")
    if with_simulator:
        env["BATON_GRAPH_API_URL"] = f"http://127.0.0.1:{ports.simulator}/{GRAPH_API_VERSION}"
    settings = Settings.from_env(env)
    store = await open_store(settings.store_url, migrate=True)
    await store.close()

    stack = Stack(plan(env, ports, with_simulator=with_simulator), env, REPO_ROOT / ".run" / "logs")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack.start()
    try:
        await stack.wait_ready()
        print(_banner(env, ports, with_simulator), flush=True)
        while not stop.is_set():
            stack.heal()  # a dead service is restarted (with backoff), not left half alive
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        return 0
    finally:
        print("stopping…", file=sys.stderr, flush=True)
        codes = stack.stop()
        print(f"stopped: {codes}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
