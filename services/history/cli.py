"""Operator commands: `python -m services.history onboard|status|resolve ...`.

onboard <phone_number_id> [--display-phone-number N] [--waba-id W] [--no-request]
    record the onboarding time (the 24-hour window starts now) and request the contacts
    sync then the history sync at once; the history service retries what may be retried
status [<phone_number_id>]
    deadline, sync requests and import progress, as JSON
resolve <phone_number_id> <smb_app_state_sync|history> <accepted|retry> [--note TEXT]
    a person's decision on an unclear or refused sync request
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import orjson

from baton.logging import configure_logging
from baton.settings import Settings
from baton.store import Store, open_store
from baton.store.history_records import (
    NumberHistory,
    NumberReport,
    Resolution,
    SyncRequestState,
    SyncStatus,
    SyncType,
)
from baton.whatsapp.client import GraphClient
from services.history.app import driver_settings
from services.history.driver import SyncDriver


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.history")
    commands = parser.add_subparsers(dest="command", required=True)
    onboard = commands.add_parser("onboard", help="onboard a Coexistence number")
    onboard.add_argument("phone_number_id")
    onboard.add_argument("--display-phone-number")
    onboard.add_argument("--waba-id")
    onboard.add_argument(
        "--no-request", action="store_true", help="record only; the history service sends"
    )
    status = commands.add_parser("status", help="show deadline and import progress")
    status.add_argument("phone_number_id", nargs="?")
    resolve = commands.add_parser("resolve", help="decide an unclear or refused sync request")
    resolve.add_argument("phone_number_id")
    resolve.add_argument("sync_type", choices=[t.value for t in SyncType])
    resolve.add_argument("resolution", choices=[r.value for r in Resolution])
    resolve.add_argument("--note", default="cli")
    return parser


def _print(reports: object) -> None:
    sys.stdout.write(orjson.dumps(reports, option=orjson.OPT_INDENT_2).decode() + "\n")


def _report(history: NumberHistory, settings: Settings) -> NumberReport:
    at_risk = timedelta(seconds=settings.history_sync_at_risk_seconds)
    return NumberReport.of(history, now=datetime.now(UTC), at_risk=at_risk)


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    store = await open_store(settings.store_url)
    try:
        return await _command(args, settings, store)
    finally:
        await store.close()


async def _command(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    if args.command == "onboard":
        now = datetime.now(UTC)
        _, created = await store.onboard_number(
            args.phone_number_id,
            now=now,
            deadline=now + timedelta(seconds=settings.history_sync_window_seconds),
            display_phone_number=args.display_phone_number,
            waba_id=args.waba_id,
        )
        if not created:
            sys.stderr.write("already onboarded: nothing requested again\n")
        elif not args.no_request:
            async with GraphClient.from_settings(settings) as graph:
                await SyncDriver(store, graph, driver_settings(settings)).tick(args.phone_number_id)
            await _settled(store, args.phone_number_id, settings)
    elif args.command == "resolve":
        resolved = await store.resolve_sync_request(
            args.phone_number_id,
            SyncType(args.sync_type),
            Resolution(args.resolution),
            note=f"person: {args.note}",
            now=datetime.now(UTC),
        )
        if resolved is None:
            sys.stderr.write("no unclear or refused request to resolve (or the window closed)\n")
            return 1
    if args.command == "status" and args.phone_number_id is None:
        _print(
            [_report(h, settings).model_dump(mode="json") for h in await store.numbers_history()]
        )
        return 0
    history = await store.number_history(args.phone_number_id)
    if history is None:
        sys.stderr.write(f"unknown number {args.phone_number_id}\n")
        return 1
    _print(_report(history, settings).model_dump(mode="json"))
    return 0


async def _settled(store: Store, phone_number_id: str, settings: Settings) -> None:
    """Wait, bounded, for requests a running history service claimed first to get an outcome.

    The service polls for due requests too, so it may have claimed one between the onboarding
    and this command's own attempt; the report should show Meta's answer, not "sending".
    """
    loop = asyncio.get_running_loop()
    deadline = (
        loop.time() + settings.graph_timeout_seconds + 2 * settings.history_sync_poll_seconds + 1
    )
    while loop.time() < deadline:
        history = await store.number_history(phone_number_id)
        if history is None or not any(_in_flight(s, datetime.now(UTC)) for s in history.syncs):
            return
        await asyncio.sleep(0.1)
    sys.stderr.write("a sync request is still in flight: see `status` later\n")


def _in_flight(sync: SyncRequestState, now: datetime) -> bool:
    """Being sent, or due now (a running service takes it); a later retry is not waited for."""
    return sync.status is SyncStatus.SENDING or (
        sync.status is SyncStatus.PENDING and sync.next_attempt_at <= now
    )


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging("history-cli", level=settings.log_level, json=settings.log_json)
    return asyncio.run(_run(args, settings))
