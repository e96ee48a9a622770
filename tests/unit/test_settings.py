"""Settings: environment parsing, per-number defaults, and production's refusal of dev secrets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from baton.conversations import policy_for
from baton.handoff.policy import Policy
from baton.settings import (
    COEXISTENCE_RATE_PER_SECOND,
    DEFAULT_RATE_PER_SECOND,
    NumbersConfig,
    NumberSettings,
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
    assert settings.llm_base_url == "http://llm"


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


def test_the_issue_s_defaults_hold_literally() -> None:
    settings = Settings.from_env({})  # the code's defaults, whatever this process's environment
    assert settings.history_sync_window_seconds == 86400
    assert COEXISTENCE_RATE_PER_SECOND == 18
    assert DEFAULT_RATE_PER_SECOND == 72
    unlisted = NumbersConfig().get("111")  # a number missing from the numbers file
    assert NumberSettings(phone_number_id="222", coexistence=True).send_rate == 18
    assert unlisted.send_rate == 72
    assert unlisted.debounce_quiet_seconds == 1
    assert unlisted.debounce_cap_seconds == 5
    assert unlisted.pause_seconds == 7200
    assert unlisted.human_inactivity_seconds == 1800
    assert unlisted.ghost_fallback_seconds == 900
    # The handoff core's own defaults (a Policy built without a numbers file) agree, and so
    # does the policy the router derives for an unlisted number.
    for policy in (Policy(), policy_for(unlisted)):
        assert policy.debounce_quiet == timedelta(seconds=1)
        assert policy.debounce_cap == timedelta(seconds=5)
        assert policy.pause_window == timedelta(seconds=7200)
        assert policy.human_inactivity_timeout == timedelta(seconds=1800)
        assert policy.ghost_fallback_delay == timedelta(seconds=900)


def test_router_stats_interval_defaults_to_15_seconds() -> None:
    assert Settings.from_env({}).router_stats_seconds == 15
    assert Settings.from_env({"BATON_ROUTER_STATS_SECONDS": "60"}).router_stats_seconds == 60
