"""The pure parts of media (issue 18): Meta's limits, Range parsing, the bot's file notice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baton.blobs import ByteRange
from baton.store.media_records import MediaRecord, MediaStatus
from baton.types import Direction
from baton.whatsapp.media_limits import MB, MediaRejected, check_outbound, check_size, kind_of
from services.bot.media_reading import Unread, media_notice, settled, with_notice
from services.bot.types import Handoff, HandoffReason, NoReply, Reply
from services.console.media import Unsatisfiable, parse_range


@pytest.mark.parametrize(
    ("mime", "size", "kind"),
    [
        ("image/jpeg", 5 * MB, "image"),
        ("audio/ogg; codecs=opus", 16 * MB, "audio"),
        ("application/pdf", 100 * MB, "document"),
        ("video/mp4", 1, "video"),
    ],
)
def test_files_within_metas_limits_are_accepted(mime: str, size: int, kind: str) -> None:
    assert check_outbound(mime, size) == kind


@pytest.mark.parametrize(
    ("mime", "size", "says"),
    [
        ("image/jpeg", 5 * MB + 1, "limit of 5242880 bytes"),
        ("application/pdf", 100 * MB + 1, "limit"),
        ("application/zip", 10, "does not accept"),
        ("image/webp", 10, "does not accept"),  # stickers are not sent by agents
        ("image/png", 0, "empty"),
    ],
)
def test_files_meta_would_refuse_are_refused_with_the_reason(
    mime: str, size: int, says: str
) -> None:
    with pytest.raises(MediaRejected) as refused:
        check_outbound(mime, size)
    assert says in str(refused.value)


def test_a_static_sticker_has_the_smaller_limit() -> None:
    check_size("sticker", 400 * 1024, animated=True)
    with pytest.raises(MediaRejected):
        check_size("sticker", 400 * 1024, animated=False)
    assert kind_of("IMAGE/WEBP") == "sticker"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=100-", ByteRange(100, 999)),
        ("bytes=-10", ByteRange(990, 999)),
        ("bytes=900-5000", ByteRange(900, 999)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=a-b", None),
    ],
)
def test_range_header(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-4", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 1000)


@given(size=st.integers(1, 10_000), start=st.integers(0, 20_000), length=st.integers(1, 20_000))
def test_a_satisfiable_range_stays_inside_the_file(size: int, start: int, length: int) -> None:
    try:
        found = parse_range(f"bytes={start}-{start + length - 1}", size)
    except Unsatisfiable:
        assert start >= size
        return
    assert found is not None
    assert 0 <= found.start <= found.end < size


UNREAD = (Unread("wamid.1", "document", "no model reads document files"),)


def test_a_file_alone_never_gets_silence() -> None:
    for policy in ("offer", "ignore"):
        decision = with_notice(NoReply(), UNREAD, policy, "pt-BR")
        assert isinstance(decision, Reply)
        assert decision.text.startswith("Recebi seu arquivo (documento)")


def test_offer_puts_the_notice_before_the_bots_answer_and_ignore_does_not() -> None:
    offered = with_notice(Reply(text="Olá!"), UNREAD, "offer", "es")
    assert isinstance(offered, Reply)
    assert offered.text == media_notice(UNREAD, "es") + "\n\nOlá!"
    assert with_notice(Reply(text="Olá!"), UNREAD, "ignore", "es") == Reply(text="Olá!")
    handoff = Handoff(reason=HandoffReason.CUSTOMER_ASKED, summary="")
    assert with_notice(handoff, UNREAD, "offer", "en") is handoff
    assert with_notice(NoReply(), (), "offer", "en") == NoReply()


def record(**changes: object) -> MediaRecord:
    base = MediaRecord(
        id=1, phone_number_id="1", conversation_id=None, direction=Direction.INBOUND,
        kind="audio", wamid="w", idempotency_key=None, media_id="m", mime_type="audio/ogg",
        expected_sha256=None, caption=None, filename=None, voice=True, size=None, sha256=None,
        blob_key=None, status=MediaStatus.PENDING, reason=None, attempts=0, transcript=None,
        description=None,
    )  # fmt: skip
    return base.model_copy(update=changes)


def test_a_voice_note_is_settled_once_transcribed_when_transcription_is_on() -> None:
    assert not settled(record(), transcribing=False)
    stored = record(status=MediaStatus.AVAILABLE, blob_key="k")
    assert settled(stored, transcribing=False)
    assert not settled(stored, transcribing=True)
    assert settled(stored.model_copy(update={"transcript": ""}), transcribing=True)
    assert settled(record(status=MediaStatus.UNAVAILABLE), transcribing=True)
