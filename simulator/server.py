"""Run the simulator on loopback: in-process for tests (`running_simulator`), or as a process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable

import uvicorn
from starlette.types import ASGIApp

from simulator.app import create_app
from simulator.config import NumberConfig, SimConfig
from simulator.faults import Endpoint, Fault, FaultKind
from simulator.media import StoredMedia
from simulator.records import (
    MediaFetch,
    MediaUpload,
    Outcome,
    ReadReceipt,
    SentMessage,
    Stats,
    SyncRequest,
    WebhookDelivery,
)
from simulator.runtime import SimRuntime
from simulator.webhooks import DEFAULT_DISPLAY_NUMBER

_STARTUP_SECONDS = 10.0


class Simulator:
    """A running simulator, driven directly from the test's event loop."""

    def __init__(self, runtime: SimRuntime, root_url: str) -> None:
        self.runtime = runtime
        self.root_url = root_url
        self.base_url = f"{root_url}/{runtime.config.version}"
        """What `GraphClient` takes: `http://127.0.0.1:PORT/v25.0`."""

    @property
    def config(self) -> SimConfig:
        return self.runtime.config

    def register(
        self,
        phone_number_id: str,
        *,
        coexistence: bool = False,
        rate: int | None = None,
        token: str | None = None,
        display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
    ) -> NumberConfig:
        """Declare a number (Coexistence numbers get 20 msg/s unless `rate` says otherwise)."""
        number = NumberConfig(
            phone_number_id=phone_number_id,
            coexistence=coexistence,
            rate=rate,
            token=token,
            display_phone_number=display_phone_number,
        )
        self.runtime.state.register(number)
        return number

    def inject(
        self,
        kind: FaultKind | str,
        *,
        phone_number_id: str = "*",
        count: int = 1,
        endpoint: Endpoint | str = Endpoint.SEND,
        http_status: int | None = None,
        code: int | None = None,
        seconds: float | None = None,
    ) -> Fault:
        """Queue `count` faulty answers for a number's next requests (see `FaultKind`)."""
        fault = Fault(
            kind=FaultKind(kind),
            phone_number_id=phone_number_id,
            count=count,
            endpoint=Endpoint(endpoint),
            http_status=http_status,
            code=code,
            seconds=seconds,
        )
        self.runtime.state.inject(fault)
        return fault

    def reset(self) -> None:
        """Forget traffic, faults and syncs, and answer any held request."""
        self.runtime.reset()

    def messages(
        self,
        phone_number_id: str | None = None,
        to: str | None = None,
        outcome: Outcome | None = None,
    ) -> list[SentMessage]:
        return self.runtime.state.messages(phone_number_id, to, outcome)

    def accepted(
        self, phone_number_id: str | None = None, to: str | None = None
    ) -> list[SentMessage]:
        return self.messages(phone_number_id, to, Outcome.ACCEPTED)

    def add_media(
        self, content: bytes, mime_type: str, *, filename: str | None = None
    ) -> StoredMedia:
        """A customer's file: name its `id` (and `sha256_b64`) in a media webhook."""
        return self.runtime.state.add_media(content, mime_type, filename=filename)

    def uploads(self) -> list[MediaUpload]:
        return list(self.runtime.state.uploads)

    def media_fetches(self) -> list[MediaFetch]:
        return list(self.runtime.state.media_fetches)

    def reads(self) -> list[ReadReceipt]:
        return list(self.runtime.state.reads)

    def sync_requests(self) -> list[SyncRequest]:
        return list(self.runtime.state.syncs)

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        return list(self.runtime.state.deliveries)

    def stats(self) -> Stats:
        return self.runtime.state.stats()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until `predicate()` holds, woken by every new record; AssertionError on timeout."""
        if not await self.runtime.wait_until(predicate, timeout):
            raise AssertionError(f"simulator condition not met within {timeout}s")

    async def wait_for_messages(
        self,
        count: int,
        *,
        phone_number_id: str | None = None,
        to: str | None = None,
        timeout: float = 5.0,
    ) -> list[SentMessage]:
        """Wait until at least `count` sends were accepted (for that number/customer)."""
        await self.wait_until(lambda: len(self.accepted(phone_number_id, to)) >= count, timeout)
        return self.accepted(phone_number_id, to)


@contextlib.asynccontextmanager
async def running_simulator(
    config: SimConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Simulator]:
    """Serve a simulator on loopback for the duration of the block (port 0: any free port).

    `clock` drives throughput and pair-rate windows; pass a fake one to make rate tests exact.
    """
    runtime = SimRuntime(config or SimConfig(), clock)
    try:
        async with serving(create_app(runtime), host=host, port=port) as root_url:
            try:
                yield Simulator(runtime, root_url)
            finally:
                runtime.release_held()  # let hung handlers answer so shutdown is prompt
    finally:
        await runtime.aclose()


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve any ASGI app (e.g. a test's webhook receiver) for the block; yields its root URL."""
    server, sock = _server(app, host, port)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await _started(server, task)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


async def serve_forever(
    config: SimConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8090,
    on_started: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (the `serve` command); `on_started` gets the root URL."""
    runtime = SimRuntime(config, time.monotonic)
    server, sock = _server(create_app(runtime), host, port)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await _started(server, task)
        if on_started is not None:
            on_started(f"http://{host}:{sock.getsockname()[1]}")
        await task
    finally:
        runtime.release_held()
        server.should_exit = True
        await runtime.aclose()
        sock.close()


def _server(app: ASGIApp, host: str, port: int) -> tuple[uvicorn.Server, socket.socket]:
    # Binding here, not in uvicorn, lets port 0 pick a free port that we can then read back.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config), sock


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STARTUP_SECONDS
    while not server.started:
        if task.done():
            task.result()  # raises the startup error
            raise RuntimeError("simulator stopped during startup")
        if loop.time() > deadline:
            raise TimeoutError("simulator did not start")
        await asyncio.sleep(0.01)
