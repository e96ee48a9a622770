"""A small HTTP/1.1 load generator on raw asyncio streams, for loopback benchmarks.

Closed loop (`saturate`): N keep-alive connections send back to back, to find the maximum rate.
Open loop (`paced`): requests are scheduled at a fixed rate and latency is measured from the
scheduled time, so a slow server cannot hide its queueing (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    sent: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ok(self) -> int:
        return self.by_status.get(200, 0)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


RequestFactory = Callable[[], bytes]


def post_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def saturate(
    port: int, request: RequestFactory, *, connections: int, seconds: float
) -> Result:
    result = Result()
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                writer.write(request())
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - started)
                result.sent += 1
                result.by_status[status] = result.by_status.get(status, 0) + 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    result.elapsed = time.perf_counter() - began
    return result


async def paced(
    port: int, request: RequestFactory, *, rate: float, seconds: float, connections: int
) -> Result:
    """Send at `rate` req/s spread over `connections`; latency counts from the scheduled time."""
    result = Result()
    per_connection = rate / connections
    total_each = int(per_connection * seconds)

    async def worker(offset: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            start = time.perf_counter() + offset
            for i in range(total_each):
                scheduled = start + i / per_connection
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(request())
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - scheduled)
                result.sent += 1
                result.by_status[status] = result.by_status.get(status, 0) + 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(i / rate) for i in range(connections)))
    result.elapsed = time.perf_counter() - began
    return result
