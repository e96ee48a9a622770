"""k8s/: the kustomizations render, validate against Kubernetes' schemas offline, and hold together."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from baton.service import DRAIN_SECONDS
from baton.settings import NumbersConfig
from tests.deploy import _env, _kustomize
from tests.deploy._repo import (
    DASHBOARDS,
    K8S,
    K8S_BASE,
    K8S_OVERLAY,
    PLANNED_SERVICES,
    ROOT,
    git_ignored,
    ops_port_setting,
    services,
)

Obj = dict[str, Any]
# The oldest Kubernetes minor we claim to support, and the newest schemas the validator ships.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
# Custom resources of the Prometheus Operator: no schema ships for them; checked structurally.
OPERATOR_KINDS = frozenset({"PodMonitor", "PrometheusRule"})
PLACEHOLDER = "REPLACE_ME"  # what the committed secret templates hold instead of values
AUTOSCALED = frozenset({"ingest", "router", "bot"})
# Settings the example overlay sets on purpose to something else than the code's default.
DELIBERATE_OVERRIDES = frozenset(
    {
        "BATON_ENVIRONMENT",
        "BATON_NUMBERS_FILE",
        "BATON_LOG_JSON",
        "BATON_LLM_BASE_URL",
    }
)


def kustomization_dirs() -> list[Path]:
    return sorted(
        p.parent for root in (K8S, ROOT / "deploy") for p in root.rglob("kustomization.yaml")
    )


@pytest.fixture(scope="module")
def overlay() -> list[Obj]:
    return _kustomize.build(K8S_OVERLAY, use_examples=True)


@pytest.fixture(scope="module")
def base() -> list[Obj]:
    return _kustomize.build(K8S_BASE)


def _of_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def _container(workload: Obj) -> Obj:
    containers = _pod_spec(workload)["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    container: Obj = containers[0]
    return container


def _name(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _component(obj: Obj) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _container_env(workload: Obj, objects: list[Obj]) -> tuple[dict[str, str], dict[str, str]]:
    """The container's environment split by origin: (from ConfigMaps and env, from Secrets)."""
    config_maps, secrets = _of_kind(objects, "ConfigMap"), _of_kind(objects, "Secret")
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    container = _container(workload)
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            plain.update(config_maps[source["configMapRef"]["name"]]["data"])
        else:
            data = secrets[source["secretRef"]["name"]]["data"]
            secret.update({k: _filled(k, base64.b64decode(v).decode()) for k, v in data.items()})
    for item in container.get("env", []):
        assert "value" in item, "env from valueFrom: extend this test"
        plain[item["name"]] = item["value"]
    return plain, secret


def _filled(key: str, value: str) -> str:
    """A secret as an operator deploys it: the template's placeholder replaced by a real value."""
    return value.replace(PLACEHOLDER, f"deployed-{key.lower()}-0123456789")


def _decoded(secret: Obj) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def _settings_of(workload: Obj, objects: list[Obj]) -> Any:
    plain, secret = _container_env(workload, objects)
    return _env.validate({**plain, **secret})


@pytest.mark.parametrize("target", ["base", "overlay"])
def test_every_manifest_validates_against_the_kubernetes_schemas(
    target: str, base: list[Obj], overlay: list[Obj]
) -> None:
    objects = base if target == "base" else overlay
    failures = []
    for obj in objects:
        if obj["kind"] in OPERATOR_KINDS:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["spec"], obj["kind"]
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                failures.append(f"{_name(obj)} @{version} {where}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_the_schema_check_rejects_a_misspelt_field(overlay: list[Obj]) -> None:
    deployment = dict(next(iter(_of_kind(overlay, "Deployment").values())))
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_kustomization_references_resolve(directory: Path) -> None:
    for ref in _kustomize.references(directory):
        if ref.field in ("resources", "components") and ref.path.is_dir():
            kustomization = _kustomize.load_kustomization(ref.path)
            expected = "Component" if ref.field == "components" else "Kustomization"
            assert kustomization.get("kind", "Kustomization") == expected, ref
        elif ref.field == "secretGenerator" and not ref.path.exists():
            # A secrets file is never committed: its template is, and git ignores the real one.
            assert ref.path.with_name(ref.path.name + ".example").is_file(), ref
            assert git_ignored(ref.path), f"{ref.path} must be gitignored"
        else:
            assert ref.path.is_file(), f"{ref.kustomization}: {ref.field} {ref.path} is missing"


def test_no_secret_value_is_committed(base: list[Obj]) -> None:
    assert not _of_kind(base, "Secret"), "the base holds no Secret; overlays generate it"
    for path in K8S.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                assert not (doc and doc.get("kind") == "Secret"), f"{path} holds a Secret"
    template = K8S_OVERLAY / "secrets.env.example"
    for key, value in _kustomize.parse_env_file(template).items():
        assert PLACEHOLDER in value, f"{template}: {key} must be a placeholder"


def test_one_deployment_per_service_from_the_one_image(base: list[Obj]) -> None:
    deployments = _of_kind(base, "Deployment")
    by_service = {_container(d)["args"][0]: name for name, d in deployments.items()}
    assert set(by_service) == services() | PLANNED_SERVICES
    workloads = [*deployments.values(), *_of_kind(base, "Job").values()]
    assert {_container(w)["image"] for w in workloads} == {"baton"}


def test_the_migration_job_migrates_with_the_services_configuration(overlay: list[Obj]) -> None:
    jobs = _of_kind(overlay, "Job")
    assert [_container(j)["args"] for j in jobs.values()] == [["migrate"]]
    job = next(iter(jobs.values()))
    assert _pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")
    deployment = next(iter(_of_kind(overlay, "Deployment").values()))
    assert _container(job)["envFrom"] == _container(deployment)["envFrom"]


def test_every_deployment_gets_every_setting_with_secrets_from_the_secret(
    overlay: list[Obj],
) -> None:
    defaults = _env.validate({})
    documented_unset = _env.read_env_example(K8S_BASE / "config.env")[1]
    for name, workload in {**_of_kind(overlay, "Deployment"), **_of_kind(overlay, "Job")}.items():
        plain, secret = _container_env(workload, overlay)
        env = {**plain, **secret}
        # Unset on purpose: then documented, commented out, in the ConfigMap's env file.
        missing = _env.setting_names() - set(env) - (documented_unset & _env.optional_names())
        assert not missing, f"{name} lacks {sorted(missing)}: run deploy/sync_settings.py"
        leaked = _env.secret_names() & set(plain)
        assert not leaked, f"{name}: {sorted(leaked)} must come from the Secret"
        for key in _env.optional_names() & set(env):
            assert env[key], f"{name}: {key} is empty, which does not mean unset"
        settings = _env.validate(env)
        assert settings.environment == "production"
        for key in _env.host_names():
            assert env[key] == "0.0.0.0", f"{name}: {key}"
        for field in type(settings).model_fields:
            key = _env.env_name(field)
            if key in DELIBERATE_OVERRIDES | _env.secret_names() | _env.host_names():
                continue
            assert getattr(settings, field) == getattr(defaults, field), (
                f"{key}={env.get(key)} differs from the code's default"
                f" {getattr(defaults, field)!r}: run deploy/sync_settings.py, or list it in"
                " DELIBERATE_OVERRIDES"
            )


def test_the_secret_templates_placeholders_are_refused_in_production(overlay: list[Obj]) -> None:
    workload = next(iter(_of_kind(overlay, "Deployment").values()))
    plain, _ = _container_env(workload, overlay)
    committed = _kustomize.parse_env_file(K8S_OVERLAY / "secrets.env.example")
    with pytest.raises(ValueError, match="placeholder"):
        _env.validate({**plain, **committed})


def test_probes_resources_security_and_graceful_shutdown(overlay: list[Obj]) -> None:
    drain = DRAIN_SECONDS
    for name, deployment in _of_kind(overlay, "Deployment").items():
        pod, container = _pod_spec(deployment), _container(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            assert container[probe]["httpGet"]["path"] == path, (name, probe)
            assert container[probe]["httpGet"]["port"] in ports, (name, probe)
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, (name, kind)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
        sleep = int(pre_stop["command"][1]) if pre_stop else 0
        assert pod["terminationGracePeriodSeconds"] > sleep + drain, name


def test_probe_and_scrape_ports_match_the_settings(overlay: list[Obj]) -> None:
    for name, deployment in _of_kind(overlay, "Deployment").items():
        container = _container(deployment)
        settings = _settings_of(deployment, overlay)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        probed = ports[container["readinessProbe"]["httpGet"]["port"]]
        service = container["args"][0]
        if service not in PLANNED_SERVICES:
            assert probed == getattr(settings, ops_port_setting(service)), name
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == probed, name


def test_http_services_drain_from_the_load_balancer_before_stopping(overlay: list[Obj]) -> None:
    deployments = _of_kind(overlay, "Deployment")
    served = {
        s["spec"]["selector"]["app.kubernetes.io/component"]
        for s in _of_kind(overlay, "Service").values()
    }
    assert "ingest" in served
    for deployment in deployments.values():
        if _component(deployment) in served:
            pre_stop = _container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
            assert pre_stop[0] == "sleep" and int(pre_stop[1]) >= 5


def test_autoscalers_and_disruption_budgets(overlay: list[Obj]) -> None:
    deployments = _of_kind(overlay, "Deployment")
    hpas = _of_kind(overlay, "HorizontalPodAutoscaler")
    scaled = {hpa["spec"]["scaleTargetRef"]["name"]: hpa for hpa in hpas.values()}
    assert {_component(deployments[name]) for name in scaled} == AUTOSCALED
    for name, hpa in scaled.items():
        assert "replicas" not in deployments[name]["spec"], f"{name}: the HPA owns replicas"
        assert hpa["spec"]["minReplicas"] >= 2
    budgets = list(_of_kind(overlay, "PodDisruptionBudget").values())
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        mine = [b for b in budgets if _selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(mine) == 1, f"{name}: {len(mine)} PodDisruptionBudgets"
        assert mine[0]["spec"].get("maxUnavailable") == 1, "never blocks a node drain"


def test_services_and_ingresses_route_to_declared_ports(overlay: list[Obj]) -> None:
    deployments = list(_of_kind(overlay, "Deployment").values())
    services_by_name = _of_kind(overlay, "Service")
    for name, service in services_by_name.items():
        backing = [
            d
            for d in deployments
            if _selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(backing) == 1, name
        port_names = {p["name"] for p in _container(backing[0])["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (name, port)
    for name, ingress in _of_kind(overlay, "Ingress").items():
        for rule in ingress["spec"]["rules"]:
            assert rule.get("host"), f"{name}: the overlay sets the host"
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = services_by_name[backend["name"]]
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
        assert ingress["spec"].get("tls"), f"{name}: TLS"


def test_only_the_webhook_is_public_and_meta_sized_bodies_pass(overlay: list[Obj]) -> None:
    webhook = _of_kind(overlay, "Ingress")["baton-webhook"]
    paths = [p for rule in webhook["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/webhook", "Exact")]
    settings = _settings_of(_of_kind(overlay, "Deployment")["baton-ingest"], overlay)
    limit = webhook["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    match = re.fullmatch(r"(\d+)([km])", limit)
    assert match
    limit_bytes = int(match[1]) * {"k": 1024, "m": 1024 * 1024}[match[2]]
    assert limit_bytes >= settings.ingest_max_body_bytes


def test_the_pod_monitor_scrapes_every_pod_on_its_metrics_port(overlay: list[Obj]) -> None:
    monitors = list(_of_kind(overlay, "PodMonitor").values())
    assert len(monitors) == 1
    spec = monitors[0]["spec"]
    endpoint_ports = {e["port"] for e in spec["podMetricsEndpoints"]}
    for endpoint in spec["podMetricsEndpoints"]:
        targets = {r.get("targetLabel") for r in endpoint.get("relabelings", [])}
        assert "service" in targets, "dashboards and alerts group by `service`"
    for name, deployment in _of_kind(overlay, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _selects(spec["selector"]["matchLabels"], labels), name
        container = _container(deployment)
        metrics_port = container["readinessProbe"]["httpGet"]["port"]
        assert metrics_port in endpoint_ports, name


def test_the_dashboards_config_map_carries_every_dashboard(overlay: list[Obj]) -> None:
    sidecar = [
        c
        for c in _of_kind(overlay, "ConfigMap").values()
        if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert len(sidecar) == 1
    files = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARDS.glob("*.json")}
    assert files and sidecar[0]["data"] == files


def test_the_webhook_ingress_and_generated_names_survive_real_kustomize(
    overlay: list[Obj], tmp_path: Path
) -> None:
    """Cross-check the Python renderer with `kubectl kustomize` where kubectl is installed."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the Python renderer alone was checked")
    for folder in ("k8s", "deploy"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    overlay_copy = tmp_path / K8S_OVERLAY.relative_to(ROOT)
    shutil.copy(overlay_copy / "secrets.env.example", overlay_copy / "secrets.env")
    done = subprocess.run(
        [kubectl, "kustomize", str(overlay_copy)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    real = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    generated = {"ConfigMap", "Secret"}

    def key(obj: Obj) -> tuple[str, str]:
        name = obj["metadata"]["name"]
        if (
            obj["kind"] in generated
            and obj["metadata"].get("labels", {}).get("grafana_dashboard") != "1"
        ):
            name = re.sub(r"-[a-z0-9]{10}$", "", name)  # kustomize's content hash
        return obj["kind"], name

    assert sorted(map(key, real)) == sorted(map(key, overlay))
    ours = {key(o): o for o in overlay}
    for obj in real:
        mine = ours[key(obj)]
        if obj["kind"] == "Secret":
            assert _decoded(obj) == _decoded(mine), key(obj)
        elif obj["kind"] == "ConfigMap":
            assert obj.get("data") == mine.get("data"), key(obj)
        elif obj["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[-1], strict=True)
        assert obj["metadata"].get("namespace") == mine["metadata"].get("namespace")


def _yaml_files() -> list[Path]:
    roots = [K8S, ROOT / "deploy"]
    found = [p for root in roots for p in root.rglob("*") if p.suffix in (".yaml", ".yml")]
    return sorted([*found, ROOT / "docker-compose.yml"])


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    assert docs and all(isinstance(doc, dict) for doc in docs)


@pytest.mark.parametrize(
    "path", [K8S_BASE / "numbers.toml", ROOT / "deploy" / "baton" / "numbers.example.toml"]
)
def test_numbers_files_load(path: Path) -> None:
    NumbersConfig.load(path)
