"""`python -m services.console agents add|passwd|disable|enable|list`: manage desk accounts.

Passwords are read from the terminal (twice), or from standard input with `--password-stdin`
(one line) for scripts. Uses the same `BATON_*` settings as the console (store URL, environment).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence

from baton.settings import Settings
from baton.store import open_store
from services.console import accounts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.console agents", description="Manage the desk's agent accounts."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create an account")
    add.add_argument("agent_id")
    add.add_argument("--name", help="the name colleagues see")
    add.add_argument(
        "--numbers", help="comma-separated business numbers this agent may see (default: all)"
    )
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd = commands.add_parser("passwd", help="set an account's password (ends its sessions)")
    passwd.add_argument("agent_id")
    passwd.add_argument("--password-stdin", action="store_true")
    for name, text in (
        ("disable", "disable an account (ends its sessions)"),
        ("enable", "enable a disabled account"),
    ):
        commands.add_parser(name, help=text).add_argument("agent_id")
    commands.add_parser("list", help="list accounts")
    return parser


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise accounts.AccountError("the passwords differ")
    return first


async def run(argv: Sequence[str], settings: Settings) -> int:
    """Run one `agents` command; prints what it did, returns the exit status."""
    args = _parser().parse_args(list(argv))
    password = _read_password(args.password_stdin) if args.command in ("add", "passwd") else ""
    store = await open_store(settings.store_url, migrate=True)
    try:
        if args.command == "add":
            numbers = args.numbers.split(",") if args.numbers else None
            await accounts.add(
                store,
                args.agent_id,
                password,
                display_name=args.name,
                numbers=numbers,
                environment=settings.environment,
            )
            print(f"added {args.agent_id}")
        elif args.command == "passwd":
            await accounts.set_password(
                store, args.agent_id, password, environment=settings.environment
            )
            print(f"password changed for {args.agent_id}")
        elif args.command in ("disable", "enable"):
            await accounts.set_disabled(store, args.agent_id, args.command == "disable")
            print(f"{args.command}d {args.agent_id}")
        else:
            for account in await store.list_accounts():
                scope = ",".join(sorted(account.numbers)) if account.numbers else "all numbers"
                state = "disabled" if account.disabled else "enabled"
                print(f"{account.agent_id}\t{state}\t{scope}\t{account.display_name or ''}")
    except accounts.AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    return 0


def main(argv: Sequence[str]) -> int:
    """Entry point for `python -m services.console agents …` (argv after `agents`)."""
    return asyncio.run(run(argv, Settings()))
