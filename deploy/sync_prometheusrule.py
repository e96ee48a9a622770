"""Write k8s/components/prometheus-operator/prometheusrule.yaml from deploy/prometheus/alerts.yml.

Run after editing the alert rules: `.venv/bin/python deploy/sync_prometheusrule.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
TARGET = ROOT / "k8s" / "components" / "prometheus-operator" / "prometheusrule.yaml"
HEADER = (
    "# Generated from deploy/prometheus/alerts.yml by deploy/sync_prometheusrule.py (same groups;\n"
    "# tests/deploy checks they match). Edit the alerts file, then run that script.\n"
)


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    """The PrometheusRule object carrying `rules` (a Prometheus rule file's content)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "baton",
            "labels": {"app.kubernetes.io/name": "baton", "app.kubernetes.io/part-of": "baton"},
        },
        "spec": {"groups": rules["groups"]},
    }


def main() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    body = yaml.safe_dump(prometheus_rule(rules), sort_keys=False, width=100, allow_unicode=True)
    TARGET.write_text(HEADER + body, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
