"""How a simulator is set up: its token, its numbers and their rates, where webhooks go."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simulator.latency import RoundTrip
from simulator.webhooks import DEFAULT_DISPLAY_NUMBER, DEFAULT_WABA_ID

DEV_ACCESS_TOKEN = "baton-dev-access-token"  # Baton's development default (BATON_ACCESS_TOKEN)
DEV_APP_SECRET = "baton-dev-app-secret"  # Baton's development default (BATON_APP_SECRET)
DEFAULT_VERSION = "v25.0"


class NumberConfig(BaseModel):
    """A business number as Meta knows it; `rate` overrides the default cap (msgs/s)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phone_number_id: str
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER
    waba_id: str = DEFAULT_WABA_ID
    coexistence: bool = False
    rate: int | None = Field(default=None, gt=0)
    token: str | None = None  # None → the simulator's token


class PairRate(BaseModel):
    """Meta's pair limit: one message per `seconds_per_message` to a user, bursts to `burst`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    burst: int = Field(default=45, gt=0)
    seconds_per_message: float = Field(default=6.0, gt=0)


class SimConfig(BaseModel):
    """Simulator settings; numbers not listed are created on first use unless `strict_numbers`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str = DEV_ACCESS_TOKEN
    version: str = DEFAULT_VERSION
    default_rate: int = Field(default=80, gt=0)
    coexistence_rate: int = Field(default=20, gt=0)
    pair_rate: PairRate | None = None
    strict_numbers: bool = False
    numbers: tuple[NumberConfig, ...] = ()
    webhook_url: str | None = None
    app_secret: str | None = None
    webhook_max_attempts: int = Field(default=5, ge=1)
    webhook_retry_seconds: float = Field(default=0.2, gt=0)  # doubles per attempt, like Meta
    # Seconds every Graph API answer waits after its request was counted: the round trip to
    # Meta (100-300 ms in production), which loopback otherwise hides.
    latency: float = Field(default=0.0, ge=0)
    # Random uplink and downlink per Graph API request, counted between the two (latency.py);
    # None: no delay before the count (the default, so rate tests stay exact).
    round_trip: RoundTrip | None = None

    @property
    def sends_webhooks(self) -> bool:
        return bool(self.webhook_url and self.app_secret)


class ConfigUpdate(BaseModel):
    """The runtime-changeable part of `SimConfig` (`PUT /_sim/config`); unset fields stay."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str | None = None
    pair_rate: PairRate | None = None
    pair_rate_enabled: bool | None = None
    strict_numbers: bool | None = None
    webhook_url: str | None = None
    app_secret: str | None = None
    latency: float | None = Field(default=None, ge=0)
    round_trip: RoundTrip | None = None
    round_trip_enabled: bool | None = None  # False: back to no random legs

    def apply(self, config: SimConfig) -> SimConfig:
        changes = self.model_dump(
            exclude_unset=True,
            exclude={"pair_rate_enabled", "pair_rate", "round_trip", "round_trip_enabled"},
        )
        if self.pair_rate is not None:
            changes["pair_rate"] = self.pair_rate
        if self.round_trip is not None:
            changes["round_trip"] = self.round_trip
        if self.round_trip_enabled is False:
            changes["round_trip"] = None
        if self.pair_rate_enabled is True and config.pair_rate is None and self.pair_rate is None:
            changes["pair_rate"] = PairRate()
        if self.pair_rate_enabled is False:
            changes["pair_rate"] = None
        return config.model_copy(update=changes)
