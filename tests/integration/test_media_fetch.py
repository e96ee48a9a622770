"""The media.fetch consumer on the real broker, store and blob store, against the simulator
and the fake LLM's speech-to-text: downloads, retries with backoff, final failures."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from baton.blobs import PostgresBlobStore
from baton.broker import COMMANDS, Broker, QueueSpec
from baton.messages import FetchMedia
from baton.store import PostgresStore
from baton.store.media_records import MediaRecord, MediaStatus
from baton.whatsapp import GraphClient
from services.bot.media_ai import Transcriber
from services.bot.media_fetch import MediaFetcher, sha256_matches
from simulator import FaultKind, Outcome, Simulator
from simulator.webhooks import new_wamid
from tests.fakes.llm import FakeLLM, serve_fake_llm
from tests.waiting import eventually

pytestmark = pytest.mark.integration

NUMBER = "900000000001802"
MAX_ATTEMPTS = 4


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with serve_fake_llm() as fake:
        yield fake


@pytest.fixture
async def route(
    broker: Broker, store: PostgresStore, pg_url: str, sim: Simulator, llm: FakeLLM
) -> AsyncIterator[str]:
    """A private media queue consumed by a MediaFetcher; yields its routing key."""
    key = f"test.media.{uuid.uuid4().hex[:8]}"
    blobs = await PostgresBlobStore.open(pg_url)
    graph = GraphClient(sim.base_url, sim.config.token)
    stt = Transcriber(llm.base_url, model="whisper-1", api_key="k", timeout_seconds=5)
    fetcher = MediaFetcher(store, blobs, broker, graph, max_attempts=MAX_ATTEMPTS, stt=stt)
    await broker.consume(
        QueueSpec(key, COMMANDS, (key,)),
        fetcher.on_fetch,
        prefetch=4,
        max_attempts=MAX_ATTEMPTS,
    )
    yield key
    await stt.aclose()
    await graph.aclose()
    await blobs.close()


async def fetch(
    broker: Broker, key: str, sim: Simulator, content: bytes, kind: str, mime: str
) -> str:
    media = sim.add_media(content, mime)
    wamid = new_wamid()
    command = FetchMedia(
        phone_number_id=NUMBER,
        wamid=wamid,
        kind=kind,
        media_id=media.id,
        mime_type=mime,
        sha256=media.sha256_b64,
        voice=kind == "audio",
    )
    await broker.publish(COMMANDS, key, command)
    return wamid


async def settled(store: PostgresStore, wamid: str, *, transcript: bool = False) -> MediaRecord:
    async def probe() -> MediaRecord | None:
        record = (await store.media_by_wamids(NUMBER, [wamid])).get(wamid)
        if record is None or record.status is MediaStatus.PENDING:
            return None
        if transcript and record.transcript is None:
            return None
        return record

    return await eventually(probe, timeout=30, what=f"media {wamid} settled")


async def test_a_voice_note_is_kept_byte_for_byte_and_transcribed(
    broker: Broker, store: PostgresStore, pg_url: str, sim: Simulator, route: str, llm: FakeLLM
) -> None:
    audio = b"OggS\x00" + os.urandom(3000) + b"TRANSCRIPT:quero trocar o tamanho"
    wamid = await fetch(broker, route, sim, audio, "audio", "audio/ogg")
    record = await settled(store, wamid, transcript=True)
    assert record.status is MediaStatus.AVAILABLE
    assert (record.size, record.sha256) == (len(audio), hashlib.sha256(audio).hexdigest())
    assert record.transcript == "quero trocar o tamanho"
    assert record.blob_key is not None
    blobs = await PostgresBlobStore.open(pg_url)
    try:
        assert await blobs.get(record.blob_key) == audio
    finally:
        await blobs.close()
    assert llm.transcriptions[-1]["bytes"] == len(audio)


async def test_a_download_that_fails_twice_then_succeeds(
    broker: Broker, store: PostgresStore, sim: Simulator, route: str
) -> None:
    sim.inject(FaultKind.SERVER_ERROR, endpoint="media_download", count=2)
    image = os.urandom(10_000)
    wamid = await fetch(broker, route, sim, image, "image", "image/jpeg")
    record = await settled(store, wamid)
    assert record.status is MediaStatus.AVAILABLE
    assert record.attempts == 3
    downloads = [f.outcome for f in sim.media_fetches() if f.step == "download"]
    assert downloads == [Outcome.REJECTED, Outcome.REJECTED, Outcome.ACCEPTED]


async def test_a_download_failing_every_time_ends_unavailable_with_the_reason(
    broker: Broker, store: PostgresStore, sim: Simulator, route: str
) -> None:
    sim.inject(FaultKind.UNAVAILABLE, endpoint="media_download", count=MAX_ATTEMPTS)
    wamid = await fetch(broker, route, sim, b"%PDF-1.4 x", "document", "application/pdf")
    record = await settled(store, wamid)
    assert record.status is MediaStatus.UNAVAILABLE
    assert record.attempts == MAX_ATTEMPTS
    assert record.reason is not None and "131016" in record.reason


async def test_a_file_over_metas_limit_is_not_downloaded(
    broker: Broker, store: PostgresStore, sim: Simulator, route: str
) -> None:
    too_big = b"\xff\xd8" + bytes(5 * 1024 * 1024)  # a JPEG of 5 MB + 2 bytes
    wamid = await fetch(broker, route, sim, too_big, "image", "image/jpeg")
    record = await settled(store, wamid)
    assert record.status is MediaStatus.UNAVAILABLE
    assert record.reason is not None and "limit" in record.reason
    assert not [f for f in sim.media_fetches() if f.step == "download"]


async def test_a_redelivered_fetch_downloads_once(
    broker: Broker, store: PostgresStore, sim: Simulator, route: str
) -> None:
    media = sim.add_media(b"\x89PNG" + os.urandom(500), "image/png")
    command = FetchMedia(phone_number_id=NUMBER, wamid=new_wamid(), kind="image", media_id=media.id)
    await broker.publish(COMMANDS, route, command)
    await settled(store, command.wamid)
    await broker.publish(COMMANDS, route, command)  # twice equals once
    marker = await fetch(broker, route, sim, b"\x89PNG", "image", "image/png")
    await settled(store, marker)  # the queue got past the duplicate
    downloads = [f for f in sim.media_fetches() if f.media_id == media.id and f.step == "download"]
    assert len(downloads) == 1


def test_sha256_is_checked_in_either_encoding() -> None:
    data = b"file"
    digest = hashlib.sha256(data).digest()
    assert sha256_matches(digest.hex(), data)
    assert sha256_matches(base64.b64encode(digest).decode(), data)
    assert not sha256_matches(hashlib.sha256(b"other").hexdigest(), data)
