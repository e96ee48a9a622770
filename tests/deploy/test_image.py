"""The image: Dockerfile, .dockerignore, constraints and the entrypoint (no Docker engine needed)."""

from __future__ import annotations

import inspect
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from baton.store import open_store
from simulator.__main__ import _parser as simulator_parser
from tests.deploy._repo import (
    COMPOSE,
    CONSTRAINTS,
    DOCKERFILE,
    DOCKERIGNORE,
    ENTRYPOINT,
    ROOT,
    services,
)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and ARGs substituted."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends with a continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m[1]], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif instruction == "ARG" and not stages:
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, args))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def test_base_image_is_a_pinned_slim_python_of_the_project_version(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    for stage in stages:
        match = re.fullmatch(
            r"python:(\d+)\.(\d+)\.(\d+)-slim-(\w+)(@sha256:[0-9a-f]{64})?", stage.base
        )
        assert match, f"stage {stage.name}: base {stage.base!r} is not a pinned python:X.Y.Z-slim"
        assert f"{match[1]}.{match[2]}" == f"{sys.version_info[0]}.{sys.version_info[1]}"
        assert Requirement(f"python{requires}").specifier.contains(
            f"{match[1]}.{match[2]}.{match[3]}"
        )
    assert len({stage.base for stage in stages}) == 1, "the venv moves between identical bases"


def test_multi_stage_and_the_final_stage_runs_as_non_root_without_build_tools(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    assert len(stages) >= 2
    final = stages[-1]
    users = final.args("USER")
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    for run in final.args("RUN"):
        assert not re.search(r"\b(apt-get|apk|pip|gcc|make|build-essential)\b", run), run
    copies = final.args("COPY")
    assert copies and all(c.startswith("--from=") for c in copies), (
        "final stage copies only built files"
    )
    entrypoint = final.args("ENTRYPOINT")
    assert entrypoint == ['["/app/deploy/entrypoint.sh"]'], "exec form, so signals reach Python"


def test_dependencies_install_from_the_constraints_file(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    installs = [run for stage in stages for run in stage.args("RUN") if "pip install" in run]
    assert installs
    for run in installs:
        assert "-c constraints.txt" in run, run


def test_constraints_pin_every_declared_dependency_within_its_range() -> None:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"constraints.txt: not a plain pin: {line!r}"
        pins[_canonical(match[1])] = match[2]
    assert "baton" not in pins, "the project itself is not a constraint"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    for spec in declared:
        requirement = Requirement(spec)
        name = _canonical(requirement.name)
        assert name in pins, f"{name} is not pinned: run deploy/freeze-constraints.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside {requirement.specifier}"
        )


def test_setup_installs_development_packages_under_the_same_pins() -> None:
    setup = (ROOT / "scripts" / "setup").read_text(encoding="utf-8")
    installs = [line for line in setup.splitlines() if "pip install" in line and "-e" in line]
    assert installs, "scripts/setup installs the project"
    for line in installs:
        assert "-c constraints.txt" in line, line
    assert "constraints.txt | sha256sum" in setup, "a changed lock reinstalls the venv"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus `**`) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _docker_ignores(relative: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders wins."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negated, pattern in _dockerignore_patterns():
        if any(_pattern(pattern).match(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def test_copied_sources_exist_and_reach_the_build_context(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    sources = []
    for stage in stages:
        for copy in stage.args("COPY"):
            words = [w for w in shlex.split(copy) if not w.startswith("--")]
            if copy.startswith("--from="):
                continue
            sources.extend(words[:-1])
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: missing"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if "__pycache__" in relative:
                continue
            assert not _docker_ignores(relative), f"{relative} is excluded by .dockerignore"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/config",
        ".env",
        "k8s/overlays/example/secrets.env",
        "tests/unit/x.py",
    ],
)
def test_dockerignore_keeps_local_state_and_secrets_out(path: str) -> None:
    assert _docker_ignores(path)


def test_entrypoint_is_executable_posix_shell() -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)


def _run_entrypoint(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, list[str]]:
    """Run the entrypoint with a stub `python` that records its arguments instead of running."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "argv"
    stub = bin_dir / "python"
    stub.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\0" "$a"; done > {record}\n')
    stub.chmod(0o755)
    record.unlink(missing_ok=True)
    done = subprocess.run(
        [str(ENTRYPOINT), *args],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **(env or {})},
        capture_output=True,
        check=False,
    )
    argv = record.read_bytes().decode().split("\0")[:-1] if record.exists() else []
    return done.returncode, argv


@pytest.mark.parametrize("service", sorted(services()))
def test_entrypoint_runs_a_service_by_name(tmp_path: Path, service: str) -> None:
    code, argv = _run_entrypoint(tmp_path, service, "--extra")
    assert (code, argv) == (0, ["-m", f"services.{service}", "--extra"])


def test_entrypoint_migrate_runs_code_that_compiles_against_the_store_api(tmp_path: Path) -> None:
    code, argv = _run_entrypoint(tmp_path, "migrate")
    assert code == 0 and argv[0] == "-c"
    compile(argv[1], "<migrate>", "exec")
    assert "open_store(url, migrate=True)" in argv[1]
    assert "migrate" in inspect.signature(open_store).parameters


def test_entrypoint_simulator_passes_baton_secrets_and_listens_on_all_interfaces(
    tmp_path: Path,
) -> None:
    env = {"BATON_ACCESS_TOKEN": "tok", "BATON_APP_SECRET": "sec"}
    code, argv = _run_entrypoint(tmp_path, "simulator", "--number", "1", env=env)
    assert code == 0
    assert argv[:3] == ["-m", "simulator", "serve"]
    options = argv[3:]
    pairs = dict(zip(options[::2], options[1::2], strict=True))
    assert pairs == {
        "--host": "0.0.0.0",
        "--port": "8090",
        "--webhook-url": "http://ingest:8080/webhook",
        "--token": "tok",
        "--app-secret": "sec",
        "--number": "1",
    }
    simulator_parser().parse_args(argv[2:])  # the simulator accepts every option we pass


def test_entrypoint_probe_targets_loopback(tmp_path: Path) -> None:
    code, argv = _run_entrypoint(tmp_path, "probe", "9100")
    assert code == 0 and argv[0] == "-c" and argv[2] == "http://127.0.0.1:9100/readyz"
    compile(argv[1], "<probe>", "exec")
    _, argv = _run_entrypoint(tmp_path, "probe", "8090", "/_sim/health")
    assert argv[2] == "http://127.0.0.1:8090/_sim/health"


def test_entrypoint_without_a_command_prints_usage_and_fails(tmp_path: Path) -> None:
    code, argv = _run_entrypoint(tmp_path)
    assert (code, argv) == (64, [])


def test_entrypoint_runs_any_other_command(tmp_path: Path) -> None:
    code, argv = _run_entrypoint(tmp_path, "python", "-V")
    assert (code, argv) == (0, ["-V"])
    code, _ = _run_entrypoint(tmp_path, "false")
    assert code == 1


def _build_step_keeping_the_simulator(stages: list[Stage]) -> tuple[str, str]:
    """The build stage's RUN that decides whether the simulator stays, and its ARG default."""
    for stage in stages:
        defaults = dict(a.partition("=")[::2] for a in stage.args("ARG"))
        for run in stage.args("RUN"):
            if "BATON_WITH_SIMULATOR" in run:
                return run, defaults["BATON_WITH_SIMULATOR"]
    raise AssertionError("no build step decides about the simulator")


@pytest.mark.parametrize("with_simulator", [None, "true"])
def test_the_simulator_reaches_only_images_built_for_local_stacks(
    dockerfile: tuple[dict[str, str], list[Stage]], tmp_path: Path, with_simulator: str | None
) -> None:
    _, stages = dockerfile
    run, default = _build_step_keeping_the_simulator(stages)
    app = tmp_path / "app"
    for package in ("libs/baton", "services", "simulator"):
        (app / package).mkdir(parents=True)
        (app / package / "__init__.py").write_text("")
    (app / "deploy").mkdir()
    (app / "deploy" / "entrypoint.sh").write_text("#!/bin/sh\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    value = with_simulator if with_simulator is not None else default
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "BATON_WITH_SIMULATOR": value}
    subprocess.run(["sh", "-c", run], cwd=app, env=env, check=True)
    assert (app / "simulator").exists() is (with_simulator == "true")
    assert (app / "services" / "__pycache__").is_dir()


def test_the_local_stack_builds_its_image_with_the_simulator() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert compose["x-baton"]["build"]["args"] == {"BATON_WITH_SIMULATOR": "true"}


def test_entrypoint_simulator_in_a_production_image_says_how_to_get_one(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "deploy").mkdir(parents=True)
    script = app / "deploy" / "entrypoint.sh"
    script.write_text(ENTRYPOINT.read_text())
    script.chmod(0o755)
    done = subprocess.run([str(script), "simulator"], capture_output=True, text=True, check=False)
    assert done.returncode == 64
    assert "BATON_WITH_SIMULATOR=true" in done.stderr
