"""Which sources run, built from the config: their objects and their scheduling settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from explorer.config import Config, ConfigError, Secrets, _Auth, coingecko_root
from sources.akash import AkashSource
from sources.akash_providers import AkashProviderSource, ProviderMap
from sources.base import Source
from sources.coingecko import CoinGeckoSource
from sources.exporter import Credentials, ExporterFleetSource, Target, credentials_from_env
from sources.file_sd import FileSdWatcher
from sources.filecoin import FilecoinSource
from sources.helium import HeliumSource
from sources.ionet import IonetSource
from sources.ionet_devices import DeviceMap, IonetDeviceSource
from sources.local import LocalSource
from sources.promql import PromqlSource
from sources.sample import SampleSource

NETWORK_SOURCES: dict[str, type] = {
    "ionet": IonetSource,
    "akash": AkashSource,
    "filecoin": FilecoinSource,
    "helium": HeliumSource,
}
FLEET_GROUP = "fleet"
IONET_DEVICES = "ionet-devices"
AKASH_PROVIDERS = "akash-providers"
"""``--only fleet`` means every fleet source: exporters, Prometheus servers and this machine."""


@dataclass(frozen=True)
class SourceSettings:
    """How often and how long a source runs, and how its TLS is checked."""

    interval: float
    timeout: float
    ca_file: Path | None = None
    insecure: bool = False
    fleet: bool = False


def _credentials(auth: _Auth, where: str) -> Credentials:
    basic = auth.basic_auth
    try:
        return credentials_from_env(
            basic.username if basic else None,
            basic.password_env if basic else None,
            auth.bearer_token_env,
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _fleet_targets(config: Config) -> tuple[list[Target], list[FileSdWatcher]]:
    targets = [
        Target(
            name=t.name,
            url=t.url,
            gpu_url=t.gpu_url,
            labels=t.labels,
            credentials=_credentials(t, f"fleet.targets.{i}"),
            ca_file=str(t.ca_file.expanduser()) if t.ca_file else None,
            insecure=t.insecure,
        )
        for i, t in enumerate(config.fleet.targets)
    ]
    watchers = [
        FileSdWatcher(
            path=f.path.expanduser(),
            scheme=f.scheme,
            metrics_path=f.metrics_path,
            credentials=_credentials(f, f"fleet.file_sd.{i}"),
            ca_file=str(f.ca_file.expanduser()) if f.ca_file else None,
            insecure=f.insecure,
        )
        for i, f in enumerate(config.fleet.file_sd)
    ]
    return targets, watchers


def _ionet_devices(
    config: Config, secrets: Secrets, network: tuple[Source, SourceSettings] | None
) -> tuple[Source, SourceSettings] | None:
    """The io.net device source, when there is a token or any device to follow."""
    section = config.sources.ionet
    configured: DeviceMap = {d: None for d in section.device_ids}
    for target in config.fleet.targets:
        device_id = target.labels.get("device_id", "").strip()
        if device_id:
            configured[device_id] = target.name
    token = secrets.ionet_token.get_secret_value() if secrets.ionet_token else None
    if not section.enabled or not (token or configured):
        return None
    source = IonetDeviceSource(
        base_url=section.base_url or IonetSource().base_url,
        token=token,
        devices=lambda: dict(configured),
        timeout=section.device_timeout,
    )
    if network is not None and isinstance(network[0], IonetSource) and network[0].budget:
        source.api_budget = network[0].budget  # one limit for the whole explorer API
    interval = max(section.device_interval, source.min_interval())
    settings = SourceSettings(interval, section.device_timeout, section.ca_file, section.insecure)
    return source, settings


def _akash_providers(config: Config) -> tuple[Source, SourceSettings] | None:
    """The Akash provider source, when any provider may be named.

    By the config (a list or a target's label), or by the labels of nodes a file_sd list or a
    Prometheus server brings (the poller reads those from the cache before each run).
    """
    section = config.sources.akash
    configured: ProviderMap = {a: None for a in section.providers}
    for target in config.fleet.targets:
        address = target.labels.get("provider", "").strip()
        if address:
            configured[address] = target.name
    discovered = bool(config.fleet.file_sd or config.fleet.prometheus)
    if not section.enabled or not (configured or discovered):
        return None
    source = AkashProviderSource(
        base_url=section.base_url or AkashSource().base_url,
        providers=lambda: dict(configured),
        timeout=section.provider_timeout,
    )
    interval = max(section.provider_interval, source.min_interval())
    settings = SourceSettings(interval, section.provider_timeout, section.ca_file, section.insecure)
    return source, settings


def build_sources(config: Config, secrets: Secrets) -> dict[str, tuple[Source, SourceSettings]]:
    """The enabled sources by name (``[sources.NAME]`` tables, then the fleet's)."""
    out: dict[str, tuple[Source, SourceSettings]] = {}
    cg = config.sources.coingecko
    if cg.enabled:
        out["coingecko"] = (
            CoinGeckoSource(
                base_url=coingecko_root(config, secrets),
                category=cg.category,
                max_coins=cg.max_coins,
                timeout=cg.timeout,
                api_key=secrets.coingecko_api_key,
                plan=secrets.coingecko_plan,
            ),
            SourceSettings(cg.interval, cg.timeout),
        )
    for name, cls in NETWORK_SOURCES.items():
        section = getattr(config.sources, name)
        if section.enabled:
            source = cls(base_url=section.base_url or cls().base_url, timeout=section.timeout)
            out[name] = (
                source,
                SourceSettings(
                    section.interval, section.timeout, section.ca_file, section.insecure
                ),
            )
    devices = _ionet_devices(config, secrets, out.get("ionet"))
    if devices is not None:
        out[IONET_DEVICES] = devices
    providers = _akash_providers(config)
    if providers is not None:
        out[AKASH_PROVIDERS] = providers
    fleet = config.fleet
    # a scrape never outlives half the interval, as in Prometheus (scrape_timeout <= interval)
    scrape_timeout = min(fleet.timeout, fleet.interval / 2)
    targets, watchers = _fleet_targets(config)
    if targets or watchers:

        def current() -> list[Target]:
            seen: dict[str, Target] = {t.name: t for t in targets}
            for watcher in watchers:
                for target in watcher.load():
                    seen.setdefault(target.name, target)
            return list(seen.values())

        out[FLEET_GROUP] = (
            ExporterFleetSource(
                targets=current,
                timeout=scrape_timeout,
                concurrency=fleet.concurrency,
                max_samples=fleet.max_samples,
            ),
            # TLS is per target: the source builds a client for targets with their own CA.
            # A GPU URL doubles a target's worst case, hence twice the scrape deadline.
            SourceSettings(
                fleet.interval,
                scrape_timeout * 2 + 1,
                insecure=any(t.insecure for t in fleet.targets),
                fleet=True,
            ),
        )
    for i, server in enumerate(fleet.prometheus):
        name = "promql" if len(fleet.prometheus) == 1 else f"promql-{i + 1}"
        headers = _credentials(server, f"fleet.prometheus.{i}").headers()
        out[name] = (
            PromqlSource(
                url=server.url,
                selector=server.selector,
                timeout=scrape_timeout,
                headers=headers,
                name=name,
                limit=server.limit,
                max_body_mb=server.max_body_mb,
            ),
            SourceSettings(
                fleet.interval, scrape_timeout, server.ca_file, server.insecure, fleet=True
            ),
        )
    if fleet.local.enabled:
        out["local"] = (LocalSource(), SourceSettings(fleet.interval, 10.0, fleet=True))
    if config.sources.sample.enabled:
        out["sample"] = (SampleSource(), SourceSettings(config.sources.sample.interval, 10.0))
    return out


def expand_only(names: list[str], available: dict[str, SourceSettings]) -> list[str]:
    """``fleet`` stands for every fleet source; other names pass through."""
    out: list[str] = []
    for name in names:
        if name == FLEET_GROUP:
            out += [n for n, s in available.items() if s.fleet and n not in out]
        elif name not in out:
            out.append(name)
    return out
