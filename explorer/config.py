"""Settings: one TOML file, every setting with a default, keys only from the environment.

A bad file gets one clear message naming the file, the key and the problem (ConfigError), never a
traceback. API keys are read from the environment into SecretStr and never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from cache.retention_policy import RetentionPolicy
from explorer.alert_config import AlertsConfig
from explorer.errors import ConfigError as ConfigError  # raised by the models and the loader
from explorer.setup import read_toml
from sources.akash_address import is_provider_address
from sources.models import is_device_id


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Section):
    """Settings every source has."""

    enabled: bool = True
    base_url: str | None = None
    """The API root; an explicit value always wins over any default or plan-derived root."""
    interval: float = Field(default=120.0, ge=1)
    """Seconds between polls."""
    timeout: float = Field(default=10.0, gt=0, le=300)
    """Overall deadline of one poll, in seconds."""


class CoinGeckoConfig(SourceConfig):
    """``[sources.coingecko]``: DePIN rankings from CoinGecko ``/coins/markets``."""

    category: str = Field(default="depin", min_length=1, max_length=100)
    max_coins: int = Field(default=250, ge=1, le=5000)


class SampleConfig(SourceConfig):
    """``[sources.sample]``: the bundled mid-2024 table, stored only while no rankings exist."""

    interval: float = Field(default=3600.0, ge=1)


class NetworkConfig(SourceConfig):
    """A public network's API: ``base_url`` is its API root; every endpoint hangs off it."""

    ca_file: Path | None = None
    """A CA bundle for a mirror with its own certificate authority."""
    insecure: bool = False
    """Skip TLS verification for this source only; shown as a red badge. Off by default."""


class IonetConfig(NetworkConfig):
    """``[sources.ionet]``: io.net explorer network figures and the cloud GPU catalogue."""

    base_url: str | None = "https://api.io.solutions"
    device_ids: list[str] = Field(default_factory=list, max_length=10_000)
    """io.net devices to follow besides fleet nodes labelled with a ``device_id``."""
    device_interval: float = Field(default=300.0, ge=60)
    """Seconds between device polls; raised to 3 s per device (io.net's 100 per 5 min)."""
    device_timeout: float = Field(default=60.0, gt=0, le=600)
    """Overall deadline of one device poll, in seconds."""

    @field_validator("device_ids")
    @classmethod
    def _uuids(cls, value: list[str]) -> list[str]:
        for device_id in value:
            if not is_device_id(device_id):
                raise ValueError(f"not an io.net device id (a UUID): {device_id[:40]!r}")
        return value


class AkashConfig(NetworkConfig):
    """``[sources.akash]``: Akash console API capacity, GPUs, prices, leases."""

    base_url: str | None = "https://console-api.akash.network"
    providers: list[str] = Field(default_factory=list, max_length=10_000)
    """Akash provider addresses to follow besides fleet nodes labelled with a ``provider``."""
    provider_interval: float = Field(default=300.0, ge=60)
    """Seconds between provider polls; raised to 3 s per provider."""
    provider_timeout: float = Field(default=60.0, gt=0, le=600)
    """Overall deadline of one provider poll, in seconds."""

    @field_validator("providers")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not is_provider_address(address):
                raise ValueError(f"not an Akash provider address (akash1…): {address[:50]!r}")
        return value


class FilecoinConfig(NetworkConfig):
    """``[sources.filecoin]``: Filfox overview (miners, power, price)."""

    base_url: str | None = "https://filfox.info/api/v1"
    interval: float = Field(default=900.0, ge=1)


class HeliumConfig(NetworkConfig):
    """``[sources.helium]``: Helium entity API hotspot counts (iot, mobile)."""

    base_url: str | None = "https://entities.nft.helium.io"
    interval: float = Field(default=1800.0, ge=1)


class SourcesConfig(_Section):
    """``[sources.NAME]`` tables."""

    coingecko: CoinGeckoConfig = CoinGeckoConfig()
    ionet: IonetConfig = IonetConfig()
    akash: AkashConfig = AkashConfig()
    filecoin: FilecoinConfig = FilecoinConfig()
    helium: HeliumConfig = HeliumConfig()
    sample: SampleConfig = SampleConfig()


class BasicAuth(_Section):
    """HTTP basic auth; the password comes from a named environment variable, never the file."""

    username: str = Field(min_length=1)
    password_env: str = Field(min_length=1)


class _Auth(_Section):
    basic_auth: BasicAuth | None = None
    bearer_token_env: str | None = None
    """Name of the environment variable holding a bearer token."""
    ca_file: Path | None = None
    insecure: bool = False


class TargetConfig(_Auth):
    """``[[fleet.targets]]``: one node's exporter(s)."""

    name: str = Field(min_length=1, max_length=200)
    url: str = Field(pattern=r"^https?://")
    """The exporter's /metrics (node_exporter, usually :9100)."""
    gpu_url: str | None = Field(default=None, pattern=r"^https?://")
    """A GPU exporter's /metrics (dcgm-exporter :9400 or nvidia_gpu_exporter :9835)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """``network`` (e.g. "io.net"), io.net ``device_id`` and any of your own."""


class FileSdConfig(_Auth):
    """``[[fleet.file_sd]]``: a Prometheus file_sd JSON or YAML file, re-read when it changes."""

    path: Path
    scheme: Literal["http", "https"] = "http"
    metrics_path: str = "/metrics"


class PrometheusConfig(_Auth):
    """``[[fleet.prometheus]]``: a Prometheus-compatible server (Thanos, VictoriaMetrics, Mimir)."""

    url: str = Field(pattern=r"^https?://")
    selector: str = ""
    """A label matcher such as ``{job="node"}``; empty means every instance."""
    max_body_mb: int = Field(default=192, ge=1, le=4096)
    """The largest answer read from this server, in MiB after decompression (enough for
    300,000 series with the labels a dcgm-exporter target carries)."""
    limit: int = Field(default=300_000, ge=0, le=100_000_000)
    """The most series read from any one query (0: all); the server is asked for no more."""


class LocalConfig(_Section):
    """``[fleet.local]``: this machine through psutil (and NVML when a driver is present)."""

    enabled: bool = True


class Threshold(_Section):
    """Warn and critical levels of one figure on the Fleet screen."""

    warn: float
    critical: float

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.warn > self.critical:
            raise ValueError("warn must not be above critical")
        return self


FleetFigure = Literal["cpu_pct", "mem_pct", "disk_pct", "gpu_util_pct", "gpu_temp_c", "gpu_power_w"]
"""The figures of the fleet screen that ``[fleet.thresholds]`` may colour."""


def _default_thresholds() -> dict[FleetFigure, Threshold]:
    return {
        "cpu_pct": Threshold(warn=85, critical=95),
        "mem_pct": Threshold(warn=85, critical=95),
        "disk_pct": Threshold(warn=80, critical=90),
        "gpu_temp_c": Threshold(warn=80, critical=90),
    }


class FleetConfig(_Section):
    """``[fleet]``: the operator's own nodes."""

    thresholds: dict[FleetFigure, Threshold] = Field(default_factory=_default_thresholds)
    """Fleet screen colours per figure, e.g. ``gpu_temp_c = { warn = 75, critical = 85 }``."""

    @field_validator("thresholds", mode="after")
    @classmethod
    def _keep_defaults(cls, value: dict[FleetFigure, Threshold]) -> dict[FleetFigure, Threshold]:
        return {**_default_thresholds(), **value}  # a table sets some figures, not all

    interval: float = Field(default=15.0, ge=1)
    timeout: float = Field(default=10.0, gt=0, le=60)
    """Deadline of one scrape; capped at half the interval, as Prometheus does."""
    concurrency: int = Field(default=64, ge=1, le=1024)
    max_samples: int = Field(default=20_000, ge=100, le=1_000_000)
    targets: list[TargetConfig] = Field(default_factory=list)
    file_sd: list[FileSdConfig] = Field(default_factory=list)
    prometheus: list[PrometheusConfig] = Field(default_factory=list)
    local: LocalConfig = LocalConfig()


class CacheConfig(_Section):
    """``[cache]``: where the SQLite history lives."""

    path: Path | None = None


class RetentionConfig(_Section):
    """``[retention]``: how long each resolution of the history is kept (docs/retention.md)."""

    enabled: bool = True
    """Let the writer (the poller of a TUI, or a collector) apply it on its own."""
    interval: float = Field(default=3600.0, ge=60)
    """Seconds between automatic runs."""
    raw_days: float = Field(default=7.0, ge=1)
    minute_days: float = Field(default=30.0, ge=1)
    hour_days: float = Field(default=400.0, ge=1)
    day_days: float | Literal["forever"] = "forever"
    snapshot_full_days: float = Field(default=1.0, gt=0)
    snapshot_hourly_days: float = Field(default=90.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> RetentionConfig:
        self.policy()  # ValueError names the key that is out of order
        return self

    def policy(self) -> RetentionPolicy:
        """The cache's retention policy for these settings."""
        return RetentionPolicy(
            raw_days=self.raw_days,
            minute_days=self.minute_days,
            hour_days=self.hour_days,
            day_days=None if self.day_days == "forever" else self.day_days,
            snapshot_full_days=self.snapshot_full_days,
            snapshot_hourly_days=self.snapshot_hourly_days,
        )


class UiConfig(_Section):
    """``[ui]``: look and feel."""

    start_screen: Literal["overview", "rankings"] = "overview"
    animations: Literal["none", "basic", "full"] = "none"


class EconomicsConfig(_Section):
    """``[economics]``: what the Rewards screen counts as cost (docs/config.md)."""

    currency: Literal["USD"] = "USD"
    """Of the two figures below; rewards are valued at cached USD prices, so USD only."""
    power_price_per_kwh: float | None = Field(default=None, ge=0)
    """Price of a kWh of the GPUs' power; unset: power is not counted."""
    hardware_cost: dict[str, float] = Field(default_factory=dict)
    """Per node name, network name or ``default`` (looked up in that order), for payback."""

    @field_validator("hardware_cost")
    @classmethod
    def _not_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for key, cost in value.items():
            if cost < 0:
                raise ValueError(f"{key}: a hardware cost cannot be negative")
        return value


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) as (host, port); a bare port is on 127.0.0.1.

    Raises:
        ValueError: saying what is wrong.
    """
    if text.strip().isdigit():
        text = f"127.0.0.1:{text.strip()}"  # loopback unless another address is named
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9464)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:9464")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)


class CollectorConfig(_Section):
    """``[collector]``: what a ``depin-explorer poll`` collector serves besides polling."""

    metrics_listen: str | None = None
    """``HOST:PORT`` of the Prometheus ``/metrics`` endpoint (docs/prometheus.md); unset: off."""
    metrics_top_coins: int = Field(default=20, ge=1, le=5000)
    """Coins exported without a watchlist: the largest this many by market cap."""

    @field_validator("metrics_listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)  # ValueError says what is wrong
        return value


class Config(_Section):
    """The whole configuration file."""

    sources: SourcesConfig = SourcesConfig()
    fleet: FleetConfig = FleetConfig()
    cache: CacheConfig = CacheConfig()
    retention: RetentionConfig = RetentionConfig()
    ui: UiConfig = UiConfig()
    alerts: AlertsConfig = AlertsConfig()
    economics: EconomicsConfig = EconomicsConfig()
    collector: CollectorConfig = CollectorConfig()
    keys: dict[str, str] = Field(default_factory=dict)
    """Binding id -> keys, e.g. ``"rankings.filter" = "slash,ctrl+f"``."""


class Secrets(BaseModel):
    """Keys read from the environment; never written anywhere."""

    coingecko_api_key: SecretStr | None = None
    coingecko_plan: Literal["demo", "pro"] | None = None
    ionet_token: SecretStr | None = None


def load_secrets(
    environ: dict[str, str] | None = None, secrets_file: Path | None = None
) -> Secrets:
    """``COINGECKO_API_KEY``, ``COINGECKO_API_PLAN`` (demo|pro) and ``IONET_TOKEN``.

    From the environment, else from ``secrets_file`` (refused unless private: explorer/secretsfile).
    """
    env = dict(os.environ if environ is None else environ)
    if secrets_file is not None:
        from explorer.secretsfile import read_secrets_file

        for name, value in read_secrets_file(secrets_file).items():
            if not env.get(name, "").strip():  # the environment wins
                env[name] = value
    key = env.get("COINGECKO_API_KEY", "").strip()
    plan = env.get("COINGECKO_API_PLAN", "").strip().lower() or None
    if plan not in (None, "demo", "pro"):
        raise ConfigError("COINGECKO_API_PLAN: must be 'demo' or 'pro'")
    if key and plan is None:
        plan = "demo"
    token = env.get("IONET_TOKEN", "").strip()
    return Secrets(
        coingecko_api_key=SecretStr(key) if key else None,
        coingecko_plan=plan,
        ionet_token=SecretStr(token) if token else None,
    )


def coingecko_root(config: Config, secrets: Secrets) -> str:
    """The effective CoinGecko root: the configured ``base_url``, else the plan's root."""
    from sources.coingecko import root_for_plan  # httpx and friends: only when needed

    return config.sources.coingecko.base_url or root_for_plan(secrets.coingecko_plan)


def _describe(path: Path, error: ValidationError) -> str:
    first = error.errors(include_input=False, include_url=False)[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    problem = first["msg"]
    more = len(error.errors()) - 1
    extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{path}: {key}: {problem}{extra}"


def load_config(
    path: Path, *, required: bool = False, data: dict[str, Any] | None = None
) -> Config:
    """Read and validate the file; a missing file means all defaults unless ``required``.

    ``data``: the file's TOML when the caller has read it already (the TUI, before it starts).
    """
    if data is None:
        data = read_toml(path, required=required)
    if data is None:
        return Config()
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from exc


def mask(secret: SecretStr | None) -> str:
    """Show that a key is set without showing it: only the last 4 characters."""
    if secret is None:
        return "(not set)"
    value = secret.get_secret_value()
    return f"…{value[-4:]}" if len(value) >= 12 else "****"


EXAMPLE = """\
# depin-explorer configuration. Every setting has a default; delete what you do not change.
# API keys never go here: set COINGECKO_API_KEY (and COINGECKO_API_PLAN = demo | pro) and
# IONET_TOKEN in the environment instead.

[sources.coingecko]
enabled = true
# base_url = "https://api.coingecko.com/api/v3"   # the plan's root unless set; set it for a mirror
interval = 120        # seconds between polls (keyless: keep it at 60 or more)
timeout = 10          # overall deadline of one poll, seconds
category = "depin"    # a category id from CoinGecko /coins/categories/list
max_coins = 250

[sources.ionet]        # io.net explorer: devices, GPUs, clusters, blocks; cloud GPU catalogue
enabled = true
# base_url = "https://api.io.solutions"
interval = 120
# Per-device status and rewards for fleet nodes labelled device_id = "…" (and device_ids here)
# need the explorer token in IONET_TOKEN (never in this file).
# device_ids = ["599ef4af-7fe6-44b5-aba3-25899bde2ab6"]
device_interval = 300  # raised to 3 s per device: io.net allows 100 per 5 min per endpoint

[sources.akash]        # Akash console API: capacity, GPUs and prices, leases, spend
enabled = true
# base_url = "https://console-api.akash.network"
interval = 120
# The console's online state of providers named by fleet labels provider = "akash1…" (and here)
# providers = ["akash1hcu596l97rqkcllcwundclhgkvurld6grecjgy"]
provider_interval = 300  # raised to 3 s per provider

[sources.filecoin]     # Filfox overview: active miners, network power, price
enabled = true
# base_url = "https://filfox.info/api/v1"
interval = 900

[sources.helium]       # Helium entity API: registered iot and mobile hotspots
enabled = true
# base_url = "https://entities.nft.helium.io"
interval = 1800

[sources.sample]
enabled = true        # the bundled mid-2024 table, shown only while nothing else is cached

[fleet]               # your own nodes: exporters, file_sd lists, a Prometheus server, this machine
interval = 15
timeout = 10          # per scrape; never more than half the interval

# [[fleet.targets]]
# name = "gpu-01"
# url = "http://10.0.0.5:9100/metrics"        # node_exporter
# gpu_url = "http://10.0.0.5:9400/metrics"    # dcgm-exporter or nvidia_gpu_exporter
# labels = { network = "io.net", device_id = "…" }
# basic_auth = { username = "ops", password_env = "FLEET_PASSWORD" }
# ca_file = "/etc/ssl/fleet-ca.pem"

# [[fleet.file_sd]]
# path = "/etc/prometheus/targets/nodes.json"  # Prometheus file_sd (JSON or YAML)

# [[fleet.prometheus]]
# url = "http://127.0.0.1:9090"
# selector = '{job="node"}'
# bearer_token_env = "PROM_TOKEN"
# max_body_mb = 192     # largest answer read, MiB decompressed (300,000 nodes fit)
# limit = 300000        # most series per query (0 = all)

[fleet.local]
enabled = true        # this machine, with zero config

[cache]
# path = "/var/lib/depin-explorer/depin-explorer.db"

[retention]           # applied by the writer only (docs/retention.md)
raw_days = 7          # fleet samples as polled; then rolled up:
minute_days = 30      # 1-minute means
hour_days = 400       # 1-hour means
day_days = "forever"  # 1-day means ("forever" or a number of days)
snapshot_full_days = 1      # rankings and network polls: every poll, then one an hour
snapshot_hourly_days = 90   # then one a day (for day_days)

[ui]
start_screen = "overview"   # or "rankings"
animations = "none"         # none | basic | full

[collector]          # a `depin-explorer poll` collector (docs/prometheus.md)
# metrics_listen = "127.0.0.1:9464"   # serve /metrics for Prometheus; unset: off
# metrics_top_coins = 20              # coins exported when the watchlist is empty

[economics]          # the Rewards screen (5): power cost, net, payback
# power_price_per_kwh = 0.25   # USD per kWh of the GPUs' power; unset: not counted
# hardware_cost = { default = 12000, "gpu-01" = 18000 }   # by node, network, else default

# [alerts]            # alerts (8): docs/alerts.md; evaluated by whoever polls
# command = ["/usr/local/bin/page-me"]         # the alert as JSON on stdin, never a shell
# webhook = { url = "https://hooks.example/depin", timeout = 10, retries = 3 }
# bell = true
#
# [[alerts.rules]]
# name = "node down"
# kind = "node_down"   # node_down | gpu_temp_above | utilization_below | price_change |
#                      # devices_drop | source_failing
# for = 1              # minutes (or "30s", "5m", "2h") before it fires
# severity = "critical"

[keys]
# Remap any binding by its id (see `?` in the app), e.g.:
# "rankings.filter" = "slash,ctrl+f"
# "screen.rankings" = "2,f2"
"""
