"""The WhatsApp simulator as its own process on uvloop, for `bench.outbox`.

    .venv/bin/python -m bench.outbox_sim PORT [LATENCY_SECONDS]

The simulator's own `serve` command runs on the default asyncio loop, where on this machine its
answers show a ~40 ms tail from about 30 requests/s on; the outbox's window is anchored on those
answers, so that tail would be measured as the outbox's. On uvloop the tail is gone. LATENCY
holds every Graph API answer that long (`SimConfig.latency`), as Meta's round trip would.
"""

from __future__ import annotations

import sys

import uvloop

from tests.fakes.whatsapp import SimConfig, serve_forever

if __name__ == "__main__":
    latency = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    uvloop.run(serve_forever(SimConfig(latency=latency), port=int(sys.argv[1])))
