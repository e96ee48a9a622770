"""`baton <command> …` (also `python -m services.cli`). `baton --help` lists the commands."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import aio_pika
import orjson

from baton.logging import configure_logging
from baton.settings import Settings
from baton.store import open_store
from services.cli import dlq, doctor

USAGE = """\
baton numbers onboard|status|resolve|offboard …   Coexistence numbers (the 24-hour import window)
baton agents add|passwd|disable|enable|list …     the desk's agent accounts
baton dlq list|show|replay …                      dead-lettered messages
baton say --from WA_ID --text TEXT …               a customer message through the local stack
baton doctor                                      broker, store, migrations, Graph token, clock
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "numbers":
        return _numbers(rest)
    if command == "agents":
        from services.console.accounts_cli import main as agents

        return agents(rest)
    if command == "say":
        return _say(rest)
    if command == "dlq":
        return _dlq(rest)
    if command == "doctor":
        settings = _settings("doctor")
        return asyncio.run(doctor.run(settings))
    sys.stderr.write(f"unknown command {command!r}\n{USAGE}")
    return 2


def _settings(name: str) -> Settings:
    settings = Settings()
    configure_logging(f"cli-{name}", level="WARNING", json=settings.log_json)
    return settings


def _numbers(argv: list[str]) -> int:
    if argv[:1] != ["offboard"]:
        from services.history.cli import main as history

        return history(argv)
    parser = argparse.ArgumentParser(prog="baton numbers offboard")
    parser.add_argument("phone_number_id")
    parser.add_argument("--reason", default="operator")
    args = parser.parse_args(argv[1:])
    settings = _settings("numbers")

    async def offboard() -> int:
        store = await open_store(settings.store_url)
        try:
            done = await store.disable_number(
                phone_number_id=args.phone_number_id,
                display_phone_number=None,
                reason=f"offboarded by {_operator()}: {args.reason}",
                now=datetime.now(UTC),
            )
        finally:
            await store.close()
        if not done:
            sys.stderr.write(f"{args.phone_number_id}: not onboarded, or already offboarded\n")
            return 1
        sys.stdout.write(f"{args.phone_number_id}: offboarded; its traffic is now ignored\n")
        return 0

    return asyncio.run(offboard())


def _say(argv: list[str]) -> int:
    try:
        from simulator.__main__ import main as simulator
    except ImportError:
        sys.stderr.write("`baton say` needs the WhatsApp simulator (a development install)\n")
        return 2
    return simulator(["say", *argv])


def _dlq(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="baton dlq")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser(
        "list", help="dead-letter queues and how many messages each holds"
    )
    listing.add_argument("--queue", help="only this queue (its source name, without .dlq)")
    show = commands.add_parser("show", help="the parked messages of one queue, with reasons")
    show.add_argument("queue")
    show.add_argument("--limit", type=int, default=20)
    again = commands.add_parser("replay", help="send parked messages back where they failed")
    again.add_argument("queue")
    again.add_argument("--limit", type=int, default=1)
    again.add_argument("--message-id", help="only this message")
    again.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    again.add_argument("--operator", default=None, help="recorded as who replayed (default: you)")
    args = parser.parse_args(argv)
    settings = _settings("dlq")
    return asyncio.run(_dlq_run(args, settings))


async def _dlq_run(args: argparse.Namespace, settings: Settings) -> int:
    connection = await aio_pika.connect(settings.amqp_url, timeout=10)
    store = await open_store(settings.store_url)
    try:
        if args.command == "list":
            numbers = sorted(settings.numbers().numbers)
            queues = [args.queue] if args.queue else dlq.known_queues(numbers)
            _print(
                [
                    {"queue": q, "dead_lettered": n}
                    for q, n in (await dlq.counts(connection, queues)).items()
                ]
            )
            return 0
        if args.command == "show":
            async with connection.channel() as channel:
                items = await dlq.peek(channel, args.queue, args.limit)
            _print([item.detail() for item in items])
            return 0
        sent = await dlq.replay(
            connection,
            store,
            args.queue,
            limit=args.limit,
            operator=args.operator or _operator(),
            dry_run=args.dry_run,
            message_id=args.message_id,
        )
        _print({"dry_run": args.dry_run, "replayed": [item.summary() for item in sent]})
        return 0 if sent or args.dry_run else 1
    finally:
        await store.close()
        await connection.close()


def _operator() -> str:
    return os.environ.get("BATON_OPERATOR") or getpass.getuser()


def _print(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    sys.exit(main())
