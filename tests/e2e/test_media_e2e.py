"""Media both ways, end to end (issue 18): the whole stack as processes, the simulator serving
customers' files and taking uploads, the fake LLM transcribing voice notes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import DEV_APP_SECRET, Fault, FaultKind, Outcome, SimulatorClient
from simulator.webhooks import (
    MediaKind,
    customer_text,
    envelope,
    media_message,
    messages_change,
    meta_json,
    post_webhook,
)
from tests.conftest import unique
from tests.e2e.conftest import (
    RunningStack,
    fake_llm,
    free_port,
    fresh_ports,
    launched,
    numbers_file,
    stack_env,
)
from tests.e2e.console_support import (
    AGENT_TOKENS,
    ALICE_TOKEN,
    CAROL_TOKEN,
    agents_file_text,
    bearer,
)
from tests.fakes.llm import ECHO_PREFIX
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

NUMBER = "900000000001818"


@pytest.fixture(scope="module")
def media_stack(
    amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """The stack with a fake LLM process answering chat and speech-to-text."""
    llm_port = free_port()
    ports = fresh_ports()
    workdir: Path = tmp_path_factory.mktemp("media-stack")
    agents = workdir / "agents.toml"
    agents.write_text(agents_file_text())  # carol: another number only
    env = stack_env(
        amqp_url,
        pg_url,
        ports,
        BATON_LLM_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
        BATON_LLM_API_KEY="fake-key",
        BATON_STT_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
        BATON_AGENT_TOKENS=AGENT_TOKENS,
        BATON_AGENTS_FILE=str(agents),
        BATON_NUMBERS_FILE=str(numbers_file(workdir, NUMBER)),
    )
    with launched(env, ports, workdir / "logs", fakes=[fake_llm(llm_port)]) as running:
        yield running


@pytest.fixture
async def sim(media_stack: RunningStack) -> AsyncIterator[SimulatorClient]:
    client = SimulatorClient(media_stack.sim_url)
    yield client
    await client.aclose()


@pytest.fixture
async def console(media_stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    url = f"http://127.0.0.1:{media_stack.ports.console}"
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        yield client


def new_customer() -> str:
    return "55" + unique("")[1:10].translate(str.maketrans("abcdef", "123456"))


async def deliver(stack: RunningStack, change: dict[str, Any]) -> None:
    body = meta_json(envelope([change]))
    response = await post_webhook(stack.webhook_url, body, DEV_APP_SECRET)
    assert response.status_code == 200


async def customer_sends_file(
    stack: RunningStack,
    sim: SimulatorClient,
    customer: str,
    content: bytes,
    kind: MediaKind,
    mime: str,
    **fields: Any,
) -> str:
    media = await sim.add_media(content, mime)
    item = media_message(
        customer, kind, media_id=media.id, mime_type=mime, sha256=media.sha256, **fields
    )
    await deliver(stack, messages_change(NUMBER, [item]))
    return str(item["id"])


async def conversation_of(console: httpx.AsyncClient, customer: str) -> int:
    async def probe() -> int | None:
        response = await console.get(
            "/conversations", params={"number": NUMBER}, headers=bearer(ALICE_TOKEN)
        )
        response.raise_for_status()
        found = [c["id"] for c in response.json()["items"] if c["wa_id"] == customer]
        return found[0] if found else None

    return await eventually(probe, what=f"the conversation of {customer}")


async def media_of(
    console: httpx.AsyncClient, conversation: int, wamid: str, *, done: str = "status"
) -> dict[str, Any]:
    """The message's `media` once its download settled (and `done` is set)."""

    async def probe() -> dict[str, Any] | None:
        response = await console.get(
            f"/conversations/{conversation}/messages", headers=bearer(ALICE_TOKEN)
        )
        response.raise_for_status()
        for message in response.json()["items"]:
            media = message.get("media")
            if message["wamid"] == wamid and media and media["status"] != "pending":
                return media if media.get(done) is not None else None
        return None

    found: dict[str, Any] = await eventually(probe, timeout=30, what=f"media of {wamid}")
    return found


async def bot_replies(sim: SimulatorClient, customer: str) -> list[str]:
    sent = await sim.messages(to=customer, outcome=Outcome.ACCEPTED)
    return [m.body or "" for m in sent]


async def test_a_voice_notes_transcript_reaches_the_bot_and_the_agent(
    media_stack: RunningStack, sim: SimulatorClient, console: httpx.AsyncClient
) -> None:
    customer = new_customer()
    audio = b"OggS\x00\x02" + os.urandom(2048) + b"TRANSCRIPT:meu pedido 4512 chegou quebrado"
    wamid = await customer_sends_file(
        media_stack, sim, customer, audio, "audio", "audio/ogg", voice=True
    )

    async def answered() -> list[str] | None:
        bodies = await bot_replies(sim, customer)
        return bodies or None

    [reply] = await eventually(answered, timeout=40, what="the bot's answer to the voice note")
    assert reply == ECHO_PREFIX + "meu pedido 4512 chegou quebrado"
    conversation = await conversation_of(console, customer)
    media = await media_of(console, conversation, wamid, done="transcript")
    assert media["transcript"] == "meu pedido 4512 chegou quebrado"
    assert (media["kind"], media["voice"], media["size"]) == ("audio", True, len(audio))


async def test_an_image_reaches_an_agent_byte_identical_and_a_stranger_gets_401(
    media_stack: RunningStack, sim: SimulatorClient, console: httpx.AsyncClient
) -> None:
    customer = new_customer()
    image = b"\xff\xd8\xff\xe0" + os.urandom(150_000)
    wamid = await customer_sends_file(
        media_stack, sim, customer, image, "image", "image/jpeg", caption="a caixa amassada"
    )
    conversation = await conversation_of(console, customer)
    media = await media_of(console, conversation, wamid)
    assert media["status"] == "available"
    assert (media["caption"], media["mime_type"]) == ("a caixa amassada", "image/jpeg")
    url = media["url"]

    got = await console.get(url, headers=bearer(ALICE_TOKEN))
    assert got.status_code == 200
    assert got.content == image
    assert got.headers["content-type"] == "image/jpeg"

    part = await console.get(url, headers={**bearer(ALICE_TOKEN), "Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.content == image[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(image)}"

    assert (await console.get(url)).status_code == 401
    assert (await console.get(url, headers=bearer("not-a-token"))).status_code == 401
    assert (await console.get(url, headers=bearer(CAROL_TOKEN))).status_code == 403

    # Without a vision model the bot says it cannot open the file, and offers a person.
    async def noticed() -> list[str] | None:
        return [b for b in await bot_replies(sim, customer) if "atendente" in b] or None

    [notice] = await eventually(noticed, timeout=30, what="the bot's notice about the image")
    assert notice.startswith("Recebi seu arquivo (imagem)")


async def take_over(console: httpx.AsyncClient, stack: RunningStack, customer: str) -> int:
    await deliver(stack, customer_text(NUMBER, customer, "posso mandar a nota?"))
    conversation = await conversation_of(console, customer)
    response = await console.post(
        f"/conversations/{conversation}/takeover", headers=bearer(ALICE_TOKEN)
    )
    assert response.status_code == 200, response.text
    return conversation


async def test_an_agent_sends_a_pdf_that_arrives_by_media_id(
    media_stack: RunningStack, sim: SimulatorClient, console: httpx.AsyncClient
) -> None:
    customer = new_customer()
    conversation = await take_over(console, media_stack, customer)
    pdf = b"%PDF-1.4\n" + os.urandom(40_000)
    response = await console.post(
        f"/conversations/{conversation}/messages",
        headers={**bearer(ALICE_TOKEN), "Idempotency-Key": unique("pdf")},
        files={"file": ("nota-fiscal.pdf", pdf, "application/pdf")},
        data={"text": "Segue a nota"},
    )
    assert response.status_code == 202, response.text

    async def delivered() -> list[Any] | None:
        sent = await sim.messages(to=customer, outcome=Outcome.ACCEPTED)
        return [m for m in sent if m.type == "document"] or None

    [sent] = await eventually(delivered, timeout=30, what="the PDF at the simulator")
    assert sent.media_id is not None
    assert (sent.caption, sent.filename) == ("Segue a nota", "nota-fiscal.pdf")
    assert await sim.media_content(sent.media_id) == pdf

    # The agent sees it in the history, as a document they can fetch back.
    async def in_history() -> dict[str, Any] | None:
        page = await console.get(
            f"/conversations/{conversation}/messages", headers=bearer(ALICE_TOKEN)
        )
        for message in page.json()["items"]:
            if message["direction"] == "out" and message["type"] == "document":
                return dict(message)
        return None

    message = await eventually(in_history, what="the PDF in the history")
    assert message["media"]["filename"] == "nota-fiscal.pdf"
    back = await console.get(message["media"]["url"], headers=bearer(ALICE_TOKEN))
    assert back.content == pdf


async def test_a_download_that_fails_twice_then_succeeds(
    media_stack: RunningStack, sim: SimulatorClient, console: httpx.AsyncClient
) -> None:
    customer = new_customer()
    await sim.inject(Fault(kind=FaultKind.SERVER_ERROR, endpoint="media_download", count=2))
    document = b"%PDF-1.7\n" + os.urandom(5000)
    added = await sim.add_media(document, "application/pdf")
    item = media_message(
        customer, "document", media_id=added.id, sha256=added.sha256, filename="boleto.pdf"
    )
    await deliver(media_stack, messages_change(NUMBER, [item]))
    conversation = await conversation_of(console, customer)
    media = await media_of(console, conversation, str(item["id"]))
    assert media["status"] == "available"
    fetched = await console.get(media["url"], headers=bearer(ALICE_TOKEN))
    assert fetched.content == document
    downloads = [
        f.outcome
        for f in await sim.media_fetches()
        if f.media_id == added.id and f.step == "download"
    ]
    assert downloads == [Outcome.REJECTED, Outcome.REJECTED, Outcome.ACCEPTED]


async def test_an_oversized_file_is_refused_before_any_call_to_meta(
    media_stack: RunningStack, sim: SimulatorClient, console: httpx.AsyncClient
) -> None:
    customer = new_customer()
    conversation = await take_over(console, media_stack, customer)
    uploads_before = len(await sim.uploads())
    sends_before = len(await sim.messages(to=customer))
    too_big = b"\xff\xd8\xff\xe0" + bytes(5 * 1024 * 1024)  # WhatsApp's images: 5 MB at most
    response = await console.post(
        f"/conversations/{conversation}/messages",
        headers=bearer(ALICE_TOKEN),
        files={"file": ("foto.jpg", too_big, "image/jpeg")},
    )
    assert response.status_code == 413
    assert "limit of 5242880 bytes" in response.json()["detail"]
    unsupported = await console.post(
        "/media",
        headers=bearer(ALICE_TOKEN),
        files={"file": ("setup.exe", b"MZ" + bytes(100), "application/x-msdownload")},
        data={"number": NUMBER},
    )
    assert unsupported.status_code == 415
    assert "does not accept" in unsupported.json()["detail"]
    assert len(await sim.uploads()) == uploads_before
    assert len(await sim.messages(to=customer)) == sends_before
