"""The real GraphClient against the WhatsApp simulator on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from baton.whatsapp import (
    ErrorClass,
    GraphApiError,
    GraphClient,
    GraphTransportError,
)
from simulator import (
    FaultKind,
    Outcome,
    PairRate,
    SimConfig,
    Simulator,
    running_simulator,
)
from tests.clock import FakeClock

pytestmark = pytest.mark.integration

PNID = "900000000000001"
CUSTOMER = "5511999990000"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Simulator]:
    async with running_simulator(
        SimConfig(pair_rate=PairRate(burst=2)), clock=clock.monotonic
    ) as running:
        yield running


@pytest.fixture
async def graph(sim: Simulator) -> AsyncIterator[GraphClient]:
    async with GraphClient(sim.base_url, sim.config.token, timeout=5.0) as client:
        yield client


async def test_send_text_returns_the_wamid_and_sends_what_meta_expects(
    sim: Simulator, graph: GraphClient
) -> None:
    result = await graph.send_text(
        PNID, CUSTOMER, "Olá! 😀", reply_to="wamid.IN_1", biz_opaque_callback_data="bot:7"
    )
    [sent] = sim.accepted(PNID, CUSTOMER)
    assert result.wamid == sent.wamid and result.wamid.startswith("wamid.")
    assert result.wa_id == CUSTOMER
    assert sent.to == f"+{CUSTOMER}"  # ref §6: "+" so no country code gets prepended
    assert (sent.body, sent.reply_to, sent.biz_opaque_callback_data) == (
        "Olá! 😀",
        "wamid.IN_1",
        "bot:7",
    )


async def test_a_number_given_with_plus_is_not_doubled(sim: Simulator, graph: GraphClient) -> None:
    await graph.send_text(PNID, f"+{CUSTOMER}", "oi")
    assert sim.accepted(PNID)[0].to == f"+{CUSTOMER}"


async def test_mark_read_and_typing(sim: Simulator, graph: GraphClient) -> None:
    await graph.mark_read(PNID, "wamid.IN_1", typing=True)
    [read] = sim.reads()
    assert (read.message_id, read.typing, read.outcome) == ("wamid.IN_1", True, Outcome.ACCEPTED)


async def test_per_number_tokens(sim: Simulator) -> None:
    sim.register("own-token-number", token="token-of-that-number")
    tokens = {"own-token-number": "token-of-that-number"}

    async with GraphClient(sim.base_url, lambda pnid: tokens.get(pnid, sim.config.token)) as graph:
        await graph.send_text("own-token-number", CUSTOMER, "oi")
        await graph.send_text(PNID, CUSTOMER, "oi")
    assert len(sim.accepted()) == 2


async def test_exceeding_the_rate_is_a_throughput_error(
    sim: Simulator, graph: GraphClient, clock: FakeClock
) -> None:
    sim.register(PNID, rate=3)
    outcomes = await asyncio.gather(
        *(graph.send_text(PNID, f"55119999900{i:02}", "oi") for i in range(10)),
        return_exceptions=True,
    )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 7
    assert all(isinstance(e, GraphApiError) for e in errors)
    assert {
        (e.code, e.http_status, e.error_class) for e in errors if isinstance(e, GraphApiError)
    } == {(130429, 400, ErrorClass.THROUGHPUT)}
    assert sim.stats().throughput_errors == 7

    clock.advance(1.0)
    await graph.send_text(PNID, CUSTOMER, "oi")  # the next second has room again


async def test_pair_rate_error(sim: Simulator, graph: GraphClient) -> None:
    await graph.send_text(PNID, CUSTOMER, "1")
    await graph.send_text(PNID, CUSTOMER, "2")
    with pytest.raises(GraphApiError) as caught:
        await graph.send_text(PNID, CUSTOMER, "3")
    assert (caught.value.code, caught.value.error_class) == (131056, ErrorClass.PAIR_RATE)
    assert caught.value.details


@pytest.mark.parametrize(
    ("kind", "code", "http_status", "error_class"),
    [
        (FaultKind.THROUGHPUT, 130429, 400, ErrorClass.THROUGHPUT),
        (FaultKind.MAINTENANCE, 131057, 400, ErrorClass.THROUGHPUT),
        (FaultKind.OUTSIDE_WINDOW, 131047, 400, ErrorClass.PERMANENT),
        (FaultKind.UNDELIVERABLE, 131026, 400, ErrorClass.PERMANENT),
        (FaultKind.SPAM, 131048, 400, ErrorClass.PERMANENT),
        (FaultKind.SERVER_ERROR, 131000, 500, ErrorClass.TRANSIENT),
        (FaultKind.UNAVAILABLE, 131016, 503, ErrorClass.TRANSIENT),
        (FaultKind.BAD_GATEWAY, None, 502, ErrorClass.TRANSIENT),
    ],
)
async def test_meta_errors_are_classified(
    sim: Simulator,
    graph: GraphClient,
    kind: FaultKind,
    code: int | None,
    http_status: int,
    error_class: ErrorClass,
) -> None:
    sim.inject(kind, phone_number_id=PNID)
    with pytest.raises(GraphApiError) as caught:
        await graph.send_text(PNID, CUSTOMER, "oi")
    error = caught.value
    assert (error.code, error.http_status, error.error_class) == (code, http_status, error_class)
    assert error.retryable is (error_class is not ErrorClass.PERMANENT)
    if code is not None:
        assert error.fbtrace_id and error.message.startswith(f"(#{code})")


async def test_wrong_token_is_a_permanent_auth_error(sim: Simulator) -> None:
    async with GraphClient(sim.base_url, "expired-token") as graph:
        with pytest.raises(GraphApiError) as caught:
            await graph.send_text(PNID, CUSTOMER, "oi")
    assert (caught.value.http_status, caught.value.code) == (401, 190)
    assert caught.value.error_class is ErrorClass.PERMANENT
    assert sim.accepted() == []


async def test_a_hang_times_out_and_may_have_been_delivered(sim: Simulator) -> None:
    sim.inject(FaultKind.HANG, phone_number_id=PNID)
    async with GraphClient(sim.base_url, sim.config.token, timeout=0.3) as graph:
        with pytest.raises(GraphTransportError) as caught:
            await graph.send_text(PNID, CUSTOMER, "oi")
    assert caught.value.maybe_delivered
    assert caught.value.error_class is ErrorClass.TRANSIENT
    # Meta did take it: exactly the case where retrying would send the message twice.
    assert len(sim.accepted(PNID, CUSTOMER)) == 1


async def test_a_closed_port_was_certainly_not_delivered() -> None:
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        async with GraphClient(f"http://127.0.0.1:{port}/v25.0", "token", timeout=5.0) as graph:
            with pytest.raises(GraphTransportError) as caught:
                await graph.send_text(PNID, CUSTOMER, "oi")
    assert not caught.value.maybe_delivered
    assert caught.value.retryable


async def test_request_sync_once_then_a_permanent_error(sim: Simulator, graph: GraphClient) -> None:
    contacts_id = await graph.request_sync(PNID, "smb_app_state_sync")
    history_id = await graph.request_sync(PNID, "history")
    assert contacts_id and history_id and contacts_id != history_id
    with pytest.raises(GraphApiError) as caught:
        await graph.request_sync(PNID, "history")
    assert caught.value.error_class is ErrorClass.PERMANENT
    assert [(s.sync_type, s.outcome) for s in sim.sync_requests()] == [
        ("smb_app_state_sync", Outcome.ACCEPTED),
        ("history", Outcome.ACCEPTED),
        ("history", Outcome.REJECTED),
    ]


async def test_a_sync_request_that_times_out_may_have_consumed_the_sync(sim: Simulator) -> None:
    sim.inject(FaultKind.HANG, phone_number_id=PNID, endpoint="smb_app_data")
    async with GraphClient(sim.base_url, sim.config.token, timeout=0.3) as graph:
        with pytest.raises(GraphTransportError) as caught:
            await graph.request_sync(PNID, "history")
        assert caught.value.maybe_delivered
        with pytest.raises(GraphApiError) as again:
            await graph.request_sync(PNID, "history")
    assert again.value.error_class is ErrorClass.PERMANENT


async def test_a_transient_sync_failure_leaves_the_sync_available(
    sim: Simulator, graph: GraphClient
) -> None:
    sim.inject(FaultKind.SERVER_ERROR, phone_number_id=PNID, endpoint="smb_app_data")
    with pytest.raises(GraphApiError) as caught:
        await graph.request_sync(PNID, "history")
    assert caught.value.error_class is ErrorClass.TRANSIENT
    assert await graph.request_sync(PNID, "history")
