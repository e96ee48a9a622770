"""What the bot makes of a burst's files, on the real store and blob store with the fake LLM as
the vision model: a described image, a transcript, a file still downloading."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from baton.blobs import PostgresBlobStore
from baton.messages import AskBot, BurstMessage
from baton.store import PostgresStore
from baton.store.media_records import NewMedia
from baton.types import Direction
from services.bot.media_ai import Describer
from services.bot.media_reading import MediaReader
from simulator.webhooks import new_wamid
from tests.fakes.llm import VISION_PREFIX, FakeLLM, serve_fake_llm

pytestmark = pytest.mark.integration

NUMBER = "900000000001803"


@pytest.fixture
async def blobs(pg_url: str) -> AsyncIterator[PostgresBlobStore]:
    opened = await PostgresBlobStore.open(pg_url)
    yield opened
    await opened.close()


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with serve_fake_llm() as fake:
        yield fake


async def kept(
    store: PostgresStore, blobs: PostgresBlobStore, kind: str, data: bytes | None, **extra: str
) -> str:
    wamid = new_wamid()
    key = None
    if data is not None:
        key = f"test/{uuid.uuid4().hex}"
        await blobs.put(key, data, content_type="image/jpeg")
    await store.register_media(
        NewMedia(
            phone_number_id=NUMBER,
            direction=Direction.INBOUND,
            kind=kind,
            wamid=wamid,
            mime_type="image/jpeg" if kind == "image" else "audio/ogg",
            blob_key=key,
            size=len(data) if data is not None else None,
            **extra,
        )
    )
    return wamid


def burst(*messages: tuple[str, str, str]) -> AskBot:
    return AskBot(
        conversation_id=1,
        phone_number_id=NUMBER,
        wa_id="5511900000000",
        epoch=0,
        messages=tuple(
            BurstMessage(wamid=w, type=t, text=text, timestamp=datetime.now(UTC))
            for w, t, text in messages
        ),
    )


async def test_an_image_is_described_with_its_caption(
    store: PostgresStore, blobs: PostgresBlobStore, llm: FakeLLM
) -> None:
    image = os.urandom(2000)
    wamid = await kept(store, blobs, "image", image, caption="chegou assim")
    describer = Describer(llm.base_url, model="vision", api_key="k", timeout_seconds=5)
    reader = MediaReader(store, blobs, transcribing=False, describer=describer, wait_seconds=5)
    try:
        reading = await reader.read(burst((wamid, "image", "[image] chegou assim")), "pt-BR")
    finally:
        await describer.aclose()
    assert reading.unread == ()
    description = f"{VISION_PREFIX}image/jpeg of {len(image)} bytes"
    assert reading.request.messages[0].text == f"chegou assim\n[image: {description}]"
    assert llm.requests[-1].body["model"] == "vision"
    stored = (await store.media_by_wamids(NUMBER, [wamid]))[wamid]
    assert stored.description == description


async def test_a_transcript_is_the_customers_text(
    store: PostgresStore, blobs: PostgresBlobStore
) -> None:
    wamid = await kept(store, blobs, "audio", b"OggS")
    record = (await store.media_by_wamids(NUMBER, [wamid]))[wamid]
    await store.media_described(record.id, transcript="quero falar do boleto")
    reader = MediaReader(store, blobs, transcribing=True, describer=None, wait_seconds=5)
    reading = await reader.read(
        burst(("wamid.text", "text", "oi"), (wamid, "audio", "[voice message]")), "pt-BR"
    )
    assert [m.text for m in reading.request.messages] == ["oi", "quero falar do boleto"]
    assert reading.unread == ()


async def test_a_file_still_downloading_is_unread_after_the_wait(
    store: PostgresStore, blobs: PostgresBlobStore
) -> None:
    wamid = await kept(store, blobs, "image", None, caption="olha")
    reader = MediaReader(store, blobs, transcribing=False, describer=None, wait_seconds=0.3)
    reading = await reader.read(burst((wamid, "image", "[image] olha")), "en")
    assert [u.reason for u in reading.unread] == ["still downloading"]
    assert reading.request.messages[0].text == "olha"
    kept_placeholder = await reader.read(
        burst((wamid, "image", "[image] olha")), "en", keep_placeholders=True
    )
    assert kept_placeholder.request.messages[0].text == "[image] olha"
