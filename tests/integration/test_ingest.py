"""Ingest's HTTP contract, in-process over ASGI, publishing to the real RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from starlette.types import ASGIApp, Message

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


def _requests_counted(outcome: str) -> float:
    value = REGISTRY.get_sample_value("baton_webhook_requests_total", {"outcome": outcome})
    return value or 0.0


@pytest.mark.parametrize(
    ("headers", "outcome"),
    [
        ({}, "missing_signature"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "bad_signature"),
        ({"X-Hub-Signature-256": "md5=abc"}, "bad_signature"),
    ],
)
async def test_unsigned_or_badly_signed_is_refused_and_counted(
    client: httpx.AsyncClient, headers: dict[str, str], outcome: str
) -> None:
    before = _requests_counted(outcome)
    response = await client.post("/webhook", content=_webhook("messages", "x"), headers=headers)
    assert response.status_code == 401
    assert _requests_counted(outcome) == before + 1


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
    # The session's vhost is shared: other tests' unknown fields (calls, …) may be parked here.
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await (await channel.get_queue(WEBHOOKS_UNROUTED.name)).purge()
    body = _webhook(field, unique("wamid"))
    response = await client.post(
        "/webhook", content=body, headers={"X-Hub-Signature-256": sign(body, SECRET)}
    )
    assert response.status_code == 200
    parked = await _take(amqp_url, WEBHOOKS_UNROUTED.name, expected=2)
    assert {WebhookChange.model_validate_json(m.body).field for m in parked} == {field}


# POST /webhook is served by a bare ASGI callable in front of the FastAPI app: what follows pins
# down the edges that Starlette used to handle for it.


async def _asgi(
    app: ASGIApp, method: str, headers: list[tuple[bytes, bytes]], events: list[Message]
) -> tuple[list[Message], int]:
    """Drive the ASGI app directly: the request `events` in order; returns what it sent and
    how many events it asked for (after the last one, a client that is gone)."""
    sent: list[Message] = []
    asked = 0

    async def receive() -> Message:
        nonlocal asked
        asked += 1
        return events[asked - 1] if asked <= len(events) else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/webhook",
        "raw_path": b"/webhook",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"ingest"), *headers],
        "client": ("127.0.0.1", 4000),
        "server": ("127.0.0.1", 8080),
    }
    await app(scope, receive, send)
    return sent, asked


def _chunks(body: bytes, size: int) -> list[Message]:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_body_in_many_chunks_is_reassembled_and_published(
    broker: Broker, amqp_url: str
) -> None:
    field = unique("f").replace("-", "_")
    queue = QueueSpec(unique("ingest.q"), WEBHOOKS, (field,))
    await broker.declare_queue(queue)
    body = _webhook(field, unique("wamid"))
    app = create_app(SETTINGS, broker)
    accepted = _count("baton_webhook_requests_total", outcome="accepted")
    published = _count("baton_webhook_changes_published_total", field="other")
    signature = (b"x-hub-signature-256", sign(body, SECRET).encode())
    sent, _ = await _asgi(app, "POST", [signature], _chunks(body, 7))
    assert sent[0]["status"] == 200
    changes = [
        WebhookChange.model_validate_json(m.body) for m in await _take(amqp_url, queue.name, 2)
    ]
    assert [c.field for c in changes] == [field, field]
    assert changes[0].value["messages"][0]["text"]["body"] == "caf\u00e9"
    assert _count("baton_webhook_requests_total", outcome="accepted") == accepted + 1
    # Both changes are counted, under the bounded label for a field ingest does not know.
    assert _count("baton_webhook_changes_published_total", field="other") == published + 2


async def test_stream_over_the_limit_is_refused_without_reading_the_rest(broker: Broker) -> None:
    app = create_app(SETTINGS, broker)
    body = b"{" + b" " * (2 * SETTINGS.ingest_max_body_bytes) + b"}"
    events = _chunks(body, 1024)  # no content-length: the size is only known while reading
    sent, asked = await _asgi(app, "POST", [], events)
    assert sent[0]["status"] == 413
    assert sent[1]["body"] == b"too large"
    assert asked < len(events)


async def test_declared_length_over_the_limit_is_refused_before_reading(broker: Broker) -> None:
    app = create_app(SETTINGS, broker)
    too_long = str(SETTINGS.ingest_max_body_bytes + 1).encode()
    sent, asked = await _asgi(app, "POST", [(b"content-length", too_long)], _chunks(b"{}", 2))
    assert sent[0]["status"] == 413
    assert asked == 0


async def test_unparseable_declared_length_falls_back_to_counting(broker: Broker) -> None:
    app = create_app(SETTINGS, broker)
    body = b'{"object": "whatsapp_business_account", "entry": []}'
    headers = [(b"content-length", b"lots"), (b"x-hub-signature-256", sign(body, SECRET).encode())]
    sent, _ = await _asgi(app, "POST", headers, _chunks(body, 10))
    assert sent[0]["status"] == 200  # signed, and no changes to publish


async def test_client_gone_mid_body_gets_no_answer_and_nothing_published(
    broker: Broker, amqp_url: str
) -> None:
    field = unique("f").replace("-", "_")
    queue = QueueSpec(unique("ingest.q"), WEBHOOKS, (field,))
    await broker.declare_queue(queue)
    body = _webhook(field, unique("wamid"))
    app = create_app(SETTINGS, broker)
    headers = [(b"x-hub-signature-256", sign(body, SECRET).encode())]
    sent, asked = await _asgi(app, "POST", headers, _chunks(body, 100)[:2])
    assert sent == []
    assert asked == 3  # two chunks, then the disconnect
    # The same request completed afterwards is published: nothing of the first one was.
    complete, _ = await _asgi(app, "POST", headers, _chunks(body, 100))
    assert complete[0]["status"] == 200
    assert len(await _take(amqp_url, queue.name, expected=2)) == 2
    assert await _next_now(amqp_url, queue.name) is None


async def _next_now(amqp_url: str, queue: str) -> aio_pika.abc.AbstractIncomingMessage | None:
    """One basic.get, no waiting: after a confirm the message is already in the queue."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        return await (await channel.get_queue(queue)).get(fail=False)
    finally:
        await connection.close()


async def test_first_signature_header_is_the_one_checked(broker: Broker) -> None:
    app = create_app(SETTINGS, broker)
    body = _webhook("messages", "x")
    good = (b"x-hub-signature-256", sign(body, SECRET).encode())
    bad = (b"x-hub-signature-256", b"sha256=" + b"0" * 64)
    refused, _ = await _asgi(app, "POST", [bad, good], _chunks(body, len(body)))
    assert refused[0]["status"] == 401


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD"])
async def test_other_methods_on_webhook_are_not_allowed(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, "/webhook", content=b"{}")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


async def test_ops_routes_are_served_behind_the_webhook_path(client: httpx.AsyncClient) -> None:
    body = _webhook("messages", "x")
    await client.post("/webhook", content=body)  # unsigned: counted as missing_signature
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'baton_webhook_requests_total{outcome="missing_signature"}' in metrics.text
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    redirected = await client.post("/webhook/", content=body)
    assert redirected.status_code == 307
    assert redirected.headers["location"] == "http://ingest/webhook"
