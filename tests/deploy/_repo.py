"""Paths and small readers shared by the deployment tests."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CONSTRAINTS = ROOT / "constraints.txt"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
K8S = ROOT / "k8s"
K8S_BASE = K8S / "base"
K8S_OVERLAY = K8S / "overlays" / "example"
PROMETHEUS_RULE = K8S / "components" / "prometheus-operator" / "prometheusrule.yaml"

# Services that get manifests before their code lands (their module does not exist yet).
PLANNED_SERVICES: frozenset[str] = frozenset()


def services() -> frozenset[str]:
    """Every long-running service: a `services/<name>/app.py` (its wiring and `main`).

    `services/cli` is the operators' command line, run on demand, not a service."""
    return frozenset(p.parent.name for p in (ROOT / "services").glob("*/app.py"))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def git_ignored(path: Path) -> bool:
    """Whether git ignores `path` (read-only: `git check-ignore`)."""
    done = subprocess.run(
        ["git", "check-ignore", "-q", str(path)], cwd=ROOT, capture_output=True, check=False
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"git check-ignore failed: {done.stderr.decode()}")
    return done.returncode == 0


def load_script(path: Path) -> ModuleType:
    """Import a script of deploy/ (not a package) as a module."""
    name = f"_deploy_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def ops_port_setting(service: str) -> str:
    """The setting holding the port of a service's /healthz, /readyz and /metrics: its own
    `<service>_port` when it serves HTTP (ingest, console), else the consumers' metrics port."""
    from baton.settings import Settings

    own = f"{service}_port"
    return own if own in Settings.model_fields else "metrics_port"
