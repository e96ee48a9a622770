"""Command line: `serve` the simulator, or `say` something as a customer and print the reply.

python -m simulator serve --port 8090 --webhook-url http://127.0.0.1:8080/webhook
python -m simulator say --from 5511999990000 --text "Olá"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

import httpx

from simulator.config import (
    DEFAULT_VERSION,
    DEV_ACCESS_TOKEN,
    DEV_APP_SECRET,
    NumberConfig,
    PairRate,
    SimConfig,
)
from simulator.control import SimulatorClient
from simulator.latency import RoundTrip
from simulator.records import Outcome, SentMessage
from simulator.server import serve_forever
from simulator.webhooks import (
    DEFAULT_CUSTOMER_NAME,
    DEFAULT_DISPLAY_NUMBER,
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_WABA_ID,
    customer_text,
    envelope,
    meta_json,
    post_webhook,
)

DEFAULT_SIM_URL = "http://127.0.0.1:8090"
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8080/webhook"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return asyncio.run(_say(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description="WhatsApp Cloud API simulator"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the Graph API on loopback")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    serve.add_argument("--token", default=DEV_ACCESS_TOKEN, help="bearer token to accept")
    serve.add_argument("--version", default=DEFAULT_VERSION, help="Graph version in URLs")
    serve.add_argument("--webhook-url", help="POST signed status webhooks here")
    serve.add_argument("--app-secret", default=DEV_APP_SECRET, help="signs those webhooks")
    serve.add_argument("--number", action="append", default=[], metavar="PHONE_NUMBER_ID")
    serve.add_argument(
        "--coexistence",
        action="append",
        default=[],
        metavar="PHONE_NUMBER_ID",
        help="a Coexistence number (20 msg/s)",
    )
    serve.add_argument("--default-rate", type=int, default=80, help="msg/s of other numbers")
    serve.add_argument("--pair-rate", action="store_true", help="enforce 131056 pair limits")
    serve.add_argument("--strict-numbers", action="store_true", help="refuse unknown numbers")
    serve.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every Graph API answer"
    )
    serve.add_argument(
        "--rtt-median",
        type=float,
        default=0.0,
        help="median seconds of a random round trip (uplink, Meta counts, downlink); 0: none",
    )
    serve.add_argument("--rtt-p99", type=float, default=0.6, help="p99 of that round trip")
    serve.add_argument(
        "--uplink-share", type=float, default=0.2, help="part of the round trip before the count"
    )
    serve.add_argument("--rtt-seed", type=int, default=None, help="reproducible draws")

    say = commands.add_parser("say", help="send a customer message, print the reply")
    say.add_argument("--webhook-url", default=DEFAULT_WEBHOOK_URL)
    say.add_argument("--app-secret", default=DEV_APP_SECRET)
    say.add_argument("--phone-number-id", default=DEFAULT_PHONE_NUMBER_ID)
    say.add_argument("--display-phone-number", default=DEFAULT_DISPLAY_NUMBER)
    say.add_argument("--waba-id", default=DEFAULT_WABA_ID)
    say.add_argument("--from", dest="from_", required=True, help="customer number, digits")
    say.add_argument("--name", default=DEFAULT_CUSTOMER_NAME, help="customer profile name")
    say.add_argument("--text", required=True)
    say.add_argument("--sim-url", default=DEFAULT_SIM_URL)
    say.add_argument("--wait", type=float, default=15.0, help="seconds to wait for a reply")
    say.add_argument(
        "--settle", type=float, default=1.0, help="after a reply, seconds to collect more"
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    numbers = [NumberConfig(phone_number_id=pnid) for pnid in args.number]
    numbers += [NumberConfig(phone_number_id=pnid, coexistence=True) for pnid in args.coexistence]
    config = SimConfig(
        token=args.token,
        version=args.version,
        default_rate=args.default_rate,
        pair_rate=PairRate() if args.pair_rate else None,
        strict_numbers=args.strict_numbers,
        numbers=tuple(numbers),
        webhook_url=args.webhook_url,
        app_secret=args.app_secret if args.webhook_url else None,
        latency=args.latency,
        round_trip=round_trip(args),
    )

    def announce(root_url: str) -> None:
        print(f"simulator listening on {root_url} (Graph base {root_url}/{args.version})")
        sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(config, host=args.host, port=args.port, on_started=announce))
    return 0


def round_trip(args: argparse.Namespace) -> RoundTrip | None:
    """The `--rtt-*` options as a round-trip model (None without `--rtt-median`)."""
    if args.rtt_median <= 0:
        return None
    return RoundTrip(
        median=args.rtt_median,
        p99=max(args.rtt_p99, args.rtt_median),
        uplink_share=args.uplink_share,
        seed=args.rtt_seed,
    )


async def _say(args: argparse.Namespace) -> int:
    async with SimulatorClient(args.sim_url) as sim:
        can_poll = args.wait > 0 and await sim.health()
        if args.wait > 0 and not can_poll:
            print(f"warning: no simulator at {args.sim_url}; not waiting for a reply")
        baseline = await _last_seq(sim, args) if can_poll else 0

        change = customer_text(
            args.phone_number_id,
            args.from_,
            args.text,
            name=args.name,
            display_phone_number=args.display_phone_number,
        )
        body = meta_json(envelope([change], waba_id=args.waba_id))
        try:
            response = await post_webhook(args.webhook_url, body, args.app_secret)
        except httpx.HTTPError as exc:
            print(f"cannot POST to {args.webhook_url} ({exc!r}): is Baton's ingest running?")
            return 2
        print(f"> {args.text}    (webhook {response.status_code})")
        if response.status_code != 200:
            print(response.text[:500])
            return 2
        if not can_poll:
            return 0

        replies = await _collect_replies(sim, args, baseline)
        for reply in replies:
            print(f"< {reply.body}")
        if not replies:
            print(f"no reply within {args.wait:g}s")
            return 1
        return 0


async def _last_seq(sim: SimulatorClient, args: argparse.Namespace) -> int:
    seen = await sim.messages(args.phone_number_id, args.from_)
    return max((m.seq for m in seen), default=0)


async def _collect_replies(
    sim: SimulatorClient, args: argparse.Namespace, baseline: int
) -> list[SentMessage]:
    """Poll until a first reply, then for `--settle` seconds more (notices come in pairs)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.wait
    while True:
        replies = await sim.messages(
            args.phone_number_id, args.from_, Outcome.ACCEPTED, after_seq=baseline
        )
        if replies:
            deadline = min(deadline, loop.time() + args.settle)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return replies
        await asyncio.sleep(min(0.2, remaining))


if __name__ == "__main__":
    sys.exit(main())
