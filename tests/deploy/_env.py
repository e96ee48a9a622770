"""What the code reads from the environment (from `baton.settings.Settings` itself), and helpers
to turn deployment files into the environment a container would get."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from baton.settings import Settings

PREFIX = "BATON_"
# URLs that embed a password: secrets although typed `str`.
CREDENTIAL_URLS = frozenset({"BATON_AMQP_URL", "BATON_STORE_URL"})


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def setting_names() -> frozenset[str]:
    """Every BATON_* variable the code reads."""
    return frozenset(env_name(field) for field in Settings.model_fields)


def secret_names() -> frozenset[str]:
    """Variables that hold secrets: every `SecretStr` setting and the credential-bearing URLs."""
    secret_typed = {
        env_name(field)
        for field, info in Settings.model_fields.items()
        if SecretStr in _types_of(info.annotation)
    }
    return frozenset(secret_typed | CREDENTIAL_URLS)


def optional_names() -> frozenset[str]:
    """Variables unset by default (None, or an empty collection): set to "" they would not mean
    unset (an empty string is no JSON list), so they are left out instead."""
    return frozenset(
        env_name(field)
        for field, info in Settings.model_fields.items()
        if info.default is None
        or (isinstance(info.default, tuple | list | dict) and not info.default)
    )


def host_names() -> frozenset[str]:
    """Variables naming an address to listen on (must be 0.0.0.0 in a container)."""
    return frozenset(name for name in setting_names() if name.endswith("_HOST"))


def fixed_names() -> frozenset[str]:
    """Addresses and ports: containers' probes, ports and scrape targets rely on them."""
    return frozenset(name for name in setting_names() if name.endswith(("_HOST", "_PORT")))


def _types_of(annotation: object) -> set[object]:
    args = getattr(annotation, "__args__", None)
    return {annotation} | ({a for arg in args for a in _types_of(arg)} if args else set())


def validate(env: Mapping[str, str]) -> Settings:
    """The settings a service builds when its environment is exactly `env` (raises if invalid).

    `Settings()` itself reads the environment, as `baton.runtime.run` does, so complex values
    (JSON lists) are decoded the way a container's would be.
    """
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `$$`."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        current = env.get(name)
        op, arg = match["op"], match["arg"] or ""
        if (op in (":-", ":?") and not current) or (op in ("-", "?") and current is None):
            if op.endswith("?"):
                raise ValueError(f"${{{name}}} is required: {arg}")
            return arg
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def read_env_example(path: Path) -> tuple[dict[str, str], set[str]]:
    """An .env file's active `KEY=value` lines, and the keys that appear only commented out."""
    active: dict[str, str] = {}
    commented: set[str] = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if match := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line):
            commented.add(match[1])
        elif line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=value: {raw!r}"
            active[key] = value
    return active, commented - set(active)
