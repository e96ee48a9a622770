"""The simulator's asynchronous side: held answers, status webhooks with retries, change events."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from simulator.config import ConfigUpdate, SimConfig
from simulator.latency import leg_shape
from simulator.records import SentMessage, WebhookDelivery
from simulator.state import SimState
from simulator.webhooks import (
    StatusName,
    envelope,
    meta_json,
    post_webhook,
    status_change,
)

_MAX_HOLD_SECONDS = 600.0  # a hang that nobody releases still ends


class SimRuntime:
    """One simulator's state plus the tasks and events around it (one event loop)."""

    def __init__(self, config: SimConfig, clock: Callable[[], float]) -> None:
        self.state = SimState(config, clock)
        self._release = asyncio.Event()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http = httpx.AsyncClient(timeout=10.0)
        self._legs = random.Random(config.round_trip.seed if config.round_trip else None)
        self.state.on_change(self._on_change)

    @property
    def config(self) -> SimConfig:
        return self.state.config

    def update_config(self, update: ConfigUpdate) -> SimConfig:
        self.state.config = update.apply(self.state.config)
        if update.round_trip is not None:
            self._legs.seed(update.round_trip.seed)
        return self.state.config

    # --- the round trip to Meta ---------------------------------------------------------

    async def uplink(self) -> float:
        """Hold a request for its uplink (Meta has not counted it yet); its downlink seconds."""
        round_trip = self.config.round_trip
        if round_trip is None:
            return 0.0
        up, down = leg_shape(round_trip).draw(self._legs)
        await self.hold(up)
        return down

    def reset(self) -> None:
        self.release_held()
        self.state.reset()

    # --- held answers (delay and hang faults) ------------------------------------------

    async def hold(self, seconds: float) -> None:
        """Sleep `seconds` (inf: until released), ending early when held answers are released."""
        if seconds <= 0:
            return
        release = self._release
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), min(seconds, _MAX_HOLD_SECONDS))

    def release_held(self) -> None:
        """Answer every held request now (on reset and shutdown)."""
        self._release.set()
        self._release = asyncio.Event()

    # --- waiting on records -----------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds, re-checked on every new record; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return True

    def _on_change(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- status webhooks --------------------------------------------------------------

    def after_accepted_send(self, sent: SentMessage) -> None:
        """Tell the webhook URL, like Meta, that the message was sent then delivered."""
        if not self.config.sends_webhooks:
            return
        task = asyncio.create_task(self._deliver_statuses(sent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_statuses(self, sent: SentMessage) -> None:
        statuses: tuple[StatusName, ...] = ("sent", "delivered")
        for status in statuses:
            if not await self._deliver(sent, status):
                return

    async def _deliver(self, sent: SentMessage, status: StatusName) -> bool:
        config = self.config
        if config.webhook_url is None or config.app_secret is None or sent.wamid is None:
            return False
        number = self.state.numbers[sent.phone_number_id]  # known: it accepted the send
        change = status_change(
            sent.phone_number_id,
            sent.wamid,
            status,
            sent.wa_id,
            biz_opaque_callback_data=sent.biz_opaque_callback_data,
            display_phone_number=number.display_phone_number,
        )
        body = meta_json(envelope([change], waba_id=number.waba_id))
        for attempt in range(1, config.webhook_max_attempts + 1):
            http_status: int | None = None
            error: str | None = None
            try:
                response = await post_webhook(
                    config.webhook_url, body, config.app_secret, client=self._http
                )
                http_status = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.state.record_delivery(
                WebhookDelivery(
                    wamid=sent.wamid,
                    status=status,
                    attempt=attempt,
                    http_status=http_status,
                    error=error,
                    at=datetime.now(UTC),
                )
            )
            if http_status == 200:  # Meta treats anything but 200 as a failed delivery
                return True
            if attempt < config.webhook_max_attempts:
                await asyncio.sleep(config.webhook_retry_seconds * 2 ** (attempt - 1))
        return False

    async def aclose(self) -> None:
        self.release_held()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()
