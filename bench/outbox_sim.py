"""The WhatsApp simulator as its own process on uvloop, for `bench.outbox` and `bench.outbox_latency`.

    .venv/bin/python -m bench.outbox_sim PORT [LATENCY_SECONDS] [--rtt-median S --rtt-p99 S
        --uplink-share F --rtt-seed N]

The simulator's own `serve` command runs on the default asyncio loop, where on this machine its
answers show a ~40 ms tail from about 30 requests/s on; the outbox's window is anchored on those
answers, so that tail would be measured as the outbox's. On uvloop the tail is gone. LATENCY
holds every Graph API answer that long (`SimConfig.latency`), as Meta's round trip would; the
`--rtt-*` options draw a random uplink (before Meta counts the request) and downlink per request
instead (`SimConfig.round_trip`, simulator/latency.py).
"""

from __future__ import annotations

import argparse

import uvloop

from simulator import RoundTrip, SimConfig, serve_forever

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("latency", type=float, nargs="?", default=0.0)
    parser.add_argument("--rtt-median", type=float, default=0.0)
    parser.add_argument("--rtt-p99", type=float, default=0.6)
    parser.add_argument("--uplink-share", type=float, default=0.2)
    parser.add_argument("--rtt-seed", type=int, default=None)
    args = parser.parse_args()
    round_trip = (
        RoundTrip(
            median=args.rtt_median,
            p99=args.rtt_p99,
            uplink_share=args.uplink_share,
            seed=args.rtt_seed,
        )
        if args.rtt_median > 0
        else None
    )
    config = SimConfig(latency=args.latency, round_trip=round_trip)
    uvloop.run(serve_forever(config, port=args.port))
