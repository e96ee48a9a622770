"""Ingest's HTTP contract, in-process over ASGI, publishing to the real RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import httpx
import orjson
import pytest
from pydantic import SecretStr

from baton.broker import WEBHOOKS, Broker, QueueSpec
from baton.messages import WebhookChange
from baton.settings import Settings
from baton.whatsapp.signature import sign
from services.ingest.app import create_app
from tests.conftest import unique

pytestmark = pytest.mark.integration

SECRET = "test_app_secret"
SETTINGS = Settings(
    app_secret=SecretStr(SECRET),
    verify_token=SecretStr("s3cr3t-verify"),
    ingest_max_body_bytes=64 * 1024,
    publish_timeout_seconds=2.0,
)


def _webhook(field: str, marker: str) -> bytes:
    change = {
        "field": field,
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "900"},
            "messages": [
                {
                    "from": "5511",
                    "id": marker,
                    "timestamp": "1767225600",
                    "type": "text",
                    "text": {"body": "caf\u00e9"},
                }
            ],
        },
    }
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "800", "changes": [change, change]}],
        }
    )


@pytest.fixture
async def client(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SETTINGS, broker)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as c:
        yield c


async def _take(
    amqp_url: str, queue: str, expected: int
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url)
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    try:
        channel = await connection.channel()
        q = await channel.get_queue(queue)
        deadline = asyncio.get_running_loop().time() + 10
        while len(got) < expected and asyncio.get_running_loop().time() < deadline:
            message = await q.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            got.append(message)
    finally:
        await connection.close()
    return got


async def test_verification_handshake(client: httpx.AsyncClient) -> None:
    ok = await client.get(
        "/webhook",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "s3cr3t-verify",
            "hub.challenge": "42",
        },
    )
    assert ok.status_code == 200
    assert ok.text == "42"
    wrong = await client.get(
        "/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"},
    )
    assert wrong.status_code == 403


async def test_signed_webhook_is_published_once_per_change_after_confirm(
    client: httpx.AsyncClient, broker: Broker, amqp_url: str
) -> None:
    field = unique("f").replace("-", "_")
    queue = QueueSpec(unique("ingest.q"), WEBHOOKS, (field,))
    await broker.declare_queue(queue)
    body = _webhook(field, unique("wamid"))
    response = await client.post(
        "/webhook", content=body, headers={"X-Hub-Signature-256": sign(body, SECRET)}
    )
    assert response.status_code == 200
    published = await _take(amqp_url, queue.name, expected=2)
    assert len(published) == 2
    change = WebhookChange.model_validate_json(published[0].body)
    assert change.field == field
    assert change.entry_id == "800"
    assert change.value["messages"][0]["text"]["body"] == "caf\u00e9"
    assert published[0].delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert published[0].headers["phone_number_id"] == "900"
    # The same change gets the same message id, so a redelivery is recognisable downstream.
    assert published[0].message_id == published[1].message_id


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, 401),
        ({"X-Hub-Signature-256": "md5=abc"}, 401),
    ],
)
async def test_unsigned_or_badly_signed_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    response = await client.post("/webhook", content=_webhook("messages", "x"), headers=headers)
    assert response.status_code == status


async def test_tampered_body_is_refused(client: httpx.AsyncClient) -> None:
    body = _webhook("messages", "x")
    signature = sign(body, SECRET)
    tampered = body.replace(b"5511", b"5512")
    response = await client.post(
        "/webhook", content=tampered, headers={"X-Hub-Signature-256": signature}
    )
    assert response.status_code == 401


async def test_oversized_body_is_refused_before_verification(client: httpx.AsyncClient) -> None:
    body = b"{" + b" " * (SETTINGS.ingest_max_body_bytes + 1) + b"}"
    response = await client.post(
        "/webhook", content=body, headers={"X-Hub-Signature-256": sign(body, SECRET)}
    )
    assert response.status_code == 413


async def test_invalid_json_is_refused(client: httpx.AsyncClient) -> None:
    body = b'{"object": "whatsapp_business_account", "entry": ['
    response = await client.post(
        "/webhook", content=body, headers={"X-Hub-Signature-256": sign(body, SECRET)}
    )
    assert response.status_code == 400


async def test_malformed_envelope_is_refused(client: httpx.AsyncClient) -> None:
    body = b'{"object": "whatsapp_business_account", "entry": {"id": 1}}'
    response = await client.post(
        "/webhook", content=body, headers={"X-Hub-Signature-256": sign(body, SECRET)}
    )
    assert response.status_code == 400


async def test_dead_broker_means_503_never_200() -> None:
    dead = Broker("amqp://guest:guest@127.0.0.1:1/", name="dead")
    app = create_app(SETTINGS, dead)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as c:
        body = _webhook("messages", "x")
        response = await c.post(
            "/webhook", content=body, headers={"X-Hub-Signature-256": sign(body, SECRET)}
        )
        ready = await c.get("/readyz")
    assert response.status_code == 503
    assert ready.status_code == 503


async def test_broker_lost_after_connecting_means_503(amqp_url: str) -> None:
    broker = Broker(amqp_url, name="lost")
    await broker.connect()
    app = create_app(SETTINGS, broker)
    await broker.close()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as c:
        body = _webhook("messages", "x")
        response = await c.post(
            "/webhook", content=body, headers={"X-Hub-Signature-256": sign(body, SECRET)}
        )
    assert response.status_code == 503


async def test_unknown_field_is_kept_not_lost(
    client: httpx.AsyncClient, broker: Broker, amqp_url: str
) -> None:
    field = unique("nobody_binds").replace("-", "_")
    from baton.broker.topology import WEBHOOKS_UNROUTED

    await broker.declare_queue(WEBHOOKS_UNROUTED)
    body = _webhook(field, unique("wamid"))
    response = await client.post(
        "/webhook", content=body, headers={"X-Hub-Signature-256": sign(body, SECRET)}
    )
    assert response.status_code == 200
    parked = await _take(amqp_url, WEBHOOKS_UNROUTED.name, expected=2)
    assert {WebhookChange.model_validate_json(m.body).field for m in parked} == {field}
