"""No structlog call passes `event=`: it is the log line's own name, and the call would raise."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOG_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "msg", "bind"}
)


def calls_passing_event(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in LOG_METHODS
        and any(keyword.arg == "event" for keyword in node.keywords)
    ]


def test_the_scan_finds_a_call_passing_event() -> None:
    assert calls_passing_event(ast.parse('log.info("x.y", event="ACCOUNT_DELETED")')) == [1]
    assert calls_passing_event(ast.parse('METRIC.labels(event="x").inc()')) == []


def test_no_log_call_in_the_code_passes_event() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in ("libs", "services")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line in calls_passing_event(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert found == []
