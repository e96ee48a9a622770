"""Every Baton series the dashboards and alerts read is served by the running services.

tests/deploy checks the same against the registry the code builds on import; this reads what
the processes really serve at `/metrics` once a message has gone through the stack, so a metric
registered only in a code path the services never take (or in a registry nobody serves) fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack import Ports
from simulator import DEV_APP_SECRET, SimulatorClient
from simulator.webhooks import customer_text, envelope, meta_json, post_webhook
from tests.deploy import _metrics
from tests.deploy.test_observability import (
    _TEMPLATE_QUERY,
    _dashboard_exprs,
    _dashboard_files,
    _rules,
)
from tests.e2e.conftest import RunningStack
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

# The Chatwoot bridge runs only where a number is bridged (not in this stack): its series are
# checked served by tests/e2e/test_chatwoot_bridge.py instead.
OPTIONAL = {"chatwoot": "baton_chatwoot_"}
SERVICES = tuple(
    name for name in Ports.__dataclass_fields__ if name != "simulator" and name not in OPTIONAL
)


def _queries() -> Iterator[tuple[str, str]]:
    for path in _dashboard_files():
        for title, expr in _dashboard_exprs(path):
            yield f"{path.name}: {title}", expr
    for rule in _rules():
        yield f"alert {rule['alert']}", rule["expr"]
        for text in rule["annotations"].values():
            for query in _TEMPLATE_QUERY.findall(text):
                yield f"alert {rule['alert']} annotation", query


async def _served(stack: RunningStack) -> dict[str, set[str]]:
    """Series name -> the services that serve it."""
    served: dict[str, set[str]] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for service in SERVICES:
            response = await client.get(stack.metrics_url(service))
            response.raise_for_status()
            for family in text_string_to_metric_families(response.text):
                for name in _metrics.series_names(family.name, family.type):
                    served.setdefault(name, set()).add(service)
    return served


async def test_dashboards_and_alerts_read_only_series_the_services_serve(
    running_stack: RunningStack,
) -> None:
    # One message through the stack, so every service has done its ordinary work once
    # (the outbox's per-number series exist only while it sends for a number).
    customer = "5511977770001"
    body = meta_json(envelope([customer_text("900000000000001", customer, "oi")]))
    assert (await post_webhook(running_stack.webhook_url, body, DEV_APP_SECRET)).status_code == 200
    sim = SimulatorClient(running_stack.sim_url)
    try:
        await eventually(lambda: sim.messages(to=customer), what="the bot's reply")
    finally:
        await sim.aclose()

    served = await _served(running_stack)
    missing = sorted(
        f"{where}: {name}"
        for where, expr in _queries()
        for name, _ in _metrics.selectors(expr)
        if not _metrics.is_external(name)
        and name not in served
        and not name.startswith(tuple(OPTIONAL.values()))
    )
    assert not missing, "read but served by no service:\n" + "\n".join(missing)
