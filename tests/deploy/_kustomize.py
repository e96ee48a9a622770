"""Render a kustomization the way `kustomize build` does, for the features Baton's manifests use.

No kustomize binary is needed. Differences from kustomize, on purpose: generated ConfigMaps and
Secrets keep their plain names (no hash suffix, so references stay as written), and a feature this
module does not implement raises `Unsupported` instead of being ignored.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KUSTOMIZATION_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "components",
        "namespace",
        "images",
        "configMapGenerator",
        "secretGenerator",
        "generatorOptions",
        "patches",
        # kustomize's own transformer settings (name references in custom resources): they
        # change generated names' references, which this renderer leaves plain anyway.
        "configurations",
    }
)
GENERATOR_FIELDS = frozenset({"name", "behavior", "envs", "files", "literals", "options", "type"})
# Kinds that live outside namespaces, among those a kustomization here may hold.
CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass"}
)


class Unsupported(Exception):
    """The kustomization uses a feature this renderer does not implement."""


@dataclass(frozen=True)
class Reference:
    """A file or folder a kustomization names, and whether a missing `.example` stands in for it."""

    kustomization: Path
    field: str
    path: Path


def load_kustomization(directory: Path) -> Obj:
    """The kustomization.yaml of `directory`, refusing fields this renderer does not know."""
    path = directory / "kustomization.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise Unsupported(f"{path}: not a mapping")
    unknown = set(data) - KUSTOMIZATION_FIELDS
    if unknown:
        raise Unsupported(f"{path}: fields {sorted(unknown)}")
    return data


def references(directory: Path) -> Iterator[Reference]:
    """Every path `directory`'s kustomization names (resources, components, generator sources)."""
    kustomization = load_kustomization(directory)
    for field in ("resources", "components"):
        for entry in kustomization.get(field, []):
            yield Reference(directory, field, directory / entry)
    for field in ("configMapGenerator", "secretGenerator"):
        for generator in kustomization.get(field, []):
            for entry in generator.get("envs", []):
                yield Reference(directory, field, directory / entry)
            for entry in generator.get("files", []):
                yield Reference(directory, field, directory / entry.split("=", 1)[-1])
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            yield Reference(directory, "patches", directory / patch["path"])
    for entry in kustomization.get("configurations", []):
        yield Reference(directory, "configurations", directory / entry)


def build(directory: Path, *, use_examples: bool = False) -> list[Obj]:
    """The objects `kustomize build directory` would output (without name hashes).

    With `use_examples`, a missing generator env file `X` is read from `X.example` (a gitignored
    secrets file and its committed template).
    """
    return _build(directory.resolve(), expect_kind="Kustomization", use_examples=use_examples)


def _build(
    directory: Path, *, expect_kind: str, use_examples: bool, objects: list[Obj] | None = None
) -> list[Obj]:
    """Render `directory`; a Component transforms `objects`, its parent's resources, in place
    (its patches and `behavior: merge` generators act on what the parent has so far)."""
    kustomization = load_kustomization(directory)
    kind = kustomization.get("kind", "Kustomization")
    if kind != expect_kind:
        raise Unsupported(f"{directory}: kind {kind}, expected {expect_kind}")
    if objects is None:
        objects = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects.extend(_build(path, expect_kind="Kustomization", use_examples=use_examples))
        else:
            objects.extend(load_objects(path))
    for entry in kustomization.get("components", []):
        _build(
            directory / entry, expect_kind="Component", use_examples=use_examples, objects=objects
        )
    options = kustomization.get("generatorOptions", {})
    for field, kind_name in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for generator in kustomization.get(field, []):
            _generate(directory, kind_name, generator, options, objects, use_examples)
    for patch in kustomization.get("patches", []):
        _patch(directory, patch, objects)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    for image in kustomization.get("images", []):
        for obj in objects:
            _set_image(obj, image)
    return objects


def load_objects(path: Path) -> list[Obj]:
    """The non-empty YAML documents of a manifest file."""
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc:
            raise Unsupported(f"{path}: a document is not a Kubernetes object")
    return docs


def _generate(
    directory: Path,
    kind: str,
    generator: Obj,
    options: Obj,
    objects: list[Obj],
    use_examples: bool,
) -> None:
    unknown = set(generator) - GENERATOR_FIELDS
    if unknown:
        raise Unsupported(f"{directory}: generator fields {sorted(unknown)}")
    data: dict[str, str] = {}
    for entry in generator.get("envs", []):
        path = directory / entry
        if use_examples and not path.exists():
            path = path.with_name(path.name + ".example")
        data.update(parse_env_file(path))
    for entry in generator.get("files", []):
        key, _, rel = entry.rpartition("=")
        path = directory / rel
        data[key or path.name] = path.read_text(encoding="utf-8")
    for literal in generator.get("literals", []):
        key, sep, value = literal.partition("=")
        if not sep:
            raise Unsupported(f"{directory}: literal without '=': {literal!r}")
        data[key] = value
    own = generator.get("options", {})
    metadata: Obj = {"name": generator["name"]}
    for field in ("labels", "annotations"):
        merged = {**options.get(field, {}), **own.get(field, {})}
        if merged:
            metadata[field] = merged
    behavior = generator.get("behavior", "create")
    existing = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"] == metadata["name"]
    ]
    if behavior == "create":
        if existing:
            raise Unsupported(f"{directory}: {kind} {metadata['name']} generated twice")
        obj: Obj = {"apiVersion": "v1", "kind": kind, "metadata": metadata}
        objects.append(obj)
    elif behavior in ("merge", "replace"):
        if len(existing) != 1:
            raise Unsupported(f"{directory}: {behavior} of a missing {kind} {metadata['name']}")
        obj = existing[0]
        if behavior == "replace":
            obj.pop("data", None)
    else:
        raise Unsupported(f"{directory}: generator behavior {behavior!r}")
    if kind == "Secret":
        obj.setdefault("type", generator.get("type", "Opaque"))
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        obj["data"] = {**obj.get("data", {}), **encoded}
    else:
        obj["data"] = {**obj.get("data", {}), **data}


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as kustomize reads them: no quoting, `#` comments, blank lines skipped."""
    data: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise Unsupported(f"{path}:{number}: no '=' (kustomize would read the environment)")
        data[key] = value
    return data


def _patch(directory: Path, patch: Obj, objects: list[Obj]) -> None:
    if "path" in patch:
        text = (directory / patch["path"]).read_text(encoding="utf-8")
    else:
        text = patch["patch"]
    operations = yaml.safe_load(text)
    if isinstance(operations, dict) and operations.get("$patch") == "delete":
        _delete(directory, operations, patch.get("target", {}), objects)
        return
    if not isinstance(operations, list):
        raise Unsupported(
            f"{directory}: only JSON 6902 patches (a list of operations) and `$patch: delete`"
        )
    target = patch.get("target", {})
    matched = [o for o in objects if _matches(o, target)]
    if not matched:
        raise Unsupported(f"{directory}: a patch's target matches nothing: {target}")
    for obj in matched:
        for operation in operations:
            _apply_operation(obj, operation)


def _delete(directory: Path, document: Obj, target: Obj, objects: list[Obj]) -> None:
    """A strategic-merge patch that is only `$patch: delete`: remove the object it names."""
    if set(document) - {"apiVersion", "kind", "metadata", "$patch"} or set(
        document.get("metadata", {})
    ) - {"name", "namespace"}:
        raise Unsupported(f"{directory}: a `$patch: delete` that also changes fields")
    names = {"kind": document["kind"], **document["metadata"], **target}
    doomed = [o for o in objects if _matches(o, names)]
    if len(doomed) != 1:
        raise Unsupported(f"{directory}: `$patch: delete` matches {len(doomed)} objects: {names}")
    objects.remove(doomed[0])


def _matches(obj: Obj, target: Obj) -> bool:
    for field in target:
        if field not in ("kind", "name", "namespace"):
            raise Unsupported(f"patch target field {field!r}")
    metadata = obj.get("metadata", {})
    return bool(
        target.get("kind", obj["kind"]) == obj["kind"]
        and target.get("name", metadata.get("name")) == metadata.get("name")
        and target.get("namespace", metadata.get("namespace")) == metadata.get("namespace")
    )


def _apply_operation(obj: Obj, operation: Obj) -> None:
    op = operation["op"]
    parts = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
    parent: Any = obj
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    value = copy.deepcopy(operation.get("value"))
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if op == "add":
            parent.insert(index, value)
        elif op == "replace":
            parent[index] = value
        elif op == "remove":
            del parent[index]
        else:
            raise Unsupported(f"patch op {op!r}")
    elif op in ("add", "replace"):
        if op == "replace" and last not in parent:
            raise Unsupported(f"replace of a missing path {operation['path']}")
        parent[last] = value
    elif op == "remove":
        del parent[last]
    else:
        raise Unsupported(f"patch op {op!r}")


def _set_image(node: Any, image: Obj) -> None:
    if isinstance(node, dict):
        for field in ("containers", "initContainers"):
            containers = node.get(field)
            if isinstance(containers, list):
                for container in containers:
                    if _image_name(container.get("image", "")) == image["name"]:
                        container["image"] = _new_image(image)
        for value in node.values():
            _set_image(value, image)
    elif isinstance(node, list):
        for value in node:
            _set_image(value, image)


def _new_image(image: Obj) -> str:
    name = image.get("newName", image["name"])
    if "digest" in image:
        return f"{name}@{image['digest']}"
    if "newTag" in image:
        return f"{name}:{image['newTag']}"
    return str(name)


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > last_slash else name
