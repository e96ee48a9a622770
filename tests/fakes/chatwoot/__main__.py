"""`python -m tests.fakes.chatwoot --port P --token T --webhook-url URL --secret S [--unsigned]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from baton.runtime import serve_http
from tests.fakes.chatwoot.app import FakeChatwoot, FakeConfig, create_app


async def serve(args: argparse.Namespace) -> None:
    fake = FakeChatwoot(
        FakeConfig(
            token=args.token,
            account_id=args.account_id,
            inbox_id=args.inbox_id,
            webhook_url=args.webhook_url,
            secret=args.secret,
            signed=not args.unsigned,
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = asyncio.create_task(fake.deliver_forever())
    try:
        await serve_http(create_app(fake), host="127.0.0.1", port=args.port, stop=stop)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.chatwoot")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--account-id", type=int, default=1)
    parser.add_argument("--inbox-id", type=int, default=3)
    parser.add_argument("--webhook-url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--unsigned", action="store_true", help="old Chatwoot: URL token only")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
