"""The router drops customer messages and echoes of an offboarded number (real PostgreSQL and
RabbitMQ): nothing stored, no state, no bot request, no event; its statuses still recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from baton.broker import EVENTS, Broker, Delivery, QueueSpec
from baton.messages import MessageReceived, MessageStatusChanged, WebhookChange
from baton.settings import Settings
from baton.store import PostgresStore
from baton.store.records import NewOutbound
from baton.types import Author
from bench.outbox_harness import customer_id, number_id
from services.router import metrics
from services.router.app import RouterApp, bootstrap
from tests.conftest import unique
from tests.fakes.whatsapp.webhooks import customer_text, echo_change, status_change
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def app(store: PostgresStore, broker: Broker) -> RouterApp:
    return bootstrap(Settings(), store, broker)


@pytest.fixture
async def announced(broker: Broker) -> list[Delivery]:
    seen: list[Delivery] = []

    async def collect(delivery: Delivery) -> None:
        seen.append(delivery)

    spec = QueueSpec(unique("test.router.offboarded"), EVENTS, ("event.conversation.#",))
    await broker.consume(spec, collect, prefetch=20, max_attempts=1)
    return seen


def _delivery(change: dict[str, Any], *, attempt: int = 1) -> Delivery:
    body = WebhookChange(
        entry_id="800000000000001",
        field=change["field"],
        value=change["value"],
        received_at=datetime.now(UTC),
    )
    return Delivery(
        body=body.model_dump_json().encode(),
        type=WebhookChange.TYPE,
        message_id=unique("m"),
        correlation_id=None,
        routing_key=change["field"],
        attempt=attempt,
    )


def _ignored(kind: str) -> float:
    value: float = metrics.IGNORED.labels(kind=kind, reason="number_disabled")._value.get()
    return value


async def _rows(store: PostgresStore, pnid: str, wa_id: str) -> tuple[int, int]:
    """(conversations, messages) stored for one customer of a number."""
    row = await store.pool.fetchrow(
        "SELECT (SELECT count(*) FROM conversations WHERE phone_number_id = $1 AND wa_id = $2),"
        " (SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        "   WHERE c.phone_number_id = $1 AND c.wa_id = $2)",
        pnid,
        wa_id,
    )
    assert row is not None
    return (row[0], row[1])


async def _offboard(store: PostgresStore, pnid: str) -> None:
    disabled = await store.disable_number(
        phone_number_id=pnid,
        display_phone_number=None,
        reason="PARTNER_REMOVED:ACCOUNT_DISCONNECTED",
        now=datetime.now(UTC),
    )
    assert disabled == [pnid]


async def test_messages_and_echoes_of_an_offboarded_number_are_ignored_but_statuses_recorded(
    app: RouterApp, store: PostgresStore, announced: list[Delivery]
) -> None:
    pnid, writer, owner_chat, earlier = number_id(), customer_id(1), customer_id(2), customer_id(3)
    # A message we sent before the offboarding, whose status arrives after it.
    conversation = await store.conversation(pnid, earlier)
    key, sent_wamid = unique("reply"), unique("wamid")
    await store.begin_outbound(
        NewOutbound(
            idempotency_key=key,
            conversation_id=conversation.id,
            phone_number_id=pnid,
            author=Author.BOT,
            body="Olá! Como posso ajudar?",
            epoch=0,
        )
    )
    await store.complete_outbound(key, sent_wamid, datetime.now(UTC))
    await _offboard(store, pnid)
    before = (_ignored("customer"), _ignored("echo"))

    # One change carrying a customer message and then the status (messages go first).
    change = customer_text(pnid, writer, "oi, ainda estão aí?")
    change["value"]["statuses"] = status_change(pnid, sent_wamid, "delivered", earlier)["value"][
        "statuses"
    ]
    await app.router.on_webhook(_delivery(echo_change(pnid, owner_chat, "Oi! Aqui é a Ana.")))
    await app.router.on_webhook(_delivery(change))
    await app.router.on_webhook(_delivery(change, attempt=2))  # a retry: ignored the same way

    assert (_ignored("customer"), _ignored("echo")) == (before[0] + 2, before[1] + 1)
    assert await _rows(store, pnid, writer) == (0, 0)
    assert await _rows(store, pnid, owner_chat) == (0, 0)
    # The earlier conversation is untouched by the state machine, and its status recorded.
    state = await store.load_conversation_state(conversation.id)
    assert state is not None
    assert (state.version, state.buffer) == (0, ())
    [stored] = await store.recent_messages(conversation.id, limit=5)
    assert stored.status == "delivered"

    async def status_announced() -> list[Delivery] | None:
        found = [
            d
            for d in announced
            if d.type == MessageStatusChanged.TYPE
            and MessageStatusChanged.model_validate_json(d.body).wamid == sent_wamid
        ]
        return found if len(found) == 2 else None  # the first, then the retry's re-announcement

    # Events of one publisher arrive in order: once the last status event is here, any event
    # of the ignored echo or messages (published before it) would be too.
    await eventually(status_announced, what="the status announced")
    received = [
        e
        for e in (
            MessageReceived.model_validate_json(d.body)
            for d in announced
            if d.type == MessageReceived.TYPE
        )
        if e.phone_number_id == pnid
    ]
    assert received == []


async def test_the_same_message_is_routed_while_the_number_is_connected(
    app: RouterApp, store: PostgresStore
) -> None:
    # The control of the test above: only the offboarding makes the difference.
    pnid, writer = number_id(), customer_id(1)
    before = _ignored("customer")
    await app.router.on_webhook(_delivery(customer_text(pnid, writer, "oi, ainda estão aí?")))
    assert await _rows(store, pnid, writer) == (1, 1)
    state = await store.load_conversation_state((await store.conversation(pnid, writer)).id)
    assert state is not None
    assert len(state.buffer) == 1  # buffered for the bot
    assert _ignored("customer") == before
