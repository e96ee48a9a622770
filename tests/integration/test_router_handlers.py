"""The router's handlers in-process, on the real PostgreSQL and RabbitMQ: dedupe, echoes, statuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from baton.broker import EVENTS, Broker, Delivery, Poison, QueueSpec
from baton.handoff import ConversationState
from baton.messages import (
    BotTurnFinished,
    MessageReceived,
    MessageStatusChanged,
    WebhookChange,
)
from baton.settings import Settings
from baton.store import PostgresStore
from baton.store.records import NewInbound, NewOutbound
from baton.types import Author, Mode
from services.router.app import RouterApp, bootstrap
from tests.conftest import unique
from tests.fakes.whatsapp.webhooks import (
    customer_text,
    echo_change,
    messages_change,
    reaction_message,
    status_change,
)
from tests.waiting import eventually

pytestmark = pytest.mark.integration

NUMBER = "900000000000401"


@pytest.fixture
def app(store: PostgresStore, broker: Broker) -> RouterApp:
    return bootstrap(Settings(), store, broker)


@pytest.fixture
async def announced(broker: Broker) -> list[Delivery]:
    seen: list[Delivery] = []

    async def collect(delivery: Delivery) -> None:
        seen.append(delivery)

    spec = QueueSpec(unique("test.router.announced"), EVENTS, ("event.conversation.#",))
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


async def _state(store: PostgresStore, customer: str) -> ConversationState:
    conversation = await store.conversation(NUMBER, customer)
    state = await store.load_conversation_state(conversation.id)
    assert state is not None
    return state


async def test_a_message_stored_before_a_crash_still_reaches_the_state(
    app: RouterApp, store: PostgresStore
) -> None:
    customer, wamid = unique("55"), unique("wamid")
    change = customer_text(NUMBER, customer, "oi, tudo bem?", wamid=wamid)
    # The previous delivery stored the message, then its process died before the state save.
    await store.record_inbound(
        NewInbound(
            phone_number_id=NUMBER,
            wa_id=customer,
            wamid=wamid,
            type="text",
            body="oi, tudo bem?",
            sent_at=datetime.now(UTC),
            payload={},
        )
    )
    await app.router.on_webhook(_delivery(change, attempt=2))
    state = await _state(store, customer)
    assert [m.wamid for m in state.buffer] == [wamid]

    await app.router.on_webhook(_delivery(change))  # routed now: a plain duplicate
    assert await _state(store, customer) == state


async def test_a_reaction_keeps_the_window_open_but_never_reaches_the_bot(
    app: RouterApp, store: PostgresStore
) -> None:
    customer = unique("55")
    reaction = reaction_message(customer, "wamid.ours", "👍")
    await app.router.on_webhook(_delivery(messages_change(NUMBER, [reaction])))
    state = await _state(store, customer)
    assert state.buffer == ()
    assert state.customer_window_expires_at is not None


async def test_owner_echoes_pause_and_a_command_is_stored_as_control(
    app: RouterApp, store: PostgresStore, announced: list[Delivery]
) -> None:
    customer = unique("55")
    await app.router.on_webhook(_delivery(echo_change(NUMBER, customer, "Oi! Aqui é a Ana.")))
    assert (await _state(store, customer)).mode is Mode.PAUSED
    await app.router.on_webhook(_delivery(echo_change(NUMBER, customer, "#BOT")))
    state = await _state(store, customer)
    assert state.mode is Mode.BOT

    stored = await store.recent_messages(state.conversation_id, limit=10)
    assert [(m.author, m.type, m.body) for m in stored] == [
        (Author.APP, "text", "Oi! Aqui é a Ana."),
        (Author.APP, "command", "#BOT"),
    ]

    async def received() -> list[MessageReceived]:
        found = [
            MessageReceived.model_validate_json(d.body)
            for d in announced
            if d.type == MessageReceived.TYPE
        ]
        return [e for e in found if e.conversation_id == state.conversation_id]

    events = await eventually(lambda: _at_least(received, 2), what="both echoes announced")
    assert [(e.author, e.type, e.mode) for e in events] == [
        (Author.APP, "text", Mode.PAUSED),
        (Author.APP, "command", Mode.BOT),
    ]


async def test_an_echo_of_our_own_send_is_no_takeover(app: RouterApp, store: PostgresStore) -> None:
    customer = unique("55")
    conversation = await store.conversation(NUMBER, customer)
    key, wamid = unique("reply"), unique("wamid")
    await store.begin_outbound(
        NewOutbound(
            idempotency_key=key,
            conversation_id=conversation.id,
            phone_number_id=NUMBER,
            author=Author.BOT,
            body="Olá! Como posso ajudar?",
            epoch=0,
        )
    )
    await store.complete_outbound(key, wamid, datetime.now(UTC))
    echo = echo_change(NUMBER, customer, "Olá! Como posso ajudar?", wamid=wamid)
    await app.router.on_webhook(_delivery(echo))
    state = await _state(store, customer)
    assert (state.mode, state.version) == (Mode.BOT, 0)


async def test_a_status_is_recorded_once_and_announced(
    app: RouterApp, store: PostgresStore, announced: list[Delivery]
) -> None:
    customer = unique("55")
    conversation = await store.conversation(NUMBER, customer)
    key, wamid = unique("reply"), unique("wamid")
    await store.begin_outbound(
        NewOutbound(
            idempotency_key=key,
            conversation_id=conversation.id,
            phone_number_id=NUMBER,
            author=Author.SYSTEM,
            body="Um atendente vai falar com você.",
        )
    )
    await store.complete_outbound(key, wamid, datetime.now(UTC))
    delivered = status_change(NUMBER, wamid, "delivered", customer)
    await app.router.on_webhook(_delivery(delivered))
    await app.router.on_webhook(_delivery(delivered))

    async def statuses() -> list[MessageStatusChanged]:
        found = [
            MessageStatusChanged.model_validate_json(d.body)
            for d in announced
            if d.type == MessageStatusChanged.TYPE
        ]
        return [s for s in found if s.wamid == wamid]

    [event] = await eventually(statuses, what="the status announced")
    assert (event.conversation_id, event.status) == (conversation.id, "delivered")
    [stored] = await store.recent_messages(conversation.id, limit=5)
    assert stored.status == "delivered"


async def test_a_bot_command_for_an_unknown_conversation_is_poison(app: RouterApp) -> None:
    turn = BotTurnFinished(
        request_id="r", conversation_id=2_000_000_000, phone_number_id=NUMBER, wa_id="55", epoch=0
    )
    delivery = Delivery(
        body=turn.model_dump_json().encode(),
        type=BotTurnFinished.TYPE,
        message_id="m",
        correlation_id=None,
        routing_key=BotTurnFinished.TYPE,
        attempt=1,
    )
    with pytest.raises(Poison):
        await app.router.on_command(delivery)


async def _at_least(probe: Any, count: int) -> Any:
    found = await probe()
    return found if len(found) >= count else None
