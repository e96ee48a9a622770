"""Dashboards and alert rules only read series the code exports (or RabbitMQ/Prometheus provide)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import _metrics
from tests.deploy._repo import (
    ALERTS,
    DASHBOARDS,
    PROMETHEUS_RULE,
    ROOT,
    load_json,
    load_script,
    load_yaml,
)

SEVERITIES = frozenset({"info", "warning", "critical"})
# Alerts the issue asks for (by what they watch); more may exist.
REQUIRED_ALERTS = frozenset(
    {
        "BatonDeadLetterQueueNotEmpty",
        "BatonConsumerDeadLettering",
        "BatonGraphThroughputErrors",
        "BatonNoWebhookReceived",
    }
)


def _dashboard_files() -> list[Path]:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, "no dashboards"
    return files


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard_exprs(path: Path) -> Iterator[tuple[str, str]]:
    for panel in _panels(load_json(path)["panels"]):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def _rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def _unknown_series(expr: str) -> list[str]:
    """Why `expr` reads something the code does not export (empty when it is all known)."""
    exported = _metrics.exported()
    problems = []
    for name, labels in _metrics.selectors(expr):
        if _metrics.is_external(name):
            continue
        if name not in exported:
            problems.append(f"{name} is not exported by the code")
            continue
        known = exported[name]
        if known is not None:
            unknown = labels - known - _metrics.TARGET_LABELS
            if unknown:
                problems.append(f"{name} has no label {sorted(unknown)}")
    return problems


@pytest.mark.parametrize("path", _dashboard_files(), ids=lambda p: p.name)
def test_dashboard_parses_and_reads_only_exported_series(path: Path) -> None:
    dashboard = load_json(path)
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    exprs = list(_dashboard_exprs(path))
    assert exprs
    for panel in _panels(dashboard["panels"]):
        if panel.get("targets"):
            # The data source is a variable, so the dashboard works in any Grafana it lands in.
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    problems = [f"{title}: {p}" for title, expr in exprs for p in _unknown_series(expr)]
    assert not problems, "\n".join(problems)


def test_dashboard_uids_are_unique() -> None:
    uids = [load_json(path)["uid"] for path in _dashboard_files()]
    assert len(uids) == len(set(uids))


def test_alert_rules_are_complete_and_read_only_exported_series() -> None:
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS
    problems = []
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        problems += [f"{rule['alert']}: {p}" for p in _unknown_series(rule["expr"])]
    assert not problems, "\n".join(problems)


def test_the_prometheus_rule_carries_exactly_the_alert_rules() -> None:
    sync = load_script(ROOT / "deploy" / "sync_prometheusrule.py")
    assert load_yaml(PROMETHEUS_RULE) == sync.prometheus_rule(load_yaml(ALERTS)), (
        "run: .venv/bin/python deploy/sync_prometheusrule.py"
    )


def test_the_check_reports_what_the_code_does_not_export() -> None:
    assert _unknown_series("rate(baton_made_up_total[5m])") == [
        "baton_made_up_total is not exported by the code"
    ]
    assert _unknown_series('baton_consumer_messages_total{colour="x"}') == [
        "baton_consumer_messages_total has no label ['colour']"
    ]
    assert _unknown_series('rabbitmq_queue_messages{queue="q"} + up') == []
    with pytest.raises(ValueError, match="unknown Grafana variable"):
        _metrics.selectors("rate(baton_consumer_messages_total[$window])")
