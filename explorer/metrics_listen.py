"""The collector as a Prometheus exporter: ``poll --metrics-listen HOST:PORT`` serves ``/metrics``.

prometheus_client does the exposition: a custom collector on a registry of its own reads the
cache (cache/metrics_view.py) at scrape time, in the scrape's thread, on its own read-only
connection, and ``make_wsgi_app`` writes the text. This module adds what that app lacks: only
``/metrics`` answers (anything else is 404), optional basic auth from the environment, and a
threaded server on a daemon thread that the ``poll`` command starts and stops. Samples carry no
timestamps of their own (docs/prometheus.md says why); each figure's poll time is a series of its
own. Metric names and meanings are documented in docs/prometheus.md.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer

from cache.db import CacheError, open_reader, utc_now
from cache.metrics_view import MetricsView, read_view
from explorer.config import Config
from explorer.config import parse_listen as parse_listen  # checked by the config too
from explorer.errors import ConfigError

log = logging.getLogger(__name__)

USER_ENV = "DEPIN_EXPLORER_METRICS_USER"
PASSWORD_ENV = "DEPIN_EXPLORER_METRICS_PASSWORD"
PATH = "/metrics"
SOURCE_STATES = ("ok", "partial", "failing")
FLEET_STATES = ("up", "down", "stale")


# -- the address and the credentials ------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback one (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False  # the bind will say what is wrong with the name
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


@dataclass(frozen=True)
class BasicAuth:
    """The one user and password a scrape must send."""

    user: str
    password: str = field(repr=False)

    def allows(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries these credentials."""
        if not header or not header[:6].lower() == "basic ":
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        # both compared every time, in constant time: no hint which one was wrong
        same_user = hmac.compare_digest(user.encode(), self.user.encode())
        same_password = hmac.compare_digest(password.encode(), self.password.encode())
        return bool(sep) and same_user and same_password


def auth_from_env(environ: Mapping[str, str]) -> BasicAuth | None:
    """Basic auth from ``DEPIN_EXPLORER_METRICS_USER`` and ``..._PASSWORD``: both or neither.

    Raises:
        ConfigError: only one of the two is set, or the user holds a colon.
    """
    user = environ.get(USER_ENV, "")
    password = environ.get(PASSWORD_ENV, "")
    if not user and not password:
        return None
    if not user or not password:
        missing = USER_ENV if not user else PASSWORD_ENV
        raise ConfigError(f"{missing} is not set: metrics basic auth needs both or neither")
    if ":" in user:
        raise ConfigError(f"{USER_ENV}: a basic-auth user cannot contain ':'")
    return BasicAuth(user, password)


# -- the series ---------------------------------------------------------------------------------


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _gauge(name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def families(
    view: MetricsView, rules: Iterable[tuple[str, str]] = (), private: bool = False
) -> list[Metric]:
    """The series of one read; a value the cache lacks is an absent series, never 0.

    Args:
        view: what the scrape read.
        rules: (rule, severity) of the configured alert rules: a rule not firing exports 0.
        private: the read left the rewards out; their families are left out too.
    """
    now = view.now
    out: list[Metric] = []

    value = _gauge(
        "depin_network_value",
        "A public network's figure as its source last reported it (export networks).",
        ("network", "metric", "unit"),
    )
    stamp = _gauge(
        "depin_network_value_timestamp_seconds",
        "When the poll that fetched depin_network_value finished (Unix time).",
        ("network", "metric"),
    )
    for m in view.networks:
        value.add_metric((m.network, m.metric, m.unit), m.value)
        stamp.add_metric((m.network, m.metric), _epoch(m.fetched_at))
    out += [value, stamp]

    price = _gauge(
        "depin_gpu_model_price_usd_per_hour",
        "Price of one GPU of this model for an hour, in USD, in the network's latest catalogue.",
        ("network", "model"),
    )
    available = _gauge(
        "depin_gpu_model_available",
        "GPUs of this model available (not leased) in the network's latest catalogue.",
        ("network", "model"),
    )
    total = _gauge(
        "depin_gpu_model_total",
        "GPUs of this model in the network, in its latest catalogue.",
        ("network", "model"),
    )
    catalogue: dict[str, float] = {}
    for g in view.gpu_models:
        labels = (g.network, g.model)
        if g.price_usd_per_hour is not None:
            price.add_metric(labels, g.price_usd_per_hour)
        if g.available is not None:
            available.add_metric(labels, g.available)
        if g.total is not None:
            total.add_metric(labels, g.total)
        catalogue[g.network] = _epoch(g.fetched_at)
    catalogue_at = _gauge(
        "depin_gpu_models_timestamp_seconds",
        "When the poll of the network's latest GPU catalogue finished (Unix time).",
        ("network",),
    )
    for network, at in sorted(catalogue.items()):
        catalogue_at.add_metric((network,), at)
    out += [price, available, total, catalogue_at]

    out += _coin_families(view)
    out += _fleet_families(view)
    if not private:
        out += _reward_families(view)

    firing = _gauge(
        "depin_alerts_firing",
        "Alerts firing now, per rule and severity (0: a configured rule not firing).",
        ("rule", "severity"),
    )
    counts = {key: 0 for key in rules} | view.alerts_firing
    for (rule, severity), count in sorted(counts.items()):
        firing.add_metric((rule, severity), count)
    out.append(firing)

    out += _source_families(view, now)
    return out


def _coin_families(view: MetricsView) -> list[Metric]:
    labels = ("coin", "symbol")
    price = _gauge("depin_coin_price_usd", "A tracked coin's price in USD.", labels)
    cap = _gauge("depin_coin_market_cap_usd", "A tracked coin's market cap in USD.", labels)
    volume = _gauge(
        "depin_coin_volume_24h_usd", "A tracked coin's trading volume over 24 h in USD.", labels
    )
    stamp = _gauge(
        "depin_coins_timestamp_seconds",
        "When the rankings poll the coin figures come from finished (Unix time).",
        ("source",),
    )
    if view.coins is not None:
        for coin in view.coins.coins:
            key = (coin.coin_id, coin.symbol or "")
            for family, figure in (
                (price, coin.price_usd),
                (cap, coin.market_cap_usd),
                (volume, coin.volume_24h_usd),
            ):
                if figure is not None:
                    family.add_metric(key, figure)
        stamp.add_metric((view.coins.source,), _epoch(view.coins.fetched_at))
    return [price, cap, volume, stamp]


def _fleet_families(view: MetricsView) -> list[Metric]:
    nodes = _gauge(
        "depin_fleet_nodes",
        "Your nodes per network, source kind and state (up, down, stale) by their newest sample.",
        ("network", "source", "state"),
    )
    for count in view.fleet:
        for state, n in zip(FLEET_STATES, (count.up, count.down, count.stale), strict=True):
            nodes.add_metric((count.network or "", count.source_kind, state), n)
    return [nodes]


def _reward_families(view: MetricsView) -> list[Metric]:
    labels = ("network", "device_id", "node", "token")
    day = _gauge(
        "depin_device_rewards_24h",
        "Rewards of a device's reward blocks that started in the last 24 h, in its token.",
        labels,
    )
    earned = _gauge(
        "depin_device_earnings",
        "A device's total earnings to date as its network reports them, in its token.",
        labels,
    )
    for r in view.rewards:
        key = (r.network, r.device_id, r.node or "", r.token or "")
        if r.rewards_24h is not None:
            day.add_metric(key, r.rewards_24h)
        if r.earnings is not None:
            earned.add_metric(key, r.earnings)
    return [day, earned]


def _source_families(view: MetricsView, now: datetime) -> list[Metric]:
    labels = ("source",)
    success = _gauge(
        "depin_source_last_success_timestamp_seconds",
        "When the source's newest good (ok or partial) poll finished (Unix time).",
        labels,
    )
    age = _gauge(
        "depin_source_last_success_age_seconds",
        "Seconds from the source's newest good poll to this scrape.",
        labels,
    )
    state = _gauge(
        "depin_source_state",
        "1 for how the source's newest poll ended (ok, partial, failing), 0 for the others.",
        ("source", "state"),
    )
    polled = _gauge(
        "depin_source_last_poll_timestamp_seconds",
        "When the source's newest poll, good or failed, finished (Unix time).",
        labels,
    )
    duration = _gauge(
        "depin_source_last_poll_duration_seconds",
        "How long the source's newest poll took, in seconds.",
        labels,
    )
    failures = _gauge(
        "depin_source_failures_since_success",
        "Failed polls of the source since its newest good one.",
        labels,
    )
    for s in view.sources:
        key = (s.source,)
        if s.last_success_at is not None:
            success.add_metric(key, _epoch(s.last_success_at))
            age.add_metric(key, max(0.0, (now - s.last_success_at).total_seconds()))
        for name in SOURCE_STATES:
            state.add_metric((s.source, name), 1 if s.state == name else 0)
        polled.add_metric(key, _epoch(s.last_poll_at))
        if s.last_duration_s is not None:
            duration.add_metric(key, s.last_duration_s)
        failures.add_metric(key, s.failures_since_success)
    return [success, age, state, polled, duration, failures]


# -- the collector ------------------------------------------------------------------------------


@dataclass(eq=False)  # the registry keys collectors by identity
class CacheCollector:
    """A prometheus_client collector that reads the cache at each scrape.

    Runs in the scrape's thread with a connection of its own, opened and closed per scrape: the
    poller's writer never waits on it (WAL readers do not block the writer).
    """

    db_path: Path
    watchlist: Callable[[], set[str]] = set
    """Read at each scrape: the user may star coins in a TUI while the collector runs."""
    top_coins: int = 20
    stale_after: Mapping[str, float] = field(default_factory=dict)
    rules: Sequence[tuple[str, str]] = ()
    private: bool = False
    clock: Callable[[], datetime] = utc_now

    def describe(self) -> list[Metric]:
        """Nothing at registration: the registry must not read the cache before a scrape."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The series, plus whether the cache could be read and how long that took."""
        started = time.perf_counter()
        read: list[Metric] = []
        ok = 1
        try:
            conn = open_reader(self.db_path)
            try:
                view = read_view(
                    conn,
                    self.clock(),
                    watchlist=self.watchlist(),
                    top_coins=self.top_coins,
                    stale_after=self.stale_after,
                    private=self.private,
                )
            finally:
                conn.close()
            read = families(view, self.rules, self.private)
        except (CacheError, sqlite3.Error) as exc:  # nothing polled yet, damaged, newer schema
            log.warning("metrics: cannot read %s: %s", self.db_path, exc)
            ok = 0
        yield from read
        cache_ok = _gauge(
            "depin_exporter_cache_ok",
            "1 when this scrape read the cache; 0 (and no other series) when it could not.",
            (),
        )
        cache_ok.add_metric((), ok)
        seconds = _gauge(
            "depin_exporter_cache_read_seconds", "How long this scrape's cache read took.", ()
        )
        seconds.add_metric((), time.perf_counter() - started)
        yield cache_ok
        yield seconds


# -- the HTTP side ------------------------------------------------------------------------------


def metrics_app(
    registry: CollectorRegistry, auth: BasicAuth | None = None
) -> Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]:
    """prometheus_client's WSGI app behind a path check and optional basic auth."""
    inner = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"only /metrics is served here\n"]
        if auth is not None and not auth.allows(environ.get("HTTP_AUTHORIZATION")):
            start_response(
                "401 Unauthorized",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("WWW-Authenticate", 'Basic realm="depin-explorer", charset="UTF-8"'),
                ],
            )
            return [b"unauthorized\n"]
        result: Iterable[bytes] = inner(environ, start_response)
        return result

    return app


class _QuietHandler(WSGIRequestHandler):
    """Requests are not logged to stderr (the collector's stderr is for its own notices)."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""


class MetricsListener:
    """The ``/metrics`` server on a daemon thread, started and stopped by ``poll``."""

    def __init__(
        self, host: str, port: int, collector: CacheCollector, auth: BasicAuth | None = None
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        family, address = _family(host, port)

        class Server(ThreadingWSGIServer):
            address_family = family

        self._server = make_server(
            address, port, metrics_app(self.registry, auth), Server, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-listen", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the port is the real one when 0 was asked for."""
        bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    def start(self) -> None:
        """Serve from now on, on the daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket; a scrape under way finishes on its own thread."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


def _family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


# -- the poll command's side ------------------------------------------------------------------

FLEET_SOURCES = {"exporter": "fleet", "promql": "promql", "local": "local"}
"""A node's source kind -> the name (or the prefix: promql-1, promql-2) of its sources."""


def stale_limits(intervals: Mapping[str, float], default: float) -> dict[str, float]:
    """Per node source kind, seconds after which an up node is stale: twice its poll interval.

    Args:
        intervals: each enabled source's seconds between polls, by source name.
        default: the fleet interval, for a kind none of whose sources is enabled.
    """
    limits = {}
    for kind, name in FLEET_SOURCES.items():
        mine = [v for n, v in intervals.items() if n == name or n.startswith(f"{name}-")]
        limits[kind] = 2 * max(mine, default=default)
    return limits


def listener_for_poll(
    config: Config,
    db_path: Path,
    *,
    listen: str | None,
    once: bool,
    private: bool,
    state_path: Path,
    intervals: Mapping[str, float],
    environ: Mapping[str, str],
    warn: Callable[[str], None],
) -> MetricsListener | None:
    """The listener ``poll`` runs, from ``--metrics-listen`` or ``[collector] metrics_listen``.

    ``--once`` ignores the config's address (a one-off round serves no scrapes) and refuses an
    explicit one. A non-loopback address is allowed with a warning; so is one without auth.

    Raises:
        ConfigError: a bad address, half the basic-auth pair, ``--once`` with the option, or an
            address that cannot be bound (in use, not this machine's).
    """
    if listen is not None and once:
        raise ConfigError("--metrics-listen serves a running collector: drop --once")
    address = listen or (None if once else config.collector.metrics_listen)
    if address is None:
        return None
    try:
        host, port = parse_listen(address)
    except ValueError as exc:
        raise ConfigError(f"--metrics-listen: {exc}") from exc
    auth = auth_from_env(environ)
    from explorer.state import UserState

    collector = CacheCollector(
        db_path,
        watchlist=lambda: UserState(state_path, db_path).watchlist,
        top_coins=config.collector.metrics_top_coins,
        stale_after=stale_limits(intervals, config.fleet.interval),
        rules=[(r.rule_name, r.severity) for r in config.alerts.rules],
        private=private,
    )
    try:
        listener = MetricsListener(host, port, collector, auth)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {address}: {exc.strerror or exc}") from exc
    shown = f"[{host}]" if ":" in host else host
    where = f"http://{shown}:{listener.address[1]}{PATH}"
    if not is_loopback(host):
        warn(
            f"warning: {where} is reachable from other machines"
            + ("" if auth else f" and needs no password (set {USER_ENV} and {PASSWORD_ENV})")
        )
    warn(f"serving metrics on {where}{' (private: no rewards)' if private else ''}")
    return listener
