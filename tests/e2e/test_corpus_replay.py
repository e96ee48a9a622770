"""Every payload shape of the corpus (tests/corpus), signed, through the whole stack.

Nothing is dead-lettered, every customer message that deserves an answer gets one at the
simulator (an unreadable one the "could not read it" text), account-level updates are kept,
and a customer's number change moves their conversation.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from baton.broker.topology import HISTORY_WEBHOOKS, ROUTER_WEBHOOKS, dead_letter_queue
from services.bot.texts import PT_BR
from simulator import DEV_APP_SECRET, SimulatorClient
from simulator.webhooks import meta_json, post_webhook
from tests.corpus import Payload, load
from tests.e2e.conftest import RunningStack
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

DEAD_LETTER_QUEUES = [dead_letter_queue(q.name) for q in (ROUTER_WEBHOOKS, HISTORY_WEBHOOKS)]


@pytest.fixture
async def sim(running_stack: RunningStack) -> AsyncIterator[SimulatorClient]:
    client = SimulatorClient(running_stack.sim_url)
    yield client
    await client.aclose()


async def _queue_depths(amqp_url: str, names: list[str]) -> dict[str, int]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        depths = {}
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            depths[name] = queue.declaration_result.message_count or 0
        return depths
    finally:
        await connection.close()


async def _settled(stack: RunningStack, service: str, queue: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(stack.metrics_url(service))).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "baton_consumer_messages_total" and sample.labels["queue"] == queue:
                counts[sample.labels["outcome"]] = sample.value
    return counts


def _customer_of(message: dict[str, object]) -> str:
    return str(message["from"])


async def test_the_whole_corpus_is_handled_and_every_customer_answered(
    running_stack: RunningStack, sim: SimulatorClient, amqp_url: str, pg_url: str
) -> None:
    run = str(secrets.randbelow(90) + 10)
    corpus = load(run)
    assert len(corpus) >= 80
    dead_before = await _queue_depths(amqp_url, DEAD_LETTER_QUEUES)
    history_before = await _settled(running_stack, "history", HISTORY_WEBHOOKS.name)

    async with httpx.AsyncClient(timeout=10) as client:
        for payload in corpus:
            response = await post_webhook(
                running_stack.webhook_url, meta_json(payload.body), DEV_APP_SECRET, client=client
            )
            assert response.status_code == 200, payload.name

    answerable = {p.name: p.answerable() for p in corpus if p.answerable()}
    assert len(answerable) >= 25  # every answerable message type of the corpus

    customers = {_customer_of(m) for messages in answerable.values() for m in messages}

    async def all_answered() -> bool:
        answered = {m.to.removeprefix("+") for m in await sim.messages() if m.wamid}
        return customers <= answered

    await eventually(all_answered, what="a reply to every customer", timeout=90)

    unreadable = [p for p in corpus if p.name.startswith("messages.unsupported")]
    for payload in unreadable:
        [message] = payload.customer_messages()
        replies = await sim.messages(to=_customer_of(message))
        assert any(PT_BR.unreadable in (r.body or "") for r in replies), payload.name

    for payload in corpus:
        for message in payload.customer_messages():
            if message["type"] in ("reaction", "revoke"):
                assert await sim.messages(to=_customer_of(message)) == [], payload.name

    db = await asyncpg.connect(pg_url)
    try:
        await _number_changes_followed(db, corpus)
        await eventually(
            lambda: _account_updates_kept(db, corpus), what="template and opt-out rows"
        )
    finally:
        await db.close()

    # Every history-bound change was processed (none retried into the dead-letter queue).
    history_changes = sum(
        len(p.changes())
        for p in corpus
        if p.field in ("history", "smb_app_state_sync", "account_update", "user_preferences")
        or p.field in ("message_template_status_update", "template_category_update")
    )

    async def history_settled() -> bool:
        now = await _settled(running_stack, "history", HISTORY_WEBHOOKS.name)
        done = sum(now.get(k, 0) - history_before.get(k, 0) for k in ("processed", "duplicate"))
        return done >= history_changes

    await eventually(history_settled, what="history settled every change", timeout=60)
    history_after = await _settled(running_stack, "history", HISTORY_WEBHOOKS.name)
    assert history_after.get("dead_lettered", 0) == history_before.get("dead_lettered", 0)
    assert await _queue_depths(amqp_url, DEAD_LETTER_QUEUES) == dead_before


async def _number_changes_followed(db: asyncpg.Connection, corpus: list[Payload]) -> None:
    for payload in corpus:
        if not payload.name.endswith("changed_number"):
            continue
        [message] = payload.customer_messages()
        system = message["system"]
        new = system.get("wa_id") or system.get("new_wa_id")
        outcome = await db.fetchval(
            "SELECT outcome FROM customer_number_changes WHERE wamid = $1", message["id"]
        )
        assert outcome == "no_conversation", payload.name  # this customer never wrote before
        # The notice is kept once, in the conversation of the customer's new number.
        holder = await db.fetch(
            "SELECT c.wa_id FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE m.wamid = $1",
            message["id"],
        )
        assert [r["wa_id"] for r in holder] == [new], payload.name


async def _account_updates_kept(db: asyncpg.Connection, corpus: list[Payload]) -> bool:
    [stop] = [p for p in corpus if p.name == "user_preferences.stop"]
    customer = stop.changes()[0]["value"]["user_preferences"][0]["wa_id"]
    opted_out = await db.fetchval(
        "SELECT opted_out FROM marketing_preferences WHERE wa_id = $1", customer
    )
    template = await db.fetchrow(
        "SELECT status, category FROM template_statuses WHERE template_id = '1689556908129832'"
    )
    return (
        opted_out is True  # the older "resume" does not undo the newer "stop"
        and template is not None
        and template["status"] == "APPROVED"
        and template["category"] == "MARKETING"
    )
