"""Hostile webhook bodies, signed, into the real ingest, router and history (as processes).

Hypothesis builds bodies of random shapes, wrong types, unicode edge cases, huge strings and
deep nesting, mostly around real change shapes so they get past ingest's envelope check. Ingest
must never answer 5xx; every change of ours that a consumer could not use must be parked in its
`<queue>.dlq` with the reason (`x-baton-error`); and a normal customer message sent afterwards
is still answered by the bot.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from typing import Any

import aio_pika
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton.whatsapp.signature import HEADER, sign
from simulator import DEV_APP_SECRET
from simulator.webhooks import (
    customer_text,
    echo_change,
    envelope,
    meta_json,
    state_sync_contact,
    status_change,
)
from tests.e2e import conftest as e2e
from tests.e2e.conftest import RunningStack
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

NUMBER = "900000000000091"
webhook_stack = e2e.running_stack  # the e2e fixture: the whole stack as processes
RUN = f"fuzz-{uuid.uuid4().hex[:10]}"  # the entry id of every body of this run
EXAMPLES = 120
DEAD_LETTER_QUEUES = ("router.webhooks.dlq", "history.webhooks.dlq")

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["", "\u0000", "\ufeff", "\u202e", "🤖" * 30, "\ud7ff", "a\u0301" * 20]),
)
_json = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@st.composite
def _huge(draw: st.DrawFn) -> str:
    return draw(st.characters()) * draw(st.integers(min_value=10_000, max_value=300_000))


@st.composite
def _deep(draw: st.DrawFn) -> Any:
    value: Any = draw(_leaf)
    for _ in range(draw(st.integers(min_value=20, max_value=600))):
        value = [value] if draw(st.booleans()) else {"v": value}
    return value


_hostile = st.one_of(_json, _huge(), _deep())


def _real_changes(wa_id: str) -> list[dict[str, Any]]:
    return [
        customer_text(NUMBER, wa_id, "oi"),
        echo_change(NUMBER, wa_id, "olá"),
        status_change(NUMBER, "wamid.FUZZ", "delivered", wa_id),
        state_sync_contact(NUMBER, wa_id),
        {"field": "history", "value": {"messaging_product": "whatsapp", "history": []}},
        {"field": "account_update", "value": {"event": "PARTNER_REMOVED"}},
    ]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += _paths(child, (*prefix, i))
    return found


@st.composite
def _mutated_change(draw: st.DrawFn) -> dict[str, Any]:
    """A real change with one part (anywhere inside `value`) replaced by something hostile."""
    wa_id = "55119" + str(draw(st.integers(min_value=10**7, max_value=10**8 - 1)))
    change: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(_real_changes(wa_id))))
    path = draw(st.sampled_from([p for p in _paths(change["value"]) if p]))
    node = change["value"]
    for key in path[:-1]:
        node = node[key]
    if draw(st.booleans()):
        node[path[-1]] = draw(_hostile)
    else:
        del node[path[-1]]
    return change


_change = st.one_of(
    _mutated_change(),
    st.fixed_dictionaries(
        {"field": st.sampled_from(["messages", "history", "smb_message_echoes"]), "value": _json}
    ),
)
_body = st.one_of(
    st.lists(_change, min_size=1, max_size=3).map(
        lambda changes: {
            "object": "whatsapp_business_account",
            "entry": [{"id": RUN, "changes": changes}],
        }
    ),
    _hostile,
)


def _encode(body: Any) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except RecursionError:
        return b"[" * 5000  # deeper than any parser wants: must be a 400


async def _parked(amqp_url: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """This run's dead-lettered changes (looked at, then handed back to the queues)."""
    connection = await aio_pika.connect(amqp_url)
    found = []
    try:
        channel = await connection.channel()
        for name in DEAD_LETTER_QUEUES:
            queue = await channel.get_queue(name, ensure=False)
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                if RUN.encode() in message.body:
                    found.append(message)
    finally:
        await connection.close()  # unacked: every message goes back to its queue
    return found


def test_hostile_webhooks_never_5xx_are_parked_with_a_reason_and_the_pipeline_goes_on(
    webhook_stack: RunningStack, amqp_url: str
) -> None:
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=30) as client:

        def post(raw: bytes) -> int:
            headers = {"Content-Type": "application/json", HEADER: sign(raw, DEV_APP_SECRET)}
            status = client.post(webhook_stack.webhook_url, content=raw, headers=headers)
            statuses[status.status_code] = statuses.get(status.status_code, 0) + 1
            return status.status_code

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(body=_body)
        def fuzz(body: Any) -> None:
            assert post(_encode(body)) < 500

        fuzz()
        # Changes no consumer can use, for sure: the parking check below has work to see.
        for change in (
            {"field": "messages", "value": {"messages": "not a list", "metadata": 7}},
            {"field": "history", "value": {"history": {"not": "a list"}, "metadata": []}},
        ):
            body = {
                "object": "whatsapp_business_account",
                "entry": [{"id": RUN, "changes": [change]}],
            }
            assert post(_encode(body)) == 200

        # Afterwards, a normal customer still gets the bot's answer.
        customer = "5511" + str(uuid.uuid4().int % 10**9).zfill(9)
        raw = meta_json(envelope([customer_text(NUMBER, customer, "oi")]))
        assert post(raw) == 200

    async def answered() -> bool:
        async with httpx.AsyncClient() as http:
            response = await http.get(
                f"{webhook_stack.sim_url}/_sim/messages", params={"to": customer}
            )
            return bool(response.json())

    async def parked_with_reasons() -> list[aio_pika.abc.AbstractIncomingMessage] | None:
        parked = await _parked(amqp_url)
        return parked if len(parked) >= 2 else None

    async def check() -> list[aio_pika.abc.AbstractIncomingMessage]:
        await eventually(answered, what="the bot's answer after the fuzzing", timeout=60)
        return await eventually(parked_with_reasons, what="dead-lettered changes", timeout=60)

    parked = asyncio.run(check())
    missing = [m.body[:200] for m in parked if not (m.headers or {}).get("x-baton-error")]
    assert not missing, f"dead-lettered without a reason: {missing}"
    assert sum(statuses.values()) >= EXAMPLES, statuses
