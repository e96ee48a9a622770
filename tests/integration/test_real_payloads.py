"""Real Meta payloads the handlers used to refuse or ignore (issue 10), against the real store.

A customer's number change moves their conversation; template statuses, categories and marketing
opt-outs are kept (newest wins); every `account_update` kind is handled without error; an
interactive message carrying `errors` instead of its object is routed like any message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from baton.broker import Broker, Delivery
from baton.messages import WebhookChange
from baton.settings import Settings
from baton.store import PostgresStore
from baton.store.waba_records import NumberChange, NumberChangeOutcome
from services.history.handlers import History
from services.router.app import RouterApp, bootstrap
from simulator.webhooks import customer_text, messages_change
from tests.conftest import unique
from tests.corpus import load

pytestmark = pytest.mark.integration

NUMBER = "900000000000501"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def router(store: PostgresStore, broker: Broker) -> RouterApp:
    return bootstrap(Settings(), store, broker)


def _delivery(field: str, value: dict[str, Any], *, entry_id: str = "800000000000501") -> Delivery:
    body = WebhookChange(entry_id=entry_id, field=field, value=value, received_at=NOW)
    return Delivery(
        body=body.model_dump_json().encode(),
        type=WebhookChange.TYPE,
        message_id=unique("m"),
        correlation_id=None,
        routing_key=field,
        attempt=1,
    )


def _customer() -> str:
    return "55" + str(int(unique("")[1:9], 16) % 10**11).zfill(11)


def _system_change(old: str, new: str, wamid: str) -> dict[str, Any]:
    notice = {
        "from": old,
        "id": wamid,
        "timestamp": "1767225600",
        "type": "system",
        "system": {
            "body": f"changed from {old} to {new}",
            "wa_id": new,
            "type": "user_changed_number",
        },
    }
    value: dict[str, Any] = messages_change(NUMBER, [notice])["value"]
    return value


async def test_a_number_change_moves_the_conversation_with_its_history_and_state(
    router: RouterApp, store: PostgresStore
) -> None:
    old, new = _customer(), _customer()
    await router.router.on_webhook(_delivery("messages", customer_text(NUMBER, old, "oi")["value"]))
    before = await store.conversation(NUMBER, old)
    wamid = unique("wamid.sys")
    change = _system_change(old, new, wamid)
    await router.router.on_webhook(_delivery("messages", change))
    await router.router.on_webhook(_delivery("messages", change))  # a redelivery: no effect

    moved = await store.conversation(NUMBER, new)
    assert moved.id == before.id and moved.wa_id == new
    bodies = await store.pool.fetch(
        "SELECT type FROM messages WHERE conversation_id = $1 ORDER BY id", moved.id
    )
    assert [r["type"] for r in bodies] == ["text", "system"]
    state = await store.load_conversation_state(moved.id)
    assert state is not None and state.wa_id == new
    assert (
        await store.pool.fetchval(
            "SELECT count(*) FROM conversations WHERE phone_number_id = $1 AND wa_id = $2",
            NUMBER,
            old,
        )
        == 0
    )


async def test_a_number_change_to_a_number_with_its_own_conversation_keeps_both(
    store: PostgresStore, router: RouterApp
) -> None:
    old, new = _customer(), _customer()
    for who in (old, new):
        await router.router.on_webhook(
            _delivery("messages", customer_text(NUMBER, who, "oi")["value"])
        )
    result = await store.move_customer(
        NumberChange(
            phone_number_id=NUMBER, wamid=unique("wamid.s"), old_wa_id=old, new_wa_id=new, at=NOW
        )
    )
    assert result.outcome is NumberChangeOutcome.KEPT_BOTH and result.recorded_now
    assert (await store.conversation(NUMBER, old)).wa_id == old


async def test_an_interactive_message_with_errors_is_stored_and_routed(
    router: RouterApp, store: PostgresStore
) -> None:
    customer = _customer()
    message = {
        "from": customer,
        "id": unique("wamid.i"),
        "timestamp": "1767225600",
        "type": "interactive",
        "errors": [{"code": 131051, "title": "Message type unknown"}],
    }
    await router.router.on_webhook(
        _delivery("messages", messages_change(NUMBER, [message])["value"])
    )
    conversation = await store.conversation(NUMBER, customer)
    state = await store.load_conversation_state(conversation.id)
    assert state is not None and [m.type for m in state.buffer] == ["interactive"]


async def test_template_statuses_keep_the_newest_and_category_changes_apply(
    store: PostgresStore,
) -> None:
    history = History(store, clock=lambda: NOW)
    waba = unique("waba")
    template = {
        "message_template_id": 77,
        "message_template_name": "order_confirmation",
        "message_template_language": "pt_BR",
        "message_template_category": "UTILITY",
        "reason": "NONE",
    }

    def at(field: str, value: dict[str, Any], second: int) -> Delivery:
        body = WebhookChange(
            entry_id=waba, field=field, value=value, received_at=NOW.replace(second=second)
        )
        return Delivery(
            body.model_dump_json().encode(), WebhookChange.TYPE, unique("m"), None, field, 1
        )

    status = "message_template_status_update"
    await history.on_webhook(at(status, {**template, "event": "PAUSED"}, 30))
    await history.on_webhook(at(status, {**template, "event": "APPROVED"}, 10))  # older: stale
    found = await store.template_status(waba, "order_confirmation", "pt_BR")
    assert found is not None and found.status == "PAUSED" and not found.sendable
    await history.on_webhook(at(status, {**template, "event": "REINSTATED"}, 40))
    category = {**template, "previous_category": "UTILITY", "new_category": "MARKETING"}
    await history.on_webhook(at("template_category_update", category, 50))
    found = await store.template_status(waba, "order_confirmation")
    assert found is not None and found.sendable and found.category == "MARKETING"
    assert [t.template_id for t in await store.template_statuses(waba)] == ["77"]


async def test_marketing_opt_outs_keep_the_newest_preference(store: PostgresStore) -> None:
    history = History(store, clock=lambda: NOW)
    customer = _customer()

    def preference(value: str, timestamp: int) -> Delivery:
        return _delivery(
            "user_preferences",
            {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
                "user_preferences": [
                    {
                        "wa_id": customer,
                        "category": "marketing_messages",
                        "value": value,
                        "detail": f"User requested to {value} marketing messages",
                        "timestamp": timestamp,
                    }
                ],
            },
        )

    assert not await store.marketing_opted_out(NUMBER, customer)
    await history.on_webhook(preference("stop", 1767225600))
    await history.on_webhook(preference("resume", 1767225000))  # older: ignored
    assert await store.marketing_opted_out(NUMBER, customer)
    await history.on_webhook(preference("resume", 1767226000))
    assert not await store.marketing_opted_out(NUMBER, customer)


@pytest.mark.parametrize(
    "payload", [p for p in load() if p.field == "account_update"], ids=lambda p: p.name
)
async def test_every_account_update_kind_is_handled(store: PostgresStore, payload: Any) -> None:
    history = History(store, clock=lambda: NOW)
    [change] = payload.changes()
    await history.on_webhook(_delivery("account_update", change["value"], entry_id=unique("w")))
