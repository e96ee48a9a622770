"""Which metric series the code exports, and which ones a PromQL expression reads.

The exported set is collected from the code itself, so it grows as services add metrics: every
module of `baton` and `services` is imported (never `__main__`, which would start a service), then
prometheus-client's default registry is read, plus a fresh registry for every metrics class that
takes an injected `registry`.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from functools import cache
from types import ModuleType

import promql_parser
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.registry import Collector

PACKAGES = ("baton", "services")
# Series that exist in Prometheus without Baton exporting them: RabbitMQ's own plugin
# (rabbitmq_prometheus) and what Prometheus adds for every target.
EXTERNAL_PREFIXES = ("rabbitmq_",)
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
# Labels Prometheus attaches at scrape time (the scrape configs in deploy/ and k8s/ add `service`).
TARGET_LABELS = frozenset({"job", "instance", "service", "namespace", "pod", "container"})
# Grafana's interval macros, replaced by a plausible value so the expression parses as PromQL.
GRAFANA_MACROS = {
    "$__rate_interval": "5m",
    "${__rate_interval}": "5m",
    "$__interval": "1m",
    "${__interval}": "1m",
    "$__range": "1h",
    "${__range}": "1h",
}

Exported = dict[str, frozenset[str] | None]  # series name -> its label names (None: unknown)


def _modules() -> Iterator[ModuleType]:
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        yield package
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            if info.name.rsplit(".", 1)[-1] != "__main__":
                yield importlib.import_module(info.name)


def _injected_registries(modules: list[ModuleType]) -> Iterator[CollectorRegistry]:
    """A fresh registry filled by each metrics class that takes a `registry` and nothing else."""
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            try:
                params = inspect.signature(cls).parameters
            except (TypeError, ValueError):
                continue
            registry_param = params.get("registry")
            others = [p for name, p in params.items() if name != "registry"]
            required = [p for p in others if p.default is inspect.Parameter.empty]
            annotation = str(registry_param.annotation) if registry_param else ""
            if registry_param is None or required or "CollectorRegistry" not in annotation:
                continue
            registry = CollectorRegistry()
            build: Callable[..., object] = cls
            build(registry=registry)
            yield registry


def _series(family_name: str, kind: str, labels: frozenset[str] | None) -> Exported:
    def with_(*extra: str) -> frozenset[str] | None:
        return None if labels is None else labels | frozenset(extra)

    if kind == "counter":
        return {f"{family_name}_total": labels, f"{family_name}_created": labels}
    if kind == "histogram":
        return {
            f"{family_name}_bucket": with_("le"),
            f"{family_name}_count": labels,
            f"{family_name}_sum": labels,
            f"{family_name}_created": labels,
        }
    if kind == "summary":
        return {
            family_name: with_("quantile"),
            f"{family_name}_count": labels,
            f"{family_name}_sum": labels,
            f"{family_name}_created": labels,
        }
    if kind == "info":
        return {f"{family_name}_info": labels}
    if kind == "gaugehistogram":
        return {
            f"{family_name}_bucket": with_("le"),
            f"{family_name}_gcount": labels,
            f"{family_name}_gsum": labels,
        }
    if kind == "stateset":
        return {family_name: with_(family_name)}
    return {family_name: labels}  # gauge, unknown


def series_names(family_name: str, kind: str) -> set[str]:
    """The series names a metric family of this kind is exposed as."""
    return set(_series(family_name, kind, None))


def _collectors(registry: CollectorRegistry) -> list[Collector]:
    # prometheus-client has no public list of a registry's collectors; this mapping is stable.
    return list(getattr(registry, "_collector_to_names", {}))


@cache
def exported() -> Exported:
    """Every series name the code exports, with its label names when known."""
    modules = list(_modules())
    series: Exported = {}
    for registry in [REGISTRY, *_injected_registries(modules)]:
        for collector in _collectors(registry):
            labelnames = getattr(collector, "_labelnames", None)
            labels = frozenset(labelnames) if labelnames is not None else None
            for family in collector.collect():
                sample_labels = labels
                if labels is None and family.samples:
                    sample_labels = frozenset(family.samples[0].labels)
                series.update(_series(family.name, family.type, sample_labels))
    return series


def is_external(name: str) -> bool:
    """A series Prometheus holds without Baton's code exporting it."""
    return name in SYNTHETIC or name.startswith(EXTERNAL_PREFIXES)


def selectors(expr: str) -> list[tuple[str, frozenset[str]]]:
    """The metric names an expression selects, each with the label names it matches on."""
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    leftover = re.search(r"\$\{?\w+", _without_strings(expr))
    if leftover:
        raise ValueError(f"unknown Grafana variable {leftover[0]} outside a label value: {expr}")
    found: list[tuple[str, frozenset[str]]] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name is None:
                raise ValueError(f"a selector without a metric name cannot be checked: {expr}")
            labels = frozenset(m.name for m in node.matchers.matchers) - {"__name__"}
            found.append((node.name, labels))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def _without_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
