"""The history area of the PostgreSQL store: onboarding, sync claims, idempotent import, contacts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from baton.store import PostgresStore
from baton.store.history_records import (
    ChunkStart,
    ContactChange,
    HistoryRow,
    ImportState,
    Resolution,
    SyncOutcome,
    SyncStatus,
    SyncType,
)
from baton.store.records import NewInbound
from baton.types import Author, Direction, Mode
from tests.conftest import unique

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _row(wa_id: str, wamid: str, at: datetime, *, business: bool = False) -> HistoryRow:
    return HistoryRow(
        wa_id=wa_id,
        wamid=wamid,
        direction="out" if business else "in",
        author="app" if business else "customer",
        type="text",
        body=f"body of {wamid}",
        payload=f'{{"id": "{wamid}"}}',
        sent_at=at,
        status="read" if business else None,
        status_rank=3 if business else 0,
    )


async def _chunk(
    store: PostgresStore,
    pnid: str,
    key: str,
    rows: list[HistoryRow],
    *,
    phase: int = 1,
    order: int = 1,
    progress: int = 100,
) -> int:
    fresh = await store.begin_history_chunk(
        ChunkStart(
            phone_number_id=pnid,
            chunk_key=key,
            kind="chunk",
            phase=phase,
            chunk_order=order,
            progress=progress,
            messages_total=len(rows),
        )
    )
    if not fresh:
        return -1
    stored = await store.store_history_rows(pnid, key, rows)
    await store.complete_history_chunk(pnid, key, rejected=0, now=NOW)
    return stored


async def test_a_chunk_imported_twice_is_stored_once(store: PostgresStore) -> None:
    pnid, wa_id = unique("pn"), unique("55")
    rows = [_row(wa_id, f"{pnid}-{i}", NOW - DAY + timedelta(minutes=i)) for i in range(50)]
    assert await _chunk(store, pnid, "k1", rows) == 50
    assert await _chunk(store, pnid, "k1", rows) == -1  # completed before: skipped at once
    # The same messages re-sent under another key (Meta re-cut the chunk): nothing new.
    assert await _chunk(store, pnid, "k2", rows[:10], order=2) == 0
    history = await store.number_history(pnid)
    assert history is not None
    assert history.progress.messages_imported == 50
    count = await store.pool.fetchval(
        "SELECT count(*) FROM messages WHERE phone_number_id = $1", pnid
    )
    assert count == 50


async def test_a_half_imported_chunk_is_finished_by_its_redelivery(store: PostgresStore) -> None:
    pnid, wa_id = unique("pn"), unique("55")
    rows = [_row(wa_id, f"{pnid}-{i}", NOW - DAY + timedelta(minutes=i)) for i in range(30)]
    chunk = ChunkStart(
        phone_number_id=pnid,
        chunk_key="k",
        kind="chunk",
        phase=0,
        chunk_order=1,
        progress=100,
        messages_total=30,
    )
    assert await store.begin_history_chunk(chunk)
    assert await store.store_history_rows(pnid, "k", rows[:20]) == 20
    # The process died here; the broker redelivers the whole chunk.
    assert await store.begin_history_chunk(chunk)
    assert await store.store_history_rows(pnid, "k", rows) == 10
    await store.complete_history_chunk(pnid, "k", rejected=0, now=NOW)
    history = await store.number_history(pnid)
    assert history is not None
    assert history.progress.messages_imported == 30
    assert history.progress.state is ImportState.COMPLETED


async def test_import_keeps_time_author_and_leaves_conversations_alone(
    store: PostgresStore,
) -> None:
    pnid, wa_id = unique("pn"), unique("55")
    live_at = NOW + timedelta(minutes=5)
    conversation, _ = await store.record_inbound(
        NewInbound(
            phone_number_id=pnid,
            wa_id=wa_id,
            wamid=f"{pnid}-live",
            type="text",
            body="live",
            sent_at=live_at,
            payload={},
        )
    )
    assert await store.hand_to_human(conversation.id, expected_epoch=conversation.epoch)
    before = await store.conversation_by_id(conversation.id)
    assert before is not None
    old = NOW - 30 * DAY
    rows = [
        _row(wa_id, f"{pnid}-a", old),
        _row(wa_id, f"{pnid}-b", old + timedelta(minutes=1), business=True),
        _row(wa_id, f"{pnid}-c", NOW + timedelta(minutes=10)),  # newer than the live message
    ]
    other = unique("55")
    rows.append(_row(other, f"{pnid}-d", old))
    assert await _chunk(store, pnid, "k", rows) == 4

    after = await store.conversation_by_id(conversation.id)
    assert after == before  # same mode, epoch, last activity
    assert after.mode is Mode.HUMAN
    assert after.last_activity_at == live_at
    created = await store.conversation(pnid, other)
    assert created.last_activity_at is None
    assert created.mode is Mode.BOT
    assert created.epoch == 0

    messages = await store.recent_messages(conversation.id, limit=10)
    assert [m.wamid for m in messages] == [f"{pnid}-a", f"{pnid}-b", f"{pnid}-live", f"{pnid}-c"]
    assert [m.imported for m in messages] == [True, True, False, True]
    assert messages[0].sent_at == old
    assert (messages[0].author, messages[0].direction) == (Author.CUSTOMER, Direction.INBOUND)
    assert (messages[1].author, messages[1].direction) == (Author.APP, Direction.OUTBOUND)
    assert messages[1].status == "read"


async def test_concurrent_duplicate_batches_neither_deadlock_nor_double(
    store: PostgresStore,
) -> None:
    pnid = unique("pn")
    rows = [_row(f"55{i % 7}", f"{pnid}-{i:04d}", NOW - timedelta(minutes=i)) for i in range(600)]
    for key in ("x", "y"):
        await store.begin_history_chunk(
            ChunkStart(
                phone_number_id=pnid,
                chunk_key=key,
                kind="chunk",
                phase=1,
                chunk_order=1,
                progress=100,
                messages_total=600,
            )
        )
    results = await asyncio.gather(
        *(
            store.store_history_rows(pnid, key, list(reversed(rows)) if key == "y" else rows)
            for key in ("x", "y", "x", "y")
        )
    )
    assert sum(results) == 600


async def test_recent_media_fills_its_placeholder(store: PostgresStore) -> None:
    pnid, wa_id = unique("pn"), unique("55")
    placeholder = _row(wa_id, f"{pnid}-m", NOW - DAY)._replace(type="media_placeholder")
    early = _row(wa_id, f"{pnid}-early", NOW - DAY)._replace(type="image", body="[image] early")
    assert await _chunk(store, pnid, "k", [placeholder]) == 1
    await store.begin_history_chunk(
        ChunkStart(phone_number_id=pnid, chunk_key="media", kind="media", messages_total=2)
    )
    image = placeholder._replace(type="image", body="[image] foto")
    new = await store.store_history_rows(pnid, "media", [image, early], fill_placeholders=True)
    assert new == 1  # the early one; the placeholder was filled in, not added
    again = await store.store_history_rows(pnid, "media", [image, early], fill_placeholders=True)
    assert again == 0
    # The chunk delivered again after its media: the placeholder does not come back.
    placeholder_early = early._replace(type="media_placeholder", body="[media]")
    assert await _chunk(store, pnid, "k2", [placeholder_early], order=2) == 0
    rows = await store.pool.fetch(
        "SELECT wamid, type, body FROM messages WHERE phone_number_id = $1 ORDER BY wamid", pnid
    )
    assert [(r["type"], r["body"]) for r in rows] == [
        ("image", "[image] early"),
        ("image", "[image] foto"),
    ]


async def test_progress_reports_phase_percent_gaps_and_completion(store: PostgresStore) -> None:
    pnid, wa_id = unique("pn"), unique("55")

    def rows(n: int) -> list[HistoryRow]:
        return [
            _row(wa_id, f"{pnid}-{n}-{i}", NOW - n * DAY - timedelta(minutes=i)) for i in range(3)
        ]

    assert await store.number_history(pnid) is None
    await _chunk(store, pnid, "c3", rows(3), phase=1, order=3, progress=100)
    history = await store.number_history(pnid)
    assert history is not None
    progress = history.progress
    assert (progress.state, progress.percent, progress.phase, progress.chunk) == (
        ImportState.COMPLETED,
        100,
        1,
        3,
    )
    await _chunk(store, pnid, "c1", rows(1), phase=1, order=1, progress=30)
    history = await store.number_history(pnid)
    assert history is not None
    # Chunk 2 of phase 1 is missing: 100 % reported by Meta, but not complete yet.
    assert history.progress.chunks_missing == 1
    assert history.progress.state is ImportState.IMPORTING
    assert not history.progress.completed
    await _chunk(store, pnid, "c2", rows(2), phase=1, order=2, progress=60)
    history = await store.number_history(pnid)
    assert history is not None
    assert history.progress.state is ImportState.COMPLETED
    assert history.progress.chunks_imported == 3
    assert history.progress.messages_imported == 9


async def test_declined_history_is_a_normal_end_state(store: PostgresStore) -> None:
    pnid = unique("pn")
    await store.onboard_number(pnid, now=NOW, deadline=NOW + DAY)
    await store.begin_history_chunk(
        ChunkStart(phone_number_id=pnid, chunk_key="d", kind="declined")
    )
    await store.complete_history_chunk(pnid, "d", rejected=0, now=NOW)
    history = await store.number_history(pnid)
    assert history is not None
    assert history.progress.state is ImportState.DECLINED
    assert history.progress.declined
    assert history.progress.completed


async def test_contacts_newer_wins_and_removal_keeps_a_tombstone(store: PostgresStore) -> None:
    pnid, ana, bia = unique("pn"), unique("55"), unique("55")

    def change(wa_id: str, name: str | None, at: datetime, removed: bool = False) -> ContactChange:
        return ContactChange(
            wa_id=wa_id,
            removed=removed,
            full_name=name,
            first_name=name.split()[0] if name else None,
            changed_at=at,
        )

    assert (
        await store.record_contacts(pnid, [change(ana, "Ana Souza", NOW), change(bia, "Bia", NOW)])
        == 2
    )
    assert await store.contact_names(pnid, [ana, bia]) == {ana: "Ana Souza", bia: "Bia"}
    # An edit, then an older add delivered late: the edit stays.
    await store.record_contacts(pnid, [change(ana, "Ana S. (VIP)", NOW + DAY)])
    assert await store.record_contacts(pnid, [change(ana, "Ana Souza", NOW)]) == 0
    # Removal, then the older add again: still removed.
    await store.record_contacts(pnid, [change(bia, None, NOW + DAY, removed=True)])
    await store.record_contacts(pnid, [change(bia, "Bia", NOW)])
    assert await store.contact_names(pnid, [ana, bia]) == {ana: "Ana S. (VIP)"}
    # Several changes to one contact in one webhook: the newest applies.
    await store.record_contacts(
        pnid, [change(bia, "Bia Old", NOW + 2 * DAY), change(bia, "Bia New", NOW + 3 * DAY)]
    )
    assert (await store.contact_names(pnid, [bia]))[bia] == "Bia New"


async def test_onboarding_is_recorded_once_and_queues_both_syncs(store: PostgresStore) -> None:
    pnid = unique("pn")
    onboarding, created = await store.onboard_number(
        pnid, now=NOW, deadline=NOW + DAY, display_phone_number="15550001111"
    )
    assert created
    assert onboarding.sync_deadline_at == NOW + DAY
    again, created_again = await store.onboard_number(
        pnid, now=NOW + timedelta(hours=1), deadline=NOW + 2 * DAY
    )
    assert not created_again
    assert again == onboarding  # the window is not reset by a repeat
    history = await store.number_history(pnid)
    assert history is not None
    assert [(s.sync_type, s.status) for s in history.syncs] == [
        (SyncType.CONTACTS, SyncStatus.PENDING),
        (SyncType.HISTORY, SyncStatus.PENDING),
    ]


async def test_claims_send_contacts_first_and_each_request_once(store: PostgresStore) -> None:
    pnid = unique("pn")
    await store.onboard_number(pnid, now=NOW, deadline=NOW + DAY)
    batches = await asyncio.gather(
        *(store.claim_sync_requests(now=NOW, phone_number_id=pnid) for _ in range(5))
    )
    claims = [c for batch in batches for c in batch]
    assert [(c.sync_type, c.attempt) for c in claims] == [(SyncType.CONTACTS, 1)]
    # History waits while contacts is being sent ...
    assert await store.claim_sync_requests(now=NOW, phone_number_id=pnid) == []
    accepted = SyncOutcome(status=SyncStatus.ACCEPTED, request_id="r1")
    assert await store.finish_sync_request(claims[0], accepted, now=NOW)
    # ... and goes once contacts is settled.
    [history] = await store.claim_sync_requests(now=NOW, phone_number_id=pnid)
    assert history.sync_type is SyncType.HISTORY
    assert await store.claim_sync_requests(now=NOW + DAY / 2, phone_number_id=pnid) == []


async def test_a_retry_waits_for_its_time_and_a_stale_outcome_is_ignored(
    store: PostgresStore,
) -> None:
    pnid = unique("pn")
    await store.onboard_number(pnid, now=NOW, deadline=NOW + DAY)
    [first] = await store.claim_sync_requests(now=NOW, phone_number_id=pnid)
    retry_at = NOW + timedelta(seconds=30)
    retry = SyncOutcome(status=SyncStatus.PENDING, next_attempt_at=retry_at, error="refused")
    assert await store.finish_sync_request(first, retry, now=NOW)
    # Contacts waits for its time; history, whose turn came, goes meanwhile.
    [history] = await store.claim_sync_requests(now=NOW, phone_number_id=pnid)
    assert history.sync_type is SyncType.HISTORY
    [second] = await store.claim_sync_requests(now=retry_at, phone_number_id=pnid)
    assert second.sync_type is SyncType.CONTACTS
    assert second.attempt == 2
    # A late answer to attempt 1 cannot overwrite attempt 2.
    late = SyncOutcome(status=SyncStatus.ACCEPTED, request_id="late")
    assert not await store.finish_sync_request(first, late, now=retry_at)


async def test_expiry_marks_missed_and_orphaned_attempts_unclear(store: PostgresStore) -> None:
    pending, orphan = unique("pn"), unique("pn")
    await store.onboard_number(pending, now=NOW, deadline=NOW + DAY)
    await store.onboard_number(orphan, now=NOW, deadline=NOW + 2 * DAY)
    [claim] = await store.claim_sync_requests(now=NOW, phone_number_id=orphan)
    # The claimer died mid-call: after the lease the attempt is unclear, never re-sent.
    expired = await store.expire_sync_requests(
        now=NOW + DAY + timedelta(seconds=1), lease_seconds=60
    )
    mine = {
        (e.phone_number_id, e.sync_type): e.status
        for e in expired
        if e.phone_number_id in (pending, orphan)
    }
    assert mine == {
        (pending, SyncType.CONTACTS): SyncStatus.MISSED,
        (pending, SyncType.HISTORY): SyncStatus.MISSED,
        (orphan, SyncType.CONTACTS): SyncStatus.UNCLEAR,
    }
    history = await store.number_history(orphan)
    assert history is not None
    assert history.needs_person
    # The answer that finally arrives for the orphaned attempt is still recorded.
    accepted = SyncOutcome(status=SyncStatus.ACCEPTED, request_id="r")
    assert await store.finish_sync_request(claim, accepted, now=NOW + DAY)


async def test_a_person_resolves_an_unclear_request(store: PostgresStore) -> None:
    pnid = unique("pn")
    await store.onboard_number(pnid, now=NOW, deadline=NOW + DAY)
    [claim] = await store.claim_sync_requests(now=NOW, phone_number_id=pnid)
    unclear = SyncOutcome(status=SyncStatus.UNCLEAR, error="ReadTimeout")
    await store.finish_sync_request(claim, unclear, now=NOW)
    assert await store.claim_sync_requests(now=NOW + DAY / 2, phone_number_id=pnid) != []
    # (history went; contacts stays unclear and is never claimed)
    assert not await store.resolve_sync_request(
        pnid, SyncType.HISTORY, Resolution.RETRY, note="x", now=NOW
    )  # history is sending, not unclear
    retried = await store.resolve_sync_request(
        pnid, SyncType.CONTACTS, Resolution.RETRY, note="person: checked", now=NOW
    )
    assert retried is not None
    assert retried.status is SyncStatus.PENDING
    [again] = await store.claim_sync_requests(now=NOW, phone_number_id=pnid)
    assert (again.sync_type, again.attempt) == (SyncType.CONTACTS, 2)
    # After the window closes a retry is refused, an acceptance is still recorded.
    await store.finish_sync_request(again, unclear, now=NOW)
    late = NOW + DAY
    assert not await store.resolve_sync_request(
        pnid, SyncType.CONTACTS, Resolution.RETRY, note="x", now=late
    )
    done = await store.resolve_sync_request(
        pnid, SyncType.CONTACTS, Resolution.ACCEPTED, note="x", now=late
    )
    assert done is not None
    assert done.status is SyncStatus.ACCEPTED


async def test_arriving_history_settles_the_history_request(store: PostgresStore) -> None:
    pnid = unique("pn")
    await store.onboard_number(pnid, now=NOW, deadline=NOW + DAY)
    assert await store.note_history_arrived(pnid, now=NOW)
    assert not await store.note_history_arrived(pnid, now=NOW)
    history = await store.number_history(pnid)
    assert history is not None
    sync = history.sync(SyncType.HISTORY)
    assert sync is not None
    assert (sync.status, sync.resolved_by) == (SyncStatus.ACCEPTED, "webhook")
    # Never sent now: the contacts request still goes, the history one does not.
    claims = await store.claim_sync_requests(now=NOW, phone_number_id=pnid)
    assert [c.sync_type for c in claims] == [SyncType.CONTACTS]


async def test_offboarding_disables_by_display_number_and_reonboarding_restarts(
    store: PostgresStore,
) -> None:
    pnid, display = unique("pn"), unique("1555")
    await store.onboard_number(pnid, now=NOW, deadline=NOW + DAY)
    await store.learn_number(pnid, display_phone_number=display, waba_id="waba")
    assert not await store.number_disabled(pnid)
    disabled = await store.disable_number(
        phone_number_id=None, display_phone_number=display, reason="PARTNER_REMOVED", now=NOW
    )
    assert disabled == [pnid]
    assert await store.number_disabled(pnid)
    assert await store.claim_sync_requests(now=NOW, phone_number_id=pnid) == []
    onboarding, created = await store.onboard_number(pnid, now=NOW + DAY, deadline=NOW + 2 * DAY)
    assert created
    assert onboarding.generation == 2
    assert not await store.number_disabled(pnid)
    claims = await store.claim_sync_requests(now=NOW + DAY, phone_number_id=pnid)
    assert [(c.sync_type, c.attempt) for c in claims] == [(SyncType.CONTACTS, 1)]
    # A number never onboarded through Baton is remembered as offboarded too.
    stranger = unique("pn")
    assert await store.disable_number(
        phone_number_id=stranger, display_phone_number=None, reason="PARTNER_REMOVED", now=NOW
    ) == [stranger]
    assert await store.number_disabled(stranger)


async def test_a_number_only_seen_in_webhooks_can_be_offboarded_then_onboarded(
    store: PostgresStore,
) -> None:
    pnid, display = unique("pn"), unique("1555")
    await store.learn_number(pnid, display_phone_number=display, waba_id=None)
    seen = await store.number_history(pnid)
    assert seen is not None
    assert seen.onboarding is not None
    assert seen.onboarding.onboarded_at is None
    assert seen.deadline_state(NOW, DAY) is None
    assert await store.disable_number(
        phone_number_id=None, display_phone_number=display, reason="PARTNER_REMOVED", now=NOW
    ) == [pnid]
    onboarding, created = await store.onboard_number(pnid, now=NOW, deadline=NOW + DAY)
    assert created
    assert (onboarding.generation, onboarding.display_phone_number) == (1, display)
    assert not await store.number_disabled(pnid)
