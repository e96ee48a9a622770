"""Configuration from `BATON_*` environment variables, plus per-number settings from a file."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from baton.knowledge import Knowledge
from baton.types import PhoneNumberId

META_GRAPH_API_URL = "https://graph.facebook.com/v25.0"
_DEV_APP_SECRET = "baton-dev-app-secret"
_DEV_VERIFY_TOKEN = "baton-dev-verify-token"
_DEV_ACCESS_TOKEN = "baton-dev-access-token"
_PLACEHOLDER = "REPLACE_ME"

# Defaults stay strictly under Meta's caps (20 mps Coexistence, 80 mps default): the cap counts
# inbound traffic too, so we leave headroom.
COEXISTENCE_RATE_PER_SECOND = 18.0
DEFAULT_RATE_PER_SECOND = 72.0


class ChatwootInbox(BaseModel):
    """Where one business number is mirrored in Chatwoot (an API-channel inbox); see the README."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str  # Chatwoot's base URL, e.g. https://chatwoot.example.com
    account_id: int = Field(gt=0)
    inbox_id: int = Field(gt=0)
    access_token: SecretStr  # an agent's or agent bot's `api_access_token`
    webhook_secret: SecretStr  # the inbox's HMAC secret, also the callback URL's token
    import_history: bool = False  # post the imported backlog, as private notes, once


class NumberSettings(BaseModel):
    """Settings of one business number (phone_number_id); every field has a sensible default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phone_number_id: PhoneNumberId
    coexistence: bool = False
    rate_per_second: float | None = Field(default=None, gt=0)
    language: Literal["pt-BR", "en", "es"] = "pt-BR"
    access_token: SecretStr | None = None  # overrides BATON_ACCESS_TOKEN for this number
    bot_prefix: str = ""
    notices_enabled: bool = True
    notice_takeover: str | None = None  # None → the default text of `language`
    notice_back_to_bot: str | None = None
    notice_busy: str | None = None
    debounce_quiet_seconds: float = Field(default=1.0, gt=0)
    debounce_cap_seconds: float = Field(default=5.0, gt=0)
    pause_seconds: float = Field(default=2 * 3600, gt=0)
    human_inactivity_seconds: float = Field(default=30 * 60, gt=0)
    ghost_fallback_seconds: float = Field(default=15 * 60, gt=0)
    resume_commands: tuple[str, ...] = ("#bot", "#resume")
    pause_command: str = "#pause"
    handoff_keywords: tuple[str, ...] | None = None  # None → the built-in pt/es/en lists
    # A file the bot cannot open (no transcription or vision configured, or the download
    # failed): "offer" says so and offers a person, "handoff" hands off, "ignore" lets the bot
    # answer the file's placeholder like any text. Never silence.
    media_policy: Literal["offer", "handoff", "ignore"] = "offer"
    # Agent workflow (issue 12).
    assignment: Literal["manual", "auto"] = "manual"  # auto: queued conversations are assigned
    templates: tuple[str, ...] = ()  # approved template names agents may send
    busy_template: str | None = None  # ghost fallback outside the 24 h window
    busy_template_language: str = "pt_BR"
    quick_replies: dict[str, str] = Field(default_factory=dict)  # "/shortcut" → text
    notes_in_bot_context: bool = False  # agents' private notes reach the bot's prompt
    chatwoot: ChatwootInbox | None = None  # the Chatwoot bridge (services/chatwoot); None → off
    # Persona, opening hours, FAQ, links, retrieval ([numbers."<id>".knowledge]); the console's
    # knowledge API may override it in the store.
    knowledge: Knowledge = Field(default_factory=Knowledge)

    @property
    def send_rate(self) -> float:
        if self.rate_per_second is not None:
            return self.rate_per_second
        return COEXISTENCE_RATE_PER_SECOND if self.coexistence else DEFAULT_RATE_PER_SECOND


class NumbersConfig(BaseModel):
    """All configured numbers; a number missing from the file gets the defaults."""

    model_config = ConfigDict(frozen=True)

    numbers: dict[PhoneNumberId, NumberSettings] = Field(default_factory=dict)

    def get(self, phone_number_id: PhoneNumberId) -> NumberSettings:
        found = self.numbers.get(phone_number_id)
        return found if found is not None else NumberSettings(phone_number_id=phone_number_id)

    @classmethod
    def load(cls, path: Path | None) -> Self:
        """Read a TOML file of `[numbers."<phone_number_id>"]` tables."""
        if path is None:
            return cls()
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
        tables = raw.get("numbers", {})
        return cls(
            numbers={
                str(pnid): NumberSettings(phone_number_id=str(pnid), **table)
                for pnid, table in tables.items()
            }
        )


class Settings(BaseSettings):
    """Process settings; every service reads the same ones and uses what it needs."""

    model_config = SettingsConfigDict(env_prefix="BATON_", extra="ignore", frozen=True)

    environment: Literal["local", "production"] = "local"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    store_url: str = "postgresql://postgres@127.0.0.1:5432/baton"
    app_secret: SecretStr = SecretStr(_DEV_APP_SECRET)
    verify_token: SecretStr = SecretStr(_DEV_VERIFY_TOKEN)
    graph_api_url: str = META_GRAPH_API_URL
    access_token: SecretStr = SecretStr(_DEV_ACCESS_TOKEN)
    graph_timeout_seconds: float = 10.0
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = 30.0
    llm_max_attempts: int = Field(default=3, ge=1)
    numbers_file: Path | None = None

    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8080
    ingest_max_body_bytes: int = 3 * 1024 * 1024 + 64 * 1024  # Meta: payloads up to 3 MB
    publish_timeout_seconds: float = 5.0
    ops_host: str = "127.0.0.1"  # consumers serve /metrics, /healthz, /readyz here
    metrics_port: int = 9100
    log_level: str = "INFO"
    log_json: bool | None = None  # None → JSON unless stderr is a terminal

    consumer_prefetch: int = Field(default=32, ge=1)
    max_delivery_attempts: int = Field(default=5, ge=1)
    # Not ready (not consuming, store or broker unreachable) for longer than this → /healthz
    # fails too, so the orchestrator restarts the process.
    liveness_grace_seconds: float = Field(default=60.0, gt=0)

    # outbox (per-number pacing, retries, spreading numbers over replicas; see the README)
    outbox_replica_id: str | None = None  # None → host name, process id and a random suffix
    outbox_number_prefetch: int = Field(default=200, ge=1)  # sends held per number per replica
    # Graph API calls per send before it is dead-lettered (throughput errors are not counted:
    # they pause the number instead), and the time after which even those give up.
    outbox_max_attempts: int = Field(default=8, ge=1)
    outbox_give_up_after_seconds: float = Field(default=900.0, gt=0)
    # Pair limit pacing per customer (Meta: 1 per 6 s sustained, bursts borrow future quota).
    outbox_pair_burst: int = Field(default=30, ge=1)
    outbox_pair_seconds_per_message: float = Field(default=6.0, gt=0)
    outbox_standby_delay_seconds: float = Field(default=3.0, ge=0)
    outbox_heartbeat_seconds: float = Field(default=1.0, gt=0)
    # A send slot is reused 1 s after its call's start + this margin, or after Meta's answer if
    # that came first: exact while the uplink jitter stays within it; inf = always the answer.
    outbox_window_margin_seconds: float = Field(default=0.03, ge=0)

    # history (Coexistence onboarding and backlog import)
    history_sync_window_seconds: float = Field(default=24 * 3600, gt=0)  # Meta's 24 hours
    history_sync_at_risk_seconds: float = Field(default=6 * 3600, ge=0)
    history_sync_poll_seconds: float = Field(default=1.0, gt=0)
    history_sync_retry_base_seconds: float = Field(default=2.0, gt=0)
    history_sync_retry_cap_seconds: float = Field(default=300.0, gt=0)
    # A claimed request with no recorded outcome after this long is `unclear` (a crash mid-call).
    history_sync_lease_seconds: float = Field(default=120.0, gt=0)
    history_prefetch: int = Field(default=4, ge=1)  # chunks in flight: bounds memory (≤3 MB each)
    history_batch_size: int = Field(default=1000, ge=1)  # rows per insert statement

    # console (the agent API)
    console_host: str = "127.0.0.1"
    console_port: int = 8081
    # chatwoot (the optional bridge; its inboxes are BATON_CHATWOOT_* in services/chatwoot)
    chatwoot_host: str = "127.0.0.1"
    chatwoot_port: int = 8082  # Chatwoot's callbacks, and the bridge's /healthz, /readyz, /metrics
    # Who may call it: "alice:token,bob:token" (the id is what `assignee` shows), external bots
    # in the same form, and/or a TOML file of principals (services/console/agents.py).
    agent_tokens: SecretStr | None = None
    bot_tokens: SecretStr | None = None
    agents_file: Path | None = None
    console_page_limit: int = Field(default=50, ge=1, le=200)  # when a request names none
    console_heartbeat_seconds: float = Field(default=15.0, gt=0)  # SSE keep-alive comments
    console_replay_events: int = Field(default=1000, ge=0)  # most replayed per reconnect
    console_client_buffer: int = Field(default=1000, ge=1)  # events queued per SSE client
    # The event log all console replicas share (issue 10): `Last-Event-ID` resumes on any
    # replica while the log holds the event. Read every poll (at once when this replica's
    # feed saw an event go by); pruned past the retention's age or count.
    console_event_poll_seconds: float = Field(default=0.25, gt=0)
    console_event_retention_seconds: float = Field(default=3600.0, gt=0)
    console_event_retention_events: int = Field(default=100_000, ge=1)
    # agent workflow (issue 12): presence heartbeats, the auto-assignment sweep
    console_presence_timeout_seconds: float = Field(default=90.0, gt=0)  # then offline
    console_assign_seconds: float = Field(default=1.0, gt=0)  # auto-assign / presence sweep
    # the desk (issue 11): browser sessions and failed sign-ins
    desk_session_idle_seconds: float = Field(default=2 * 3600, gt=0)  # unused this long → ends
    desk_session_max_seconds: float = Field(default=12 * 3600, gt=0)  # ends anyway after this
    desk_secure_cookies: bool | None = None  # None → Secure unless environment is local
    desk_failures_per_agent: int = Field(default=5, ge=1)  # per window, then 429
    desk_failures_per_address: int = Field(default=20, ge=1)
    desk_failure_window_seconds: float = Field(default=900, gt=0)
    desk_trust_forwarded_for: bool = False  # behind a proxy: the client is X-Forwarded-For's last

    # media (issue 18): where files are kept, and how the bot understands them
    blob_store: Literal["postgres", "s3"] = "postgres"  # postgres: the store's own database
    s3_endpoint_url: str | None = None  # e.g. https://s3.eu-west-1.amazonaws.com, http://minio:9000
    s3_bucket: str = "baton-media"
    s3_region: str = "us-east-1"
    s3_prefix: str = ""  # prepended to every object key
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    stt_base_url: str | None = None  # OpenAI-compatible /audio/transcriptions; unset → none
    stt_api_key: SecretStr | None = None  # unset → BATON_LLM_API_KEY
    stt_model: str = "whisper-1"
    stt_timeout_seconds: float = Field(default=60.0, gt=0)
    vision_model: str | None = None  # a vision-capable model at BATON_LLM_BASE_URL; unset → none
    media_wait_seconds: float = Field(default=20.0, ge=0)  # bot waits this long for a download

    # router (handoff timers and the transactional outbox's relay)
    router_sweep_seconds: float = Field(default=0.5, gt=0)  # poll for due timers / stuck effects
    router_timer_lease_seconds: float = Field(default=10.0, gt=0)  # a crashed firer's timer refires
    router_relay_lease_seconds: float = Field(default=15.0, gt=0)  # then a sweep republishes
    router_stats_seconds: float = Field(default=15.0, gt=0)  # recount baton_conversations{mode}

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Self:
        if self.environment != "production":
            return self
        dev_values = {
            "BATON_APP_SECRET": (self.app_secret, _DEV_APP_SECRET),
            "BATON_VERIFY_TOKEN": (self.verify_token, _DEV_VERIFY_TOKEN),
            "BATON_ACCESS_TOKEN": (self.access_token, _DEV_ACCESS_TOKEN),
        }
        unset = [
            name for name, (value, dev) in dev_values.items() if value.get_secret_value() == dev
        ]
        if unset:
            raise ValueError(f"production refuses development secrets: set {', '.join(unset)}")
        # The deployment templates ship REPLACE_ME placeholders; one left in place would
        # silently become a working secret.
        placeholders = [
            f"BATON_{name.upper()}"
            for name, value in self
            if isinstance(value, SecretStr) and _PLACEHOLDER in value.get_secret_value()
        ]
        if placeholders:
            raise ValueError(
                f"production refuses placeholder secrets: set {', '.join(placeholders)}"
            )
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Settings from an explicit environment mapping instead of this process's own.

        Parsed by pydantic-settings exactly as the services parse theirs (JSON lists included),
        by swapping `os.environ` for the call: only for single-threaded launchers and tests.
        """
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(env)
            return cls()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def numbers(self) -> NumbersConfig:
        return NumbersConfig.load(self.numbers_file)
