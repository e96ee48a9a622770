"""Imports that keep the code readable: no module of the pure core (`baton.handoff`) reaches
itself again through its imports (type-only imports count: a cycle there is still a tangle to
read), and tests import nothing from the benchmarks."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

LIBS = Path(__file__).resolve().parents[2] / "libs"


def _module_name(libs: Path, path: Path) -> str:
    parts = path.relative_to(libs).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's own modules that `path` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph(libs: Path, package: str) -> dict[str, set[str]]:
    """Each module of `package` (its `__init__` aside: it only re-exports) → what it imports."""
    root = libs / package.replace(".", "/")
    paths = {_module_name(libs, p): p for p in root.rglob("*.py") if p.name != "__init__.py"}
    return {name: _imports(path, set(paths)) - {name} for name, path in paths.items()}


def test_the_handoff_core_has_no_import_cycle() -> None:
    graph = import_graph(LIBS, "baton.handoff")
    assert "baton.handoff.policy" in graph["baton.handoff._transitions"]  # the graph is real
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle in the handoff core: {' -> '.join(exc.args[1])}")


def test_a_type_only_import_closes_a_cycle(tmp_path: Path) -> None:
    package = tmp_path / "core"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "notices.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from core.policy import Policy\n"
    )
    (package / "policy.py").write_text("from core.notices import Kind\n")
    graph = import_graph(tmp_path, "core")
    assert graph == {"core.notices": {"core.policy"}, "core.policy": {"core.notices"}}
    with pytest.raises(CycleError):
        tuple(TopologicalSorter(graph).static_order())


def test_tests_import_no_benchmark_code() -> None:
    """What tests and benchmarks share lives in tests/ or simulator/, never in bench/."""
    tests = Path(__file__).resolve().parents[1]
    offenders = sorted(
        str(path.relative_to(tests))
        for path in tests.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "bench")
        or (
            isinstance(node, ast.Import)
            and any(a.name.split(".")[0] == "bench" for a in node.names)
        )
    )
    assert not offenders
