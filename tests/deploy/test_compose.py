"""docker-compose.yml, .env.example and the compose stack's Prometheus/Grafana configuration."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from check_jsonschema.builtin_schemas import get_builtin_schema  # type: ignore[import-untyped]

from baton.service import DRAIN_SECONDS
from tests.deploy import _env
from tests.deploy._repo import (
    COMPOSE,
    DASHBOARDS,
    ENV_EXAMPLE,
    GRAFANA_PROVISIONING,
    PLANNED_SERVICES,
    PROMETHEUS,
    ROOT,
    load_script,
    load_yaml,
    ops_port_setting,
    services,
)

Service = dict[str, Any]
ONE_SHOT_COMMANDS = frozenset({"migrate", "minio-bucket"})  # services that run once and exit
TOOL_COMMANDS = frozenset({"migrate", "simulator"})


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def baton_services(compose: dict[str, Any]) -> dict[str, Service]:
    """Services that run the Baton image, by name."""
    image = compose["x-baton"]["image"]
    found = {name: s for name, s in compose["services"].items() if s.get("image") == image}
    assert found
    return found


def _command(service: Service) -> str:
    command = service["command"]
    return str(command[0] if isinstance(command, list) else command.split()[0])


def _env_of(service: Service) -> dict[str, Any]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, so it can be checked"
    return env


def _resolved(env: dict[str, Any], shell: dict[str, str]) -> dict[str, str]:
    """What the container gets: interpolated values; variables without a value only if set."""
    out = {}
    for key, value in env.items():
        if value is None:
            if shell.get(key):
                out[key] = shell[key]
        else:
            out[key] = _env.interpolate(str(value), shell)
    return out


def _healthcheck_port(service: Service) -> int:
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "/app/deploy/entrypoint.sh", "probe"], test
    return int(test[3])


def test_compose_file_validates_against_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = get_builtin_schema("vendor.compose-spec")
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_every_service_has_an_image_and_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service.get("image"), name
        if name in ONE_SHOT_COMMANDS:
            assert service.get("restart") == "no", name
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_depends_on_targets_exist_with_conditions_compose_can_honour(
    compose: dict[str, Any],
) -> None:
    all_services = compose["services"]
    for name, service in all_services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in all_services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            target_service = all_services[target]
            if condition == "service_healthy":
                assert "healthcheck" in target_service, f"{name} waits on {target}'s health"
            elif condition == "service_completed_successfully":
                assert target_service.get("restart") == "no", f"{target} must be one-shot"
            else:
                assert condition == "service_started"
            # A dependency on a service whose profile is off would stop compose from starting.
            target_profiles = set(target_service.get("profiles", []))
            if target_profiles:
                assert target_profiles & set(service.get("profiles", [])), (name, target)


def test_the_image_runs_every_service_and_unbuilt_ones_wait_behind_a_profile(
    baton_services: dict[str, Service],
) -> None:
    commands = {_command(s): name for name, s in baton_services.items()}
    for service in services():
        assert service in commands, f"services/{service} is not in docker-compose.yml"
        assert not baton_services[commands[service]].get("profiles"), service
    for command, name in commands.items():
        known = command in services() or command in TOOL_COMMANDS
        if not known:
            assert command in PLANNED_SERVICES, f"{name} runs unknown {command!r}"
            assert baton_services[name].get("profiles"), f"{name} would crash: give it a profile"
    simulator = baton_services[commands["simulator"]]
    assert simulator.get("profiles") == ["simulator"]


def test_every_setting_is_passed_to_every_baton_container(
    baton_services: dict[str, Service],
) -> None:
    optional = _env.optional_names()
    for name, service in baton_services.items():
        env = _env_of(service)
        missing = _env.setting_names() - set(env)
        assert not missing, f"{name} lacks {sorted(missing)}: run deploy/sync_settings.py"
        for key, value in env.items():
            if value is None:
                assert key in optional, f"{name}: {key} has a default, give it a value"
            elif key in optional:
                assert _env.interpolate(str(value), {}), f"{name}: {key} must not be empty"
            if key in _env.fixed_names():
                assert "$" not in str(value), f"{name}: {key} is fixed (probes rely on it)"


@pytest.mark.parametrize("source", ["defaults", ".env.example"])
def test_the_containers_environment_makes_valid_settings(
    baton_services: dict[str, Service], source: str
) -> None:
    shell = {} if source == "defaults" else _env.read_env_example(ENV_EXAMPLE)[0]
    for name, service in baton_services.items():
        env = _resolved(_env_of(service), shell)
        settings = _env.validate(env)
        for host in _env.host_names():
            assert env[host] == "0.0.0.0", f"{name}: {host} must listen on every interface"
        command = _command(service)
        if command in services():
            port = getattr(settings, ops_port_setting(command))
            assert _healthcheck_port(service) == port, name


def test_stop_grace_outlasts_the_drain(baton_services: dict[str, Service]) -> None:
    drain = DRAIN_SECONDS
    for name, service in baton_services.items():
        match = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
        assert match and int(match[1]) > drain, name


def test_env_example_documents_every_setting_and_every_compose_variable(
    compose: dict[str, Any],
) -> None:
    active, commented = _env.read_env_example(ENV_EXAMPLE)
    documented = set(active) | commented
    missing = _env.setting_names() - documented
    assert not missing, f".env.example lacks {sorted(missing)}: run deploy/sync_settings.py"
    for key in commented & _env.setting_names():
        assert key in _env.optional_names() | _env.fixed_names(), f"{key}: show it uncommented"
    for key in _env.optional_names() & set(active):
        assert active[key], f"{key}= (empty) would not mean unset: comment it out"
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text(encoding="utf-8")))
    undocumented = used - documented
    assert not undocumented, f"docker-compose.yml reads undocumented {sorted(undocumented)}"


def test_prometheus_scrapes_every_baton_service_on_its_ops_port(
    baton_services: dict[str, Service],
) -> None:
    config = load_yaml(PROMETHEUS)
    scraped: dict[str, int] = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for host in sd["names"]:
                scraped[host] = sd["port"]
    for name, service in baton_services.items():
        command = _command(service)
        if command in TOOL_COMMANDS:
            continue
        assert scraped.get(name) == _healthcheck_port(service), f"{name} is not scraped right"
    rabbit_jobs = [j for j in config["scrape_configs"] if j["job_name"] == "rabbitmq"]
    assert rabbit_jobs, "queue depth and the DLQ alert need RabbitMQ's own metrics"


def _mounts(service: Service) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            out[target] = ROOT / source
    return out


def test_prometheus_rule_files_and_grafana_provisioning_are_mounted(
    compose: dict[str, Any],
) -> None:
    prometheus_mounts = _mounts(compose["services"]["prometheus"])
    config = load_yaml(PROMETHEUS)
    assert prometheus_mounts["/etc/prometheus"] == PROMETHEUS.parent
    for rule_file in config["rule_files"]:
        relative = Path(rule_file).relative_to("/etc/prometheus")
        assert (PROMETHEUS.parent / relative).is_file(), rule_file
    grafana_mounts = _mounts(compose["services"]["grafana"])
    assert grafana_mounts["/etc/grafana/provisioning"] == GRAFANA_PROVISIONING
    providers = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "baton.yml")["providers"]
    paths = {p["options"]["path"] for p in providers}
    assert {grafana_mounts[path] for path in paths} == {DASHBOARDS}
    datasources = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")
    assert [d["type"] for d in datasources["datasources"] if d.get("isDefault")] == ["prometheus"]


def test_rabbitmq_enables_the_plugins_the_stack_relies_on(compose: dict[str, Any]) -> None:
    plugins_file = _mounts(compose["services"]["rabbitmq"])["/etc/rabbitmq/enabled_plugins"]
    plugins = plugins_file.read_text(encoding="utf-8")
    assert re.fullmatch(r"\[[a-z_,\s]+\]\.\s*", plugins), "an Erlang list term"
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= set(re.findall(r"\w+", plugins))


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert _env.interpolate("${SET:-d}/${EMPTY:-d}/${UNSET:-d}", env) == "x/d/d"
    assert _env.interpolate("${EMPTY-d}/${UNSET-d}/$SET/$$SET", env) == "/d/x/$SET"
    with pytest.raises(ValueError, match="required"):
        _env.interpolate("${UNSET:?needed}", env)


def test_generated_settings_blocks_are_current() -> None:
    sync = load_script(ROOT / "deploy" / "sync_settings.py")
    stale = [
        str(path.relative_to(ROOT))
        for path, wanted in sync.outputs().items()
        if path.read_text(encoding="utf-8") != wanted
    ]
    assert not stale, f"stale {stale}: run .venv/bin/python deploy/sync_settings.py"
