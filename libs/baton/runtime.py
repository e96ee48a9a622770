"""Process plumbing every service shares: signals, graceful stop, and the ops HTTP endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import structlog
import uvicorn
import uvloop
from fastapi import FastAPI, Response
from starlette.types import ASGIApp

from baton import tracing
from baton.logging import configure_logging
from baton.metrics import exposition
from baton.settings import Settings

log = structlog.get_logger()

# Why the process is not ready (empty: ready). A plain bool is still accepted (False → "not ready").
ReadinessCheck = Callable[[], Awaitable[Sequence[str] | bool]]

DEFAULT_LIVENESS_GRACE_SECONDS = 60.0
# A check that does not answer within this is itself a reason (a hung store must not hang /readyz).
CHECK_TIMEOUT_SECONDS = 3.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(app: ASGIApp, *, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve `app` until `stop` is set, then finish in-flight requests and return."""
    config = uvicorn.Config(
        tracing.asgi(app),  # a server span per request when tracing is on; `app` as is when off
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        # Less per-response work, measured on ingest's hot path: no `server` header to advertise,
        # and no X-Forwarded-For rewriting (it only trusted loopback, and no service reads the
        # client address).
        server_header=False,
        proxy_headers=False,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(), name=f"http:{port}")
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if serving in done:
        stopping.cancel()
        serving.result()  # a bind failure surfaces here
        raise RuntimeError(f"HTTP server on port {port} stopped unexpectedly")
    server.should_exit = True
    await serving


class Health:
    """Readiness with reasons, and liveness that fails once not-ready has lasted `grace` seconds.

    Both probes evaluate the readiness check, so the not-ready clock runs as long as anything
    (Kubernetes' readiness or liveness probe) looks.
    """

    def __init__(
        self,
        ready: ReadinessCheck,
        *,
        grace: float = DEFAULT_LIVENESS_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ready = ready
        self._grace = grace
        self._clock = clock
        self._not_ready_since: float | None = None
        self._last: list[str] = []

    async def reasons(self) -> list[str]:
        """Why the process is not ready now (empty: it is), and start or stop the clock."""
        try:
            result = await asyncio.wait_for(self._ready(), CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            reasons = ["readiness check timed out"]
        except Exception as exc:  # a failing check is a reason, never a 500
            reasons = [f"readiness check failed: {type(exc).__name__}"]
        else:
            if isinstance(result, bool):
                reasons = [] if result else ["not ready"]
            else:
                reasons = list(result)
        now = self._clock()
        if reasons:
            if self._not_ready_since is None:
                self._not_ready_since = now
            if reasons != self._last:
                log.warning("service.not_ready", reasons=reasons)
        else:
            if self._not_ready_since is not None:
                log.info("service.ready_again", after_seconds=round(now - self._not_ready_since, 3))
            self._not_ready_since = None
        self._last = reasons
        return reasons

    def not_ready_for(self) -> float:
        """Seconds the process has been not ready without a break (0 when ready)."""
        if self._not_ready_since is None:
            return 0.0
        return self._clock() - self._not_ready_since


def add_ops_routes(
    app: FastAPI, ready: ReadinessCheck, *, liveness_grace: float = DEFAULT_LIVENESS_GRACE_SECONDS
) -> Health:
    """`/healthz` (alive: not stuck not-ready past the grace), `/readyz` (with reasons), `/metrics`."""
    health = Health(ready, grace=liveness_grace)

    @app.get("/healthz", include_in_schema=False)
    async def healthz(response: Response) -> dict[str, Any]:
        reasons = await health.reasons()
        stuck = health.not_ready_for()
        if reasons and stuck > liveness_grace:
            # Not ready for longer than any outage it could ride out: let the orchestrator
            # restart it (a fresh process re-subscribes and reconnects from scratch).
            response.status_code = 503
            return {"status": "unhealthy", "reasons": reasons, "not_ready_seconds": round(stuck, 1)}
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, Any]:
        reasons = await health.reasons()
        if not reasons:
            return {"status": "ready"}
        response.status_code = 503
        return {"status": "not ready", "reasons": reasons}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    return health


def ops_app(
    ready: ReadinessCheck, *, liveness_grace: float = DEFAULT_LIVENESS_GRACE_SECONDS
) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    add_ops_routes(app, ready, liveness_grace=liveness_grace)
    return app


async def store_reasons(ping: Callable[[], Awaitable[bool]]) -> list[str]:
    """["store unreachable"] unless the store answers a ping in time."""
    try:
        if await asyncio.wait_for(ping(), CHECK_TIMEOUT_SECONDS - 0.5):
            return []
    except Exception:  # timed out, or an error the adapter did not map to False
        pass
    return ["store unreachable"]


def run(service: str, main: Callable[[Settings, asyncio.Event], Awaitable[None]]) -> None:
    """Entry point of `python -m services.<name>`: settings, logging, signals, then `main`."""
    settings = Settings()
    configure_logging(service, level=settings.log_level, json=settings.log_json)
    tracing.configure(service)

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _on_signal, sig, stop)
        log.info("service.starting")
        await main(settings, stop)
        log.info("service.stopped")

    # uvloop: about twice the throughput of the default loop for ingest's socket-bound work.
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run())
    finally:
        tracing.shutdown()  # the last spans are exported before the process goes


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("service.stopping", signal=sig.name)
    stop.set()
