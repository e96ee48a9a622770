"""The Graph client's media calls against the simulator: info, download, upload, send by id."""

from __future__ import annotations

import os

import pytest

from baton.whatsapp import GraphApiError, GraphClient
from baton.whatsapp._media_client import MediaTooLarge
from simulator import FaultKind, Outcome, Simulator

pytestmark = pytest.mark.integration

NUMBER = "900000000001801"


async def test_download_a_customers_file(sim: Simulator) -> None:
    content = os.urandom(70_000)
    media = sim.add_media(content, "image/jpeg")
    async with GraphClient(sim.base_url, sim.config.token) as graph:
        info = await graph.media_info(media.id, NUMBER)
        assert (info.mime_type, info.file_size, info.sha256) == (
            "image/jpeg",
            len(content),
            media.sha256_hex,
        )
        assert await graph.download(info.url, NUMBER, max_bytes=len(content)) == content
        with pytest.raises(MediaTooLarge):
            await graph.download(info.url, NUMBER, max_bytes=len(content) - 1)


async def test_the_download_url_needs_the_token(sim: Simulator) -> None:
    media = sim.add_media(b"voice", "audio/ogg")
    async with GraphClient(sim.base_url, sim.config.token) as graph:
        info = await graph.media_info(media.id, NUMBER)
    async with GraphClient(sim.base_url, "wrong-token") as stranger:
        with pytest.raises(GraphApiError) as refused:
            await stranger.download(info.url, NUMBER, max_bytes=100)
    assert refused.value.http_status == 401


async def test_download_faults_are_graph_errors(sim: Simulator) -> None:
    media = sim.add_media(b"%PDF-1.4", "application/pdf")
    sim.inject(FaultKind.SERVER_ERROR, endpoint="media_download")
    async with GraphClient(sim.base_url, sim.config.token) as graph:
        info = await graph.media_info(media.id, NUMBER)
        with pytest.raises(GraphApiError) as failed:
            await graph.download(info.url, NUMBER, max_bytes=100)
        assert failed.value.retryable
        assert await graph.download(info.url, NUMBER, max_bytes=100) == b"%PDF-1.4"


async def test_upload_then_send_by_id(sim: Simulator) -> None:
    pdf = b"%PDF-1.4 " + os.urandom(1000)
    async with GraphClient(sim.base_url, sim.config.token) as graph:
        media_id = await graph.upload_media(
            NUMBER, pdf, mime_type="application/pdf", filename="invoice.pdf"
        )
        sent = await graph.send_media(
            NUMBER,
            "5511988887777",
            "document",
            media_id,
            caption="Sua nota",
            filename="invoice.pdf",
        )
    [message] = sim.accepted(NUMBER)
    assert (message.wamid, message.type, message.media_id) == (sent.wamid, "document", media_id)
    assert (message.caption, message.filename) == ("Sua nota", "invoice.pdf")
    assert sim.runtime.state.media[media_id].content == pdf


async def test_meta_refuses_unsupported_uploads_and_unknown_ids(sim: Simulator) -> None:
    async with GraphClient(sim.base_url, sim.config.token) as graph:
        with pytest.raises(GraphApiError) as refused:
            await graph.upload_media(
                NUMBER, b"MZ", mime_type="application/x-msdownload", filename="a.exe"
            )
        assert refused.value.code == 100
        with pytest.raises(GraphApiError):
            await graph.send_media(NUMBER, "5511988887777", "image", "123456")
    assert [u.outcome for u in sim.uploads()] == [Outcome.REJECTED]
