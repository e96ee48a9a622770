"""The Graph API simulator: its rules (pure state) and its HTTP, webhook and CLI faces."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from baton.whatsapp import GraphApiError, GraphClient, parse_change, parse_envelope, verify
from simulator import (
    DEV_ACCESS_TOKEN,
    ConfigUpdate,
    Fault,
    FaultKind,
    NumberConfig,
    Outcome,
    PairRate,
    SimConfig,
    SimulatorClient,
    running_simulator,
    serving,
)
from simulator.faults import Endpoint
from simulator.state import Reply, SimState
from tests.clock import FakeClock

PNID = "900000000000001"
CUSTOMER = "5511999990000"
AUTH = f"Bearer {DEV_ACCESS_TOKEN}"
SECRET = "sim-test-secret"


def send_body(to: str = CUSTOMER, body: str = "oi") -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": f"+{to}", "type": "text", "text": {"body": body}}


def send(state: SimState, to: str = CUSTOMER, pnid: str = PNID) -> Reply:
    return state.post_messages(pnid, AUTH, send_body(to))


def error_code(reply: Reply) -> int | None:
    assert isinstance(reply.body, dict)
    error = reply.body.get("error")
    return error["code"] if isinstance(error, dict) else None


# --- rules ------------------------------------------------------------------------------


def test_throughput_cap_holds_in_every_sliding_second() -> None:
    clock = FakeClock()
    state = SimState(
        SimConfig(numbers=(NumberConfig(phone_number_id=PNID, rate=20),)), clock.monotonic
    )
    assert all(send(state).http_status == 200 for _ in range(10))
    clock.advance(0.5)
    assert all(send(state).http_status == 200 for _ in range(10))
    clock.advance(0.49)  # the first ten are 0.99 s old: still inside the window
    over = send(state)
    assert (over.http_status, error_code(over)) == (400, 130429)
    clock.advance(0.01)  # now exactly 1 s old: out of the window
    assert send(state).http_status == 200
    assert state.stats().throughput_errors == 1


def test_throughput_error_body_is_shaped_like_meta() -> None:
    state = SimState(
        SimConfig(numbers=(NumberConfig(phone_number_id=PNID, rate=1),)), FakeClock().monotonic
    )
    send(state)
    reply = send(state)
    assert isinstance(reply.body, dict)
    error = reply.body["error"]
    assert set(error) == {"message", "type", "code", "error_data", "fbtrace_id"}
    assert error["message"].startswith("(#130429)")
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["error_data"]["details"]


def test_default_and_coexistence_rates() -> None:
    state = SimState(
        SimConfig(numbers=(NumberConfig(phone_number_id="coex", coexistence=True),)),
        FakeClock().monotonic,
    )
    assert [send(state, pnid="coex").http_status for _ in range(21)].count(200) == 20
    assert [send(state, pnid="other").http_status for _ in range(81)].count(200) == 80


def test_pair_rate_limits_one_customer_not_the_others() -> None:
    clock = FakeClock()
    config = SimConfig(pair_rate=PairRate(burst=2, seconds_per_message=6.0))
    state = SimState(config, clock.monotonic)
    assert [send(state).http_status for _ in range(2)] == [200, 200]
    assert error_code(send(state)) == 131056
    assert send(state, to="5511888880000").http_status == 200
    clock.advance(6.0)
    assert send(state).http_status == 200
    assert state.stats().pair_rate_errors == 1


def test_faults_are_consumed_in_order_and_a_number_beats_the_wildcard() -> None:
    state = SimState(SimConfig(), FakeClock().monotonic)
    state.inject(Fault(kind=FaultKind.SERVER_ERROR, count=2))
    state.inject(Fault(kind=FaultKind.OUTSIDE_WINDOW, phone_number_id=PNID))
    assert error_code(send(state)) == 131047
    assert [error_code(send(state)) for _ in range(2)] == [131000, 131000]
    assert send(state).http_status == 200
    assert [m.outcome for m in state.messages(PNID)] == [Outcome.REJECTED] * 3 + [Outcome.ACCEPTED]


def test_custom_error_fault_and_bad_gateway() -> None:
    state = SimState(SimConfig(), FakeClock().monotonic)
    state.inject(Fault(kind=FaultKind.ERROR, http_status=403, code=368))
    state.inject(Fault(kind=FaultKind.BAD_GATEWAY))
    assert (send(state).http_status, state.sent[-1].error_code) == (403, 368)
    gateway = send(state)
    assert gateway.http_status == 502 and isinstance(gateway.body, str)


def test_auth_and_validation_errors() -> None:
    state = SimState(SimConfig(), FakeClock().monotonic)
    unauthorized = state.post_messages(PNID, "Bearer nope", send_body())
    assert (unauthorized.http_status, error_code(unauthorized)) == (401, 190)
    for broken in (
        {**send_body(), "messaging_product": None},
        {**send_body(), "to": ""},
        {**send_body(), "text": {}},
        {**send_body(), "type": "image"},
        {**send_body(), "text": {"body": "x" * 4097}},
        "not an object",
    ):
        reply = state.post_messages(PNID, AUTH, broken)
        assert (reply.http_status, error_code(reply)) == (400, 100)
    assert state.stats().accepted == 0


def test_unknown_numbers_are_refused_when_strict() -> None:
    state = SimState(SimConfig(strict_numbers=True), FakeClock().monotonic)
    assert error_code(send(state, pnid="nobody")) == 100


def test_each_sync_type_is_accepted_once_per_number() -> None:
    state = SimState(SimConfig(), FakeClock().monotonic)
    body = {"messaging_product": "whatsapp", "sync_type": "history"}
    first = state.post_smb_app_data(PNID, AUTH, body)
    assert first.http_status == 200 and isinstance(first.body, dict) and first.body["request_id"]
    again = state.post_smb_app_data(PNID, AUTH, body)
    assert (again.http_status, error_code(again)) == (400, 100)
    contacts = {"messaging_product": "whatsapp", "sync_type": "smb_app_state_sync"}
    assert state.post_smb_app_data(PNID, AUTH, contacts).http_status == 200
    assert state.post_smb_app_data("other", AUTH, body).http_status == 200
    assert [s.outcome for s in state.syncs] == [
        Outcome.ACCEPTED,
        Outcome.REJECTED,
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
    ]


def test_sync_faults_leave_the_sync_available_but_a_hang_consumes_it() -> None:
    state = SimState(SimConfig(), FakeClock().monotonic)
    body = {"messaging_product": "whatsapp", "sync_type": "history"}
    state.inject(Fault(kind=FaultKind.SERVER_ERROR, endpoint=Endpoint.SMB_APP_DATA))
    state.inject(Fault(kind=FaultKind.HANG, endpoint=Endpoint.SMB_APP_DATA))
    assert state.post_smb_app_data(PNID, AUTH, body).http_status == 500
    held = state.post_smb_app_data(PNID, AUTH, body)
    assert held.http_status == 200 and held.delay == float("inf")
    assert error_code(state.post_smb_app_data(PNID, AUTH, body)) == 100


def test_config_update_toggles_pair_rate_and_webhooks() -> None:
    config = SimConfig()
    enabled = ConfigUpdate(pair_rate_enabled=True, webhook_url="http://x", app_secret="s").apply(
        config
    )
    assert enabled.pair_rate == PairRate() and enabled.sends_webhooks
    disabled = ConfigUpdate(pair_rate_enabled=False, webhook_url=None).apply(enabled)
    assert disabled.pair_rate is None and not disabled.sends_webhooks
    assert disabled.app_secret == "s"  # fields left out stay as they were


# --- over HTTP --------------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[bytes, str | None]]]]:
    """A webhook endpoint that fails its first POST with 500, then answers 200."""
    received: list[tuple[bytes, str | None]] = []
    app = FastAPI()

    @app.post("/webhook")
    async def webhook(request: Request) -> Response:
        received.append((await request.body(), request.headers.get("x-hub-signature-256")))
        return Response(status_code=500 if len(received) == 1 else 200)

    async with serving(app) as root_url:
        yield f"{root_url}/webhook", received


async def test_accepted_sends_get_signed_sent_then_delivered_webhooks_with_retries(
    receiver: tuple[str, list[tuple[bytes, str | None]]],
) -> None:
    url, received = receiver
    config = SimConfig(webhook_url=url, app_secret=SECRET, webhook_retry_seconds=0.01)
    async with (
        running_simulator(config) as sim,
        GraphClient(sim.base_url, sim.config.token) as graph,
    ):
        result = await graph.send_text(PNID, CUSTOMER, "oi", biz_opaque_callback_data="bot:1")
        await sim.wait_until(lambda: len(sim.webhook_deliveries()) == 3)

    assert [(d.status, d.attempt, d.http_status) for d in sim.webhook_deliveries()] == [
        ("sent", 1, 500),
        ("sent", 2, 200),
        ("delivered", 1, 200),
    ]
    statuses = []
    for body, signature in received:
        assert verify(body, signature, SECRET)
        [change] = parse_envelope(body).entry[0].changes
        [status] = parse_change("messages", change.value).statuses
        assert (status.id, status.recipient_id) == (result.wamid, CUSTOMER)
        assert status.biz_opaque_callback_data == "bot:1"
        statuses.append(status.status)
    assert statuses == ["sent", "sent", "delivered"]


async def test_reset_answers_a_hung_request() -> None:
    async with running_simulator() as sim, GraphClient(sim.base_url, sim.config.token) as graph:
        sim.inject(FaultKind.HANG)
        sending = asyncio.create_task(graph.send_text(PNID, CUSTOMER, "oi"))
        await sim.wait_until(lambda: len(sim.accepted()) == 1)
        assert not sending.done()
        sim.reset()
        result = await asyncio.wait_for(sending, 5)
    assert result.wa_id == CUSTOMER


async def test_control_endpoints_over_http() -> None:
    async with running_simulator() as sim, GraphClient(sim.base_url, sim.config.token) as graph:
        async with SimulatorClient(sim.root_url) as control:
            await control.register(NumberConfig(phone_number_id=PNID, coexistence=True))
            await control.inject(Fault(kind=FaultKind.SPAM, phone_number_id=PNID))
            with pytest.raises(GraphApiError, match="131048"):
                await graph.send_text(PNID, CUSTOMER, "promo")
            await graph.send_text(PNID, CUSTOMER, "oi")
            await graph.mark_read(PNID, "wamid.IN_1", typing=True)
            assert [m.outcome for m in await control.messages(PNID, f"+{CUSTOMER}")] == [
                Outcome.REJECTED,
                Outcome.ACCEPTED,
            ]
            assert [r.typing for r in await control.reads()] == [True]
            stats = await control.stats()
            assert (stats.accepted, stats.rejected) == (1, 1)
            await control.reset()
            assert await control.messages() == []
        assert sim.runtime.state.numbers[PNID].coexistence


async def test_cli_say_posts_a_signed_message_and_prints_the_reply() -> None:
    """The README's `say` command against a stand-in for Baton that answers via the simulator."""
    async with running_simulator() as sim, GraphClient(sim.base_url, sim.config.token) as graph:
        app = FastAPI()

        @app.post("/webhook")
        async def webhook(request: Request) -> Response:
            body = await request.body()
            if not verify(body, request.headers.get("x-hub-signature-256"), SECRET):
                return Response(status_code=401)
            value = parse_change("messages", parse_envelope(body).entry[0].changes[0].value)
            message = value.messages[0]
            assert message.text is not None
            await graph.send_text(PNID, message.from_, f"Você disse: {message.text.body}")
            return Response(status_code=200)

        async with serving(app) as root_url:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "simulator", "say",
                "--webhook-url", f"{root_url}/webhook", "--app-secret", SECRET,
                "--phone-number-id", PNID, "--from", CUSTOMER, "--text", "Olá, café?",
                "--sim-url", sim.root_url, "--wait", "20", "--settle", "0.2",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONWARNINGS": "error"},
            )  # fmt: skip
            stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert "< Você disse: Olá, café?" in stdout.decode()


async def test_cli_serve_announces_its_port_and_answers() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "serve", "--port", "0",
        "--coexistence", PNID,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.search(r"listening on (http://\S+)", line)
        assert match, line
        async with GraphClient(f"{match[1]}/v25.0", DEV_ACCESS_TOKEN) as graph:
            assert (await graph.send_text(PNID, CUSTOMER, "oi")).wa_id == CUSTOMER
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
