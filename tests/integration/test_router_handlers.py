"""The router's handlers in-process, on the real PostgreSQL and RabbitMQ: dedupe, echoes, statuses,
and an offboarded number (nothing stored, decided or announced; its statuses still recorded)."""

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
from services.router import metrics
from services.router.app import RouterApp, bootstrap
from simulator.webhooks import (
    customer_text,
    echo_change,
    messages_change,
    reaction_message,
    status_change,
)
from tests.conftest import unique
from tests.outbox_harness import customer_id, number_id
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


async def test_a_redelivered_echo_is_announced_again_only_when_the_broker_retried_it(
    app: RouterApp, store: PostgresStore, announced: list[Delivery]
) -> None:
    customer = unique("55")
    change = echo_change(NUMBER, customer, "Já te respondo.")
    await app.router.on_webhook(_delivery(change))
    await app.router.on_webhook(_delivery(change))  # Meta sent it again: a plain duplicate
    await app.router.on_webhook(_delivery(change, attempt=2))  # our own retry: maybe unannounced
    state = await _state(store, customer)
    assert state.mode is Mode.PAUSED and state.version == 1  # decided once

    async def received() -> list[MessageReceived]:
        found = [
            MessageReceived.model_validate_json(d.body)
            for d in announced
            if d.type == MessageReceived.TYPE
        ]
        return [e for e in found if e.conversation_id == state.conversation_id]

    # Events of one publisher arrive in order: once the retry's is here, a plain duplicate's
    # (published before it) would be too.
    events = await eventually(lambda: _at_least(received, 2), what="the retry announced")
    assert [(e.author, e.mode) for e in events] == [(Author.APP, Mode.PAUSED)] * 2


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


# --- an offboarded number: its messages and echoes are dropped, its statuses recorded ---------


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
