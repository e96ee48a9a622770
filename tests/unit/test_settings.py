"""Settings: environment parsing, per-number defaults, and production's refusal of dev secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from baton.settings import (
    COEXISTENCE_RATE_PER_SECOND,
    DEFAULT_RATE_PER_SECOND,
    NumbersConfig,
    Settings,
)

REAL = {"app_secret": "s1", "verify_token": "s2", "access_token": "s3"}


def _production(**secrets: str) -> Settings:
    values = {k: SecretStr(v) for k, v in {**REAL, **secrets}.items()}
    return Settings(environment="production", **values)  # type: ignore[arg-type]


def test_production_refuses_development_secrets() -> None:
    with pytest.raises(ValidationError, match="BATON_APP_SECRET"):
        Settings(environment="production")


def test_production_refuses_placeholders_left_from_templates() -> None:
    with pytest.raises(ValidationError, match="BATON_ACCESS_TOKEN"):
        _production(access_token="REPLACE_ME")


def test_production_accepts_real_secrets() -> None:
    assert _production().environment == "production"


def test_from_env_parses_like_the_services_do() -> None:
    settings = Settings.from_env({"BATON_INGEST_PORT": "9999", "BATON_LLM_BASE_URL": "http://llm"})
    assert settings.ingest_port == 9999
    assert settings.llm_configured


def test_numbers_file_overrides_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "numbers.toml"
    path.write_text('[numbers."111"]\ncoexistence = true\n[numbers."222"]\nrate_per_second = 10\n')
    numbers = NumbersConfig.load(path)
    assert numbers.get("111").send_rate == COEXISTENCE_RATE_PER_SECOND
    assert numbers.get("222").send_rate == 10
    assert numbers.get("333").send_rate == DEFAULT_RATE_PER_SECOND  # unlisted → defaults


def test_unknown_number_setting_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "numbers.toml"
    path.write_text('[numbers."111"]\nrate_per_secnd = 10\n')
    with pytest.raises(ValidationError):
        NumbersConfig.load(path)
