"""Dashboards and alert rules only read series the code exports (or RabbitMQ/Prometheus provide)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
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
        "BatonHistoryDeadlineAtRisk",
    }
)
# `{{ with query "..." }}` in an alert's annotations runs PromQL too.
_TEMPLATE_QUERY = re.compile(r'query\s+"((?:[^"\\]|\\.)*)"')


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
        for text in rule["annotations"].values():
            for query in _TEMPLATE_QUERY.findall(text):
                problems += [f"{rule['alert']} annotation: {p}" for p in _unknown_series(query)]
    assert not problems, "\n".join(problems)


def test_every_alert_links_its_runbook_and_the_runbook_uses_the_cli() -> None:
    missing = []
    for rule in _rules():
        url = rule["annotations"].get("runbook_url", "")
        page = ROOT / url
        if url != f"docs/runbooks/{rule['alert']}.md" or not page.is_file():
            missing.append(f"{rule['alert']}: runbook_url {url!r}")
        elif "# " + rule["alert"] not in page.read_text(encoding="utf-8"):
            missing.append(f"{rule['alert']}: {url} is about another alert")
    assert not missing, "\n".join(missing)
    pages = (ROOT / "docs" / "runbooks").glob("Baton*.md")
    assert any("baton dlq replay" in page.read_text(encoding="utf-8") for page in pages)


def _aggregations(expr: str) -> list[tuple[str, set[str]]]:
    """Each aggregation in `expr` (its operator) with the metric names it aggregates."""
    for macro, value in _metrics.GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    found: list[tuple[str, set[str]]] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.AggregateExpr):
            names = {name for name, _ in _metrics.selectors(node.expr.prettify())}
            found.append((str(node.op), names))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_the_history_deadline_alert_counts_at_risk_numbers_once() -> None:
    (rule,) = [r for r in _rules() if r["alert"] == "BatonHistoryDeadlineAtRisk"]
    assert ("baton_history_numbers", frozenset({"deadline"})) in _metrics.selectors(rule["expr"])
    assert 'deadline="at_risk"' in rule["expr"]
    # Every history replica reports the same store-wide count: summing would multiply it.
    assert _aggregations(rule["expr"]) == [("max", {"baton_history_numbers"})]
    queries = [q for text in rule["annotations"].values() for q in _TEMPLATE_QUERY.findall(text)]
    assert queries == ["min(baton_history_deadline_seconds)"]


def test_conversations_by_mode_panel_takes_one_replica_s_count() -> None:
    exprs = [
        expr
        for title, expr in _dashboard_exprs(DASHBOARDS / "baton-handoff.json")
        if title == "Conversations by mode"
    ]
    assert exprs, "the handoff dashboard has no 'Conversations by mode' panel"
    for expr in exprs:
        # Every router replica reports the same global count: max, never sum, over replicas.
        assert _aggregations(expr) == [("max", {"baton_conversations"})], expr


# Gauges every replica of a service reports alike (counted in the store, not per process).
STORE_WIDE_GAUGES = frozenset(
    {"baton_conversations", "baton_history_numbers", "baton_history_imports"}
)


def _summed_over_replicas(expr: str) -> set[str]:
    """Store-wide gauges a `sum`/`count`/`avg` aggregates straight from their series."""
    for macro, value in _metrics.GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    found: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if (
            isinstance(node, promql_parser.AggregateExpr)
            and str(node.op) in ("sum", "count", "avg")
            and isinstance(node.expr, promql_parser.VectorSelector)
            and node.expr.name in STORE_WIDE_GAUGES
        ):
            found.add(node.expr.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_store_wide_gauges_are_never_summed_over_replicas() -> None:
    exprs = [
        (f"{path.name}: {title}", expr)
        for path in _dashboard_files()
        for title, expr in _dashboard_exprs(path)
    ] + [(f"alert {rule['alert']}", rule["expr"]) for rule in _rules()]
    summed = [
        f"{where}: {sorted(names)}" for where, e in exprs if (names := _summed_over_replicas(e))
    ]
    assert not summed, "take max by the labels first:\n" + "\n".join(summed)
    # The check itself: a direct sum is caught, a sum over a max by the labels is not.
    assert _summed_over_replicas("sum(baton_conversations)") == {"baton_conversations"}
    assert not _summed_over_replicas("sum(max by (mode) (baton_conversations))")


def _documented_families() -> set[str]:
    """Every exported `baton_` family as the README names it: counters with `_total`."""
    series = _metrics.exported()
    families = set()
    for name in series:
        if not name.startswith("baton_") or name.endswith("_created"):
            continue
        if name.endswith("_bucket"):
            families.add(name.removesuffix("_bucket"))
            continue
        base = name.rsplit("_", 1)[0]
        if name.endswith(("_count", "_sum")) and (base in series or f"{base}_bucket" in series):
            continue  # a histogram's (or summary's) companion series
        families.add(name)
    return families


def test_the_readme_documents_every_exported_metric() -> None:
    families = _documented_families()
    # The derivation itself: a counter, a histogram and a gauge, each under its README name.
    assert {
        "baton_consumer_messages_total",
        "baton_publish_confirm_seconds",
        "baton_conversations",
    } <= families
    assert not {"baton_publish_confirm_seconds_count", "baton_consumer_messages"} & families
    readme = (ROOT / "README.md").read_text()
    metrics_section = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\|([^|\n]*)\|", metrics_section, flags=re.MULTILINE)
    documented = {name for cell in first_cells for name in re.findall(r"`(baton_\w+)`", cell)}
    missing = sorted(families - documented)
    assert not missing, f"README.md's Metrics table has no row for: {', '.join(missing)}"


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


def _namespace_matchers(expr: str) -> list[tuple[str, list[str]]]:
    """Each selector of `expr` with the values its `namespace` label must match as a regex."""
    for macro, value in _metrics.GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    found: list[tuple[str, list[str]]] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            regexes = [
                m.value
                for m in node.matchers.matchers
                if m.name == "namespace" and m.op == promql_parser.MatchOp.Re
            ]
            found.append((str(node.name), regexes))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


@pytest.mark.parametrize("path", _dashboard_files(), ids=lambda p: p.name)
def test_every_dashboard_query_is_scoped_by_the_namespace_variable(path: Path) -> None:
    dashboard = load_json(path)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    namespace = variables["namespace"]
    assert namespace["type"] == "query" and namespace["datasource"]["uid"] == "${datasource}"
    assert "namespace" in namespace["definition"]
    # All means every namespace and series without one too (docker compose has no namespace).
    assert namespace["includeAll"] and namespace["allValue"] == ".*" and namespace["multi"]
    unscoped = [
        f"{title}: {name}"
        for title, expr in _dashboard_exprs(path)
        for name, regexes in _namespace_matchers(expr)
        if regexes != ["$namespace"]
    ]
    assert not unscoped, 'add namespace=~"$namespace" to:\n' + "\n".join(unscoped)
    # The check itself.
    assert _namespace_matchers('sum(up{namespace=~"$namespace"}) / sum(up)') == [
        ("up", ["$namespace"]),
        ("up", []),
    ]


def test_a_panel_shows_the_outbox_s_in_doubt_sends() -> None:
    from services.outbox import metrics as outbox_metrics

    (family,) = outbox_metrics.IN_DOUBT.describe()
    assert family.type == "counter"
    series = f"{family.name}_total"
    assert series in _metrics.exported()
    panels = [
        title
        for path in _dashboard_files()
        for title, expr in _dashboard_exprs(path)
        if series in {name for name, _ in _metrics.selectors(expr)}
    ]
    assert panels, f"no dashboard panel reads {series}"
    assert any("in-doubt" in title.lower() for title in panels), panels
