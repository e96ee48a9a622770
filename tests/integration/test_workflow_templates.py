"""Templates past the 24-hour window (issue 12): the GraphClient's template send against the
simulator, and the plain failure reasons of Meta's window and template errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from baton.whatsapp import GraphClient
from baton.whatsapp.errors import failure_reason
from simulator import SimConfig, Simulator, running_simulator

pytestmark = pytest.mark.integration

PNID = "900000000000012"
CUSTOMER = "5511999990012"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(SimConfig()) as running:
        yield running


async def test_a_template_is_sent_by_name_language_and_parameters(sim: Simulator) -> None:
    async with GraphClient(sim.base_url, sim.config.token) as graph:
        result = await graph.send_template(PNID, CUSTOMER, "busy_notice", "pt_BR", ("Ana",))
    [sent] = sim.accepted(PNID, CUSTOMER)
    assert (sent.wamid, sent.type) == (result.wamid, "template")


@pytest.mark.parametrize(
    ("code", "start"),
    [
        (131047, "window_closed"),
        (132000, "template_params_mismatch"),
        (132001, "template_missing"),
        (131026, "(#131026) undeliverable"),
    ],
)
def test_window_and_template_errors_have_plain_reasons(code: int, start: str) -> None:
    assert failure_reason(code, f"(#{code}) undeliverable").startswith(start)
