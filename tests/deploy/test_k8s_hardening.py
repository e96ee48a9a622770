"""k8s/ hardening: a ServiceAccount per workload, the NetworkPolicies, and the optional KEDA and
Gateway API components, rendered offline (and with `kubectl kustomize` where kubectl exists)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from baton.broker import topology
from tests.deploy import _kustomize
from tests.deploy._repo import K8S, K8S_BASE, K8S_OVERLAY, ROOT
from tests.deploy.test_k8s import KUBERNETES_VERSIONS

Obj = dict[str, Any]
NAMESPACE = "baton"  # the example overlay's
MONITORING = "monitoring"  # where the base lets Prometheus scrape from
COMPONENTS = ("keda", "gateway-api", "chatwoot")
# Reachable from outside, by the Deployment's component label: the webhook and the console, and
# the Chatwoot bridge's callbacks once its component (with their Ingress) is enabled.
PUBLIC = frozenset({"ingest", "console"})
PUBLIC_WITH_CHATWOOT = PUBLIC | {"chatwoot"}
# Services that call HTTPS APIs (Graph, LLM, speech-to-text, S3, Chatwoot); the others never do.
CALLS_OUT = frozenset({"bot", "outbox", "history", "console", "chatwoot"})
KEDA_SCALED = frozenset({"router", "bot", "outbox"})
CRD_KINDS = frozenset(
    {"PodMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication", "HTTPRoute"}
)


def _full_overlay(root: Path) -> Path:
    """An overlay under `root`'s copy of k8s/: the example plus every optional component."""
    folder = root / "k8s" / "overlays" / "full"
    folder.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": ["../example"],
        "components": [f"../../components/{name}" for name in COMPONENTS],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("k8s")
    for folder in ("k8s", "deploy"):
        shutil.copytree(ROOT / folder, root / folder)
    example = root / K8S_OVERLAY.relative_to(ROOT)
    shutil.copy(example / "secrets.env.example", example / "secrets.env")
    _full_overlay(root)
    return root


@pytest.fixture(scope="module")
def overlay() -> list[Obj]:
    return _kustomize.build(K8S_OVERLAY, use_examples=True)


@pytest.fixture(scope="module")
def full(tree: Path) -> list[Obj]:
    return _kustomize.build(tree / "k8s" / "overlays" / "full")


def _of_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _workloads(objects: list[Obj]) -> dict[str, Obj]:
    return {**_of_kind(objects, "Deployment"), **_of_kind(objects, "Job")}


def _pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def _component(workload: Obj) -> str:
    return _pod_labels(workload)["app.kubernetes.io/component"]


def _ports(workload: Obj) -> dict[str, int]:
    return {
        port["name"]: port["containerPort"]
        for container in workload["spec"]["template"]["spec"]["containers"]
        for port in container.get("ports", [])
    }


# --- ServiceAccounts -------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["overlay", "full"])
def test_every_workload_has_its_own_service_account_without_a_token(
    target: str, overlay: list[Obj], full: list[Obj]
) -> None:
    objects = overlay if target == "overlay" else full
    accounts = _of_kind(objects, "ServiceAccount")
    used: dict[str, str] = {}
    for name, workload in _workloads(objects).items():
        pod = workload["spec"]["template"]["spec"]
        account = pod.get("serviceAccountName")
        assert account, f"{name} runs as the namespace's `default` ServiceAccount"
        assert account in accounts, f"{name}: ServiceAccount {account} is not deployed"
        assert account not in used, f"{name} shares {account} with {used.get(account)}"
        used[account] = name
        # Both: the pod's setting wins, the account's covers pods someone adds later.
        assert pod.get("automountServiceAccountToken") is False, name
        assert accounts[account].get("automountServiceAccountToken") is False, account
    assert set(accounts) == set(used), "a ServiceAccount nothing runs as"
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} & {
        o["kind"] for o in objects
    }, "Baton never talks to the Kubernetes API"


# --- NetworkPolicies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """Where a connection comes from or goes to: a pod (with its namespace's labels) or, with
    `pod` None, an address outside the cluster."""

    namespace: str | None
    pod: dict[str, str] | None = None

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {} if self.namespace is None else {"kubernetes.io/metadata.name": self.namespace}


OUTSIDE = Peer(None)
MONITORING_POD = Peer(MONITORING, {"app.kubernetes.io/name": "prometheus"})
NEIGHBOUR = Peer(NAMESPACE, {"app": "something-else"})


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Kubernetes' LabelSelector semantics (matchLabels and matchExpressions)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        present = key in labels
        matched = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not matched:
            return False
    return True


def _peer_matches(rule_peers: list[Obj] | None, peer: Peer) -> bool:
    if rule_peers is None:
        return True  # no `from`/`to`: every source or destination
    for entry in rule_peers:
        if "ipBlock" in entry:
            raise _kustomize.Unsupported("ipBlock: extend this evaluator")
        if peer.pod is None:
            continue  # outside the cluster: only an ipBlock could match it
        namespace_selector = entry.get("namespaceSelector")
        pod_selector = entry.get("podSelector", {})
        if namespace_selector is None:
            in_namespace = peer.namespace == NAMESPACE
        else:
            in_namespace = _selects(namespace_selector, peer.namespace_labels)
        if in_namespace and _selects(pod_selector, peer.pod):
            return True
    return False


def _port_matches(
    rule_ports: list[Obj] | None, port: int, protocol: str, named: dict[str, int]
) -> bool:
    if rule_ports is None:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if (
            wanted is None
            or wanted == port
            or (isinstance(wanted, str) and named.get(wanted) == port)
        ):
            return True
    return False


def _policy_types(spec: Obj) -> list[str]:
    """Kubernetes' default when `policyTypes` is left out: Ingress, and Egress if it has rules."""
    default = ["Ingress", *(["Egress"] if "egress" in spec else [])]
    types: list[str] = spec.get("policyTypes") or default
    return types


def _policies_for(objects: list[Obj], workload: Obj, direction: str) -> list[Obj]:
    namespace = workload["metadata"].get("namespace")
    return [
        policy
        for policy in _of_kind(objects, "NetworkPolicy").values()
        if policy["metadata"].get("namespace") == namespace
        and direction in _policy_types(policy["spec"])
        and _selects(policy["spec"]["podSelector"], _pod_labels(workload))
    ]


def _allows_in(objects: list[Obj], workload: Obj, source: Peer, port: int) -> bool:
    policies = _policies_for(objects, workload, "Ingress")
    assert policies, f"{workload['metadata']['name']} is not isolated for ingress"
    return any(
        _peer_matches(rule.get("from"), source)
        and _port_matches(rule.get("ports"), port, "TCP", _ports(workload))
        for policy in policies
        for rule in policy["spec"].get("ingress", [])
    )


def _allows_out(
    objects: list[Obj], workload: Obj, destination: Peer, port: int, protocol: str = "TCP"
) -> bool:
    policies = _policies_for(objects, workload, "Egress")
    assert policies, f"{workload['metadata']['name']} is not isolated for egress"
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            for entry in rule.get("ports") or []:
                assert not isinstance(entry.get("port"), str), "a named egress port: whose?"
            if _peer_matches(rule.get("to"), destination) and _port_matches(
                rule.get("ports"), port, protocol, {}
            ):
                return True
    return False


def _url_port(url: str) -> int:
    parts = urlsplit(url)
    default = {"https": 443, "amqp": 5672, "amqps": 5671, "postgresql": 5432, "postgres": 5432}
    return parts.port or default[parts.scheme]


def _backends() -> dict[str, int]:
    """The broker's and the store's ports, from the Secret's template (what operators fill in)."""
    secrets = _kustomize.parse_env_file(K8S_OVERLAY / "secrets.env.example")
    return {key: _url_port(secrets[key]) for key in ("BATON_AMQP_URL", "BATON_STORE_URL")}


def _https_apis() -> dict[str, int]:
    config = _kustomize.parse_env_file(K8S_BASE / "config.env")
    overlay = _kustomize.load_kustomization(K8S_OVERLAY)
    for generator in overlay.get("configMapGenerator", []):
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            config[key] = value
    return {
        key: _url_port(value)
        for key, value in config.items()
        if key.endswith("_URL") and value.startswith("http")
    }


def test_the_https_apis_and_backends_this_test_reasons_about_are_configured() -> None:
    assert set(_https_apis()) >= {"BATON_GRAPH_API_URL", "BATON_LLM_BASE_URL"}
    assert set(_https_apis().values()) == {443}
    assert _backends() == {"BATON_AMQP_URL": 5672, "BATON_STORE_URL": 5432}


@pytest.mark.parametrize("target", ["overlay", "full"])
def test_every_baton_pod_is_default_denied_both_ways(
    target: str, overlay: list[Obj], full: list[Obj]
) -> None:
    objects = overlay if target == "overlay" else full
    policies = list(_of_kind(objects, "NetworkPolicy").values())
    deny = [
        p
        for p in policies
        if set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert len(deny) == 1
    for name, workload in _workloads(objects).items():
        assert _selects(deny[0]["spec"]["podSelector"], _pod_labels(workload)), name
    # Only Baton's own pods: a broker or database in the same namespace keeps its traffic.
    for policy in policies:
        assert policy["spec"]["podSelector"], f"{policy['metadata']['name']} selects every pod"
        assert not _selects(policy["spec"]["podSelector"], NEIGHBOUR.pod or {})


@pytest.mark.parametrize("target", ["overlay", "full"])
def test_only_the_public_services_are_reachable_and_prometheus_scrapes_every_pod(
    target: str, overlay: list[Obj], full: list[Obj]
) -> None:
    objects = overlay if target == "overlay" else full
    public = PUBLIC_WITH_CHATWOOT if target == "full" else PUBLIC
    for name, workload in _workloads(objects).items():
        ports = _ports(workload)
        component = _component(workload)
        for port_name, port in ports.items():
            from_outside = _allows_in(objects, workload, OUTSIDE, port) or _allows_in(
                objects, workload, NEIGHBOUR, port
            )
            expected = component in public and port_name == "http"
            assert from_outside == expected, (name, port_name, from_outside)
        scrape_port = workload["spec"]["template"]["metadata"].get("annotations", {})
        if "prometheus.io/port" in scrape_port:
            metrics = int(scrape_port["prometheus.io/port"])
            assert metrics in ports.values(), name
            assert _allows_in(objects, workload, MONITORING_POD, metrics), name
            # Only /metrics' port: nothing else of a private service from the monitoring side.
            for port in set(ports.values()) - {metrics}:
                assert not _allows_in(objects, workload, MONITORING_POD, port), (name, port)
        # Not on any other port, from anywhere (a port nothing listens on).
        assert not _allows_in(objects, workload, OUTSIDE, 6553), name


@pytest.mark.parametrize("target", ["overlay", "full"])
def test_only_dns_the_broker_the_store_and_https_apis_are_allowed_out(
    target: str, overlay: list[Obj], full: list[Obj]
) -> None:
    objects = overlay if target == "overlay" else full
    backends = set(_backends().values())
    https = set(_https_apis().values())
    for name, workload in _workloads(objects).items():
        component = _component(workload)
        for destination in (OUTSIDE, NEIGHBOUR):
            for protocol in ("UDP", "TCP"):
                assert _allows_out(objects, workload, destination, 53, protocol), (name, protocol)
            for port in backends:
                assert _allows_out(objects, workload, destination, port), (name, port)
            for port in https:
                calls_out = _allows_out(objects, workload, destination, port)
                assert calls_out == (component in CALLS_OUT), (name, port, calls_out)
            for port in (22, 80, 6379, 8080, 8081, 9100, 15672, 27017):
                assert not _allows_out(objects, workload, destination, port), (name, port)


def test_the_calling_out_services_are_those_whose_code_makes_http_calls() -> None:
    """CALLS_OUT stays honest: a service with an HTTP client must be allowed out on 443."""
    # The Graph client (sends, media), blob stores (S3), any httpx client (LLM, Chatwoot).
    clients = re.compile(
        r"\b(whatsapp\.client|_media_client|GraphClient|blobs|httpx|AsyncClient)\b"
    )
    callers = {
        folder.name
        for folder in (ROOT / "services").iterdir()
        if (folder / "app.py").is_file()
        and any(clients.search(p.read_text(encoding="utf-8")) for p in folder.rglob("*.py"))
    }
    assert {"bot", "outbox"} <= callers
    assert callers <= CALLS_OUT, f"{sorted(callers - CALLS_OUT)} call out: allow 443 for them"


def test_the_policy_evaluator_itself() -> None:
    policy: Obj = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": NAMESPACE},
        "spec": {
            "podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": MONITORING_POD.namespace_labels}}
                    ],
                    "ports": [{"port": "metrics"}],
                }
            ],
        },
    }
    pod: Obj = {
        "metadata": {"name": "w", "namespace": NAMESPACE},
        "spec": {
            "template": {
                "metadata": {"labels": {"a": "x"}},
                "spec": {"containers": [{"ports": [{"name": "metrics", "containerPort": 9}]}]},
            }
        },
    }
    assert _allows_in([policy], pod, MONITORING_POD, 9)
    assert not _allows_in([policy], pod, MONITORING_POD, 10)
    assert not _allows_in([policy], pod, NEIGHBOUR, 9)
    assert not _allows_in([policy], pod, OUTSIDE, 9)
    other: Obj = {**pod, "metadata": {"name": "w", "namespace": "elsewhere"}}
    with pytest.raises(AssertionError, match="not isolated"):
        _allows_in([policy], other, MONITORING_POD, 9)


# --- KEDA ------------------------------------------------------------------------------------


def _queue_variables() -> dict[str, str]:
    """Queue name → the topology constant that declares it."""
    return {
        spec.name: variable
        for variable, spec in vars(topology).items()
        if isinstance(spec, topology.QueueSpec)
    }


def _consumed_by(service: str) -> set[str]:
    """The declared queues a service's code refers to (by their topology constant)."""
    sources = "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "services" / service).rglob("*.py")
    )
    return {
        queue
        for queue, variable in _queue_variables().items()
        if queue in topology.QUEUES and re.search(rf"\b{variable}\b", sources)
    }


def _triggers(scaled: Obj, kind: str) -> Iterator[Obj]:
    yield from (t for t in scaled["spec"]["triggers"] if t["type"] == kind)


def test_keda_scales_router_bot_and_outbox_on_their_own_queues(full: list[Obj]) -> None:
    deployments = _of_kind(full, "Deployment")
    scaled_objects = _of_kind(full, "ScaledObject")
    auths = _of_kind(full, "TriggerAuthentication")
    secrets = _of_kind(full, "Secret")
    targets = {}
    for name, scaled in scaled_objects.items():
        ref = scaled["spec"]["scaleTargetRef"]
        assert ref.get("kind", "Deployment") == "Deployment", name
        assert ref["name"] in deployments, f"{name} scales a missing Deployment {ref['name']}"
        component = _component(deployments[ref["name"]])
        targets[component] = scaled
        assert scaled["metadata"]["namespace"] == deployments[ref["name"]]["metadata"]["namespace"]
        # Never to zero: the first message would wait for a pod to start.
        assert scaled["spec"]["minReplicaCount"] >= 2, name
        assert scaled["spec"]["maxReplicaCount"] > scaled["spec"]["minReplicaCount"], name
        queues = set()
        for trigger in _triggers(scaled, "rabbitmq"):
            metadata = trigger["metadata"]
            queues.add(metadata["queueName"])
            assert metadata["mode"] == "QueueLength" and int(metadata["value"]) > 0, name
            assert metadata["protocol"] == "amqp", "the services' AMQP URL, no management API"
            auth = auths[trigger["authenticationRef"]["name"]]
            for ref_ in auth["spec"]["secretTargetRef"]:
                secret = secrets[ref_["name"]]
                assert ref_["key"] in secret["data"], ref_
                value = base64.b64decode(secret["data"][ref_["key"]]).decode()
                assert urlsplit(value).scheme in ("amqp", "amqps"), ref_
            assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"host"}
        consumed = _consumed_by(component)
        assert queues, name
        assert queues <= consumed, f"{name} watches {sorted(queues - consumed)}, not its queues"
        if component != "outbox":  # the outbox's work queues are per number, made at run time
            assert queues == consumed, f"{name} ignores {sorted(consumed - queues)}"
        assert list(_triggers(scaled, "cpu")), f"{name}: CPU stays a floor"
    assert set(targets) == KEDA_SCALED


def test_keda_replaces_the_hpas_and_fixed_replicas_of_what_it_scales(
    overlay: list[Obj], full: list[Obj]
) -> None:
    scaled = {s["spec"]["scaleTargetRef"]["name"] for s in _of_kind(full, "ScaledObject").values()}
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in _of_kind(full, "HorizontalPodAutoscaler").values()
    }
    assert not scaled & hpas, f"two autoscalers fight over {sorted(scaled & hpas)}"
    for name in scaled:
        assert "replicas" not in _of_kind(full, "Deployment")[name]["spec"], name
    # Without the component, the base's HPAs and replicas are untouched.
    before = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in _of_kind(overlay, "HorizontalPodAutoscaler").values()
    }
    assert before - scaled == hpas
    assert _of_kind(overlay, "Deployment")["baton-outbox"]["spec"]["replicas"] >= 2


def test_the_renderer_deletes_and_refuses_what_it_should(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
        encoding="utf-8",
    )
    delete = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n$patch: delete\n"
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["r.yaml"], "patches": [{"patch": delete}]}), encoding="utf-8"
    )
    assert [o["metadata"]["name"] for o in _kustomize.build(tmp_path)] == ["b"]
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {"resources": ["r.yaml"], "patches": [{"patch": delete.replace("a}", "c}")}]}
        ),
        encoding="utf-8",
    )
    with pytest.raises(_kustomize.Unsupported, match="matches 0 objects"):
        _kustomize.build(tmp_path)


# --- Gateway API -----------------------------------------------------------------------------


def test_the_http_routes_expose_exactly_what_the_ingresses_do(full: list[Obj]) -> None:
    routes = _of_kind(full, "HTTPRoute")
    services = _of_kind(full, "Service")
    ingresses = _of_kind(full, "Ingress")
    assert set(routes) == {"baton-webhook", "baton-console"}
    for name, route in routes.items():
        assert route["spec"]["parentRefs"], name
        for rule in route["spec"]["rules"]:
            for backend in rule["backendRefs"]:
                service = services[backend["name"]]
                assert backend["port"] in {p["port"] for p in service["spec"]["ports"]}, name
        # Same backend as the Ingress of the same name.
        ingress_backends = {
            path["backend"]["service"]["name"]
            for rule in ingresses[name]["spec"]["rules"]
            for path in rule["http"]["paths"]
        }
        route_backends = {b["name"] for r in route["spec"]["rules"] for b in r["backendRefs"]}
        assert route_backends == ingress_backends, name
    webhook = routes["baton-webhook"]["spec"]["rules"]
    matches = [m for rule in webhook for m in rule["matches"]]
    assert {(m["path"]["type"], m["path"]["value"]) for m in matches} == {("Exact", "/webhook")}
    assert {m["method"] for m in matches} == {"GET", "POST"}


# --- every object, and kustomize itself ------------------------------------------------------


def test_every_object_of_the_full_overlay_validates(full: list[Obj]) -> None:
    failures = []
    for obj in full:
        if obj["kind"] in CRD_KINDS:
            assert obj["apiVersion"].split("/")[0] in (
                "monitoring.coreos.com",
                "keda.sh",
                "gateway.networking.k8s.io",
            ), obj["kind"]
            assert obj["spec"], obj["kind"]
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                failures.append(
                    f"{obj['kind']}/{obj['metadata']['name']} @{version}: {exc.message}"
                )
    assert not failures, "\n".join(failures)


def test_the_full_overlay_renders_the_same_with_real_kustomize(tree: Path, full: list[Obj]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the Python renderer alone was checked")
    done = subprocess.run(
        [kubectl, "kustomize", str(tree / "k8s" / "overlays" / "full")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    real = [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    def key(obj: Obj) -> tuple[str, str]:
        name = obj["metadata"]["name"]
        if obj["kind"] in ("ConfigMap", "Secret") and not obj["metadata"].get("labels", {}).get(
            "grafana_dashboard"
        ):
            name = re.sub(r"-[a-z0-9]{10}$", "", name)  # kustomize's content hash
        return obj["kind"], name

    assert sorted(map(key, real)) == sorted(map(key, full))
    # kustomize renames generated objects: every reference must follow (custom resources too).
    generated = {o["metadata"]["name"] for o in real if o["kind"] in ("ConfigMap", "Secret")}
    dangling = {
        f"{o['kind']}/{o['metadata']['name']}: {value}"
        for o in real
        for value in _strings(o.get("spec", {}))
        if re.fullmatch(r"baton-(config|numbers|secrets)(-[a-z0-9]{10})?", value)
        and value not in generated
    }
    assert not dangling, f"references to a name kustomize changed: {sorted(dangling)}"
    ours = {key(o): o for o in full}
    for obj in real:
        if obj["kind"] in ("ConfigMap", "Secret"):
            continue
        mine = ours[key(obj)]
        assert obj["metadata"].get("namespace") == mine["metadata"].get("namespace"), key(obj)
        if obj["kind"] in CRD_KINDS | {"NetworkPolicy", "Deployment", "ServiceAccount"}:
            # kustomize rewrites generated names in references; ours stay plain.
            body = {k: v for k, v in obj.items() if k != "metadata"}
            assert _unhashed(body) == {k: v for k, v in mine.items() if k != "metadata"}, key(obj)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def _unhashed(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _unhashed(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_unhashed(v) for v in node]
    if isinstance(node, str) and re.fullmatch(r"baton-(config|numbers|secrets)-[a-z0-9]{10}", node):
        return node.rsplit("-", 1)[0]
    return node


def test_the_components_are_offered_in_the_example_overlay() -> None:
    text = (K8S_OVERLAY / "kustomization.yaml").read_text(encoding="utf-8")
    for name in COMPONENTS:
        assert (K8S / "components" / name / "kustomization.yaml").is_file(), name
        assert f"../../components/{name}" in text, f"the example overlay does not mention {name}"
