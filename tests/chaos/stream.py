"""Customers streamed through the signed webhook, retried the way Meta retries an unanswered one.

Every attempt is recorded (when, which answer), so a case can check what ingest said while a
fault lasted, and which messages were acknowledged (a 200: ingest's promise that nothing is lost).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import httpx

from simulator import DEV_APP_SECRET
from simulator.webhooks import (
    customer_text,
    envelope,
    meta_json,
    new_wamid,
    post_webhook,
)

# Meta retries a webhook that got no 200 with a growing delay; ours is compressed in time.
RETRY_FIRST_SECONDS = 0.25
RETRY_CAP_SECONDS = 2.0
GIVE_UP_SECONDS = 90.0
REQUEST_TIMEOUT_SECONDS = 10.0


def customer_ids(case: str) -> Iterator[str]:
    """Distinct customer wa_ids, unique to this run (digits only, as WhatsApp has them)."""
    run = int(uuid.uuid4().hex[:6], 16) % 10**6
    tag = sum(map(ord, case)) % 1000
    return (f"55{tag:03d}{run:06d}{i:04d}" for i in itertools.count())


@dataclass(frozen=True)
class Attempt:
    sent: float  # time.time() the POST started
    at: float  # time.time() its answer (or failure) came
    status: int | None  # None: no HTTP answer (refused, reset, timed out)


@dataclass
class Message:
    """One customer message: the same body (same wamid) on every retry, as Meta redelivers."""

    wa_id: str
    text: str
    wamid: str
    body: bytes
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acked_at(self) -> float | None:
        return next((a.at for a in self.attempts if a.status == 200), None)


def message(phone_number_id: str, wa_id: str, text: str) -> Message:
    wamid = new_wamid()
    body = meta_json(envelope([customer_text(phone_number_id, wa_id, text, wamid=wamid)]))
    return Message(wa_id, text, wamid, body)


class Stream:
    """Posts messages at a steady pace; each is retried in the background until a 200."""

    def __init__(self, webhook_url: str) -> None:
        self.webhook_url = webhook_url
        self.messages: list[Message] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._http = httpx.AsyncClient(
            timeout=REQUEST_TIMEOUT_SECONDS, limits=httpx.Limits(max_connections=64)
        )

    async def deliver(self, msg: Message) -> None:
        """Post `msg` until acknowledged or given up; returns at once (runs in the background)."""
        self.messages.append(msg)
        task = asyncio.create_task(self._until_acked(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def paced(
        self, messages: Iterable[Message], per_second: float, *, until: Callable[[int], bool]
    ) -> None:
        """Deliver `messages` one every 1/per_second seconds (on a schedule, not after sleeps)
        until `until(delivered so far)` holds."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, msg in enumerate(messages):
            if until(i):
                return
            delay = start + i / per_second - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.deliver(msg)

    async def _until_acked(self, msg: Message) -> None:
        started = time.time()
        delay = RETRY_FIRST_SECONDS
        while True:
            sent = time.time()
            try:
                response = await post_webhook(
                    self.webhook_url, msg.body, DEV_APP_SECRET, client=self._http
                )
                status: int | None = response.status_code
            except httpx.TransportError:
                status = None
            msg.attempts.append(Attempt(sent, time.time(), status))
            if status == 200 or time.time() - started > GIVE_UP_SECONDS:
                return
            await asyncio.sleep(delay)
            delay = min(RETRY_CAP_SECONDS, delay * 2)

    async def settled(self) -> None:
        """Wait until every message was acknowledged or given up."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    def attempts_between(self, start: float, end: float) -> list[Attempt]:
        """Attempts wholly inside the window: posted after `start`, answered before `end`."""
        return [a for m in self.messages for a in m.attempts if start <= a.sent and a.at <= end]

    def statuses(self) -> set[int | None]:
        return {a.status for m in self.messages for a in m.attempts}

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()
