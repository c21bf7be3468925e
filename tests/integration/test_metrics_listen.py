"""Issue 17 part 1, from outside: a real `depin-explorer poll --metrics-listen` collector polls
loopback sources (recorded bodies), a real Prometheus scrapes it, and PromQL answers with the
values `export networks` shows; and the reason samples carry no poll-time timestamps, shown on
the same real server."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from explorer.cli import cli
from tests.integration.test_collector import env, wait_for
from tests.support import prom
from tests.support.loopback import LoopbackServer, Reply
from tests.unit.test_metrics_grafana import DASHBOARD, expressions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL = FIXTURES / "real"
PROM_TEXT = {"content-type": "text/plain; version=0.0.4; charset=utf-8"}

pytestmark = pytest.mark.usefixtures("binaries")


@pytest.fixture(scope="module")
def binaries() -> tuple[str, str]:
    """Prometheus is needed (skip without it; under CI=true a failure)."""
    return prom.require_binaries()


def reply(path: Path) -> list[Reply]:
    return [Reply(200, path.read_bytes())]


def routes() -> dict[str, list[Reply]]:
    """Real recorded bodies where the repo has them (CoinGecko, Filfox, the io.net catalogue);
    the written ones for io.net's network pages and Akash; a real node_exporter body."""
    return {
        "/cg/api/v3/coins/markets": reply(REAL / "coingecko_coins-markets.forbole-soljuno.json"),
        "/fil/overview": reply(REAL / "filecoin_overview.mufanh-filecoin-backend.json"),
        "/io/v1/io-cloud/vmaas/hardware": reply(
            REAL / "ionet_vmaas-hardware.wayneornn-public-pricing.json"
        ),
        "/io/v1/io-explorer/network/info": reply(FIXTURES / "ionet_network-info.written.json"),
        "/io/v1/io-explorer/network/info/clusters": reply(
            FIXTURES / "ionet_network-info-clusters.written.json"
        ),
        "/io/v1/io-blocks/blocks/all/1": reply(FIXTURES / "ionet_blocks-all.written.json"),
        "/ak/v1/network-capacity": reply(FIXTURES / "akash_network-capacity-flat.written.json"),
        "/ak/v1/gpu": reply(FIXTURES / "akash_gpu.written.json"),
        "/ak/v1/gpu-prices": reply(FIXTURES / "akash_gpu-prices.written.json"),
        "/ak/v1/dashboard-data": reply(FIXTURES / "akash_dashboard-data.written.json"),
        "/node/metrics": [
            Reply(200, (FIXTURES / "node_exporter_1.5.0_2cpu.prom").read_bytes(), PROM_TEXT)
        ],
    }


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[sources.coingecko]\nbase_url = "{url}/cg/api/v3"\ninterval = 600\ntimeout = 5\n'
        f'[sources.filecoin]\nbase_url = "{url}/fil"\ninterval = 600\ntimeout = 5\n'
        f'[sources.ionet]\nbase_url = "{url}/io"\ninterval = 600\ntimeout = 5\n'
        f'[sources.akash]\nbase_url = "{url}/ak"\ninterval = 600\ntimeout = 5\n'
        "[sources.helium]\nenabled = false\n[sources.sample]\nenabled = false\n"
        "[fleet]\ninterval = 10\ntimeout = 5\n[fleet.local]\nenabled = false\n"
        f'[[fleet.targets]]\nname = "gpu-01"\nurl = "{url}/node/metrics"\n'
        'labels = { network = "io.net" }\n'
        '[[alerts.rules]]\nname = "node down"\nkind = "node_down"\nseverity = "critical"\n'
        "[retention]\nenabled = false\n"
    )
    return path


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """A running collector on loopback sources: (its /metrics URL, config, db)."""
    db = tmp_path / "history.db"
    port = prom.free_port()
    with LoopbackServer(routes()) as server:
        cfg = write_config(tmp_path, server.url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "explorer", "--config", str(cfg), "--db", str(db)]
            + ["poll", "--metrics-listen", f"127.0.0.1:{port}"],
            env=env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            yield f"http://127.0.0.1:{port}/metrics", cfg, db
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
            errors = proc.stderr.read().decode() if proc.stderr else ""
        assert code == 0, errors
        assert f"serving metrics on http://127.0.0.1:{port}/metrics" in errors


def doc_examples() -> list[str]:
    """The PromQL examples of docs/prometheus.md: one per line, indented lines continue one."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "prometheus.md").read_text()
    block = text.split("```promql\n", 1)[1].split("```", 1)[0]
    examples: list[str] = []
    for line in block.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith(" ") and examples:
            examples[-1] += " " + line.strip()
        else:
            examples.append(line)
    return examples


def export_networks(cfg: Path, db: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(
        cli, ["--config", str(cfg), "--db", str(db), "export", "networks", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def scrape(url: str) -> dict[str, Metric]:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def all_networks_stored(cfg: Path, db: Path) -> bool:
    if not db.exists():
        return False
    try:
        records = export_networks(cfg, db)
    except AssertionError:  # the schema is still being created
        return False
    return {r["network"] for r in records} >= {"io.net", "akash", "filecoin"}


def test_prometheus_answers_with_the_values_export_networks_shows(
    tmp_path: Path, collector: tuple[str, Path, Path]
) -> None:
    url, cfg, db = collector
    wait_for(lambda: all_networks_stored(cfg, db), seconds=30)
    # and the fleet and the rankings: every source has polled once
    for name in ("depin_coin_price_usd", "depin_fleet_nodes"):
        wait_for(lambda name=name: bool(scrape(url)[name].samples), seconds=15)
    records = export_networks(cfg, db)
    assert len(records) >= 10

    families = scrape(url)
    served = {
        (s.labels["network"], s.labels["metric"]): s
        for s in families["depin_network_value"].samples
    }
    assert set(served) == {(r["network"], r["metric"]) for r in records}
    for record in records:
        sample = served[(record["network"], record["metric"])]
        assert sample.value == record["value"]
        assert sample.labels.get("unit", "") == record["unit"]
        assert sample.timestamp is None  # scrape time: see docs/prometheus.md
    stamps = {
        (s.labels["network"], s.labels["metric"]): s.value
        for s in families["depin_network_value_timestamp_seconds"].samples
    }
    assert set(stamps) == set(served)

    # the rest of what the collector polled, as the cache holds it
    exported = json.loads(
        CliRunner()
        .invoke(cli, ["--config", str(cfg), "--db", str(db), "export", "gpu-models"])
        .output
    )
    for family, key in (
        ("depin_gpu_model_price_usd_per_hour", "price_usd_gpu_hour"),
        ("depin_gpu_model_available", "available"),
    ):
        got = {(s.labels["network"], s.labels["model"]): s.value for s in families[family].samples}
        want = {(g["network"], g["model"]): g[key] for g in exported if g[key] is not None}
        assert got == want and got, family
    coins = {s.labels["coin"] for s in families["depin_coin_price_usd"].samples}
    assert coins  # the recorded CoinGecko page's coins
    fleet = {
        (s.labels["network"], s.labels["source"], s.labels["state"]): s.value
        for s in families["depin_fleet_nodes"].samples
    }
    assert fleet[("io.net", "exporter", "up")] == 1, export_fleet(cfg, db)
    assert fleet[("io.net", "exporter", "down")] == 0
    firing = {
        (s.labels["rule"], s.labels["severity"]): s.value
        for s in families["depin_alerts_firing"].samples
    }
    assert firing == {("node down", "critical"): 0}
    states = {
        s.labels["source"]
        for s in families["depin_source_state"].samples
        if s.labels["state"] == "ok" and s.value == 1
    }
    assert states >= {"coingecko", "ionet", "akash", "filecoin", "fleet"}

    host = url.removeprefix("http://").removesuffix("/metrics")
    with prom.prometheus(tmp_path, [host]) as (_, server):
        for record in records:
            promql = (
                f'depin_network_value{{network="{record["network"]}",metric="{record["metric"]}"}}'
            )
            result = prom.query(server, promql)
            assert len(result) == 1, (promql, result)
            assert math.isclose(float(result[0]["value"][1]), record["value"], rel_tol=1e-15)
        # an example of docs/prometheus.md: the fleet next to the network
        up = prom.query(server, 'sum(depin_fleet_nodes{state="up",network="io.net"})')
        assert float(up[0]["value"][1]) == 1
        # every expression of the Grafana dashboard is valid PromQL to the real server
        dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
        for expr in expressions(dashboard):
            if not expr.startswith("label_values("):  # Grafana's own, not PromQL
                prom.query(server, expr.replace("$network", ".*"))  # ValueError if refused
        # and so is every example of docs/prometheus.md
        examples = doc_examples()
        assert len(examples) >= 10
        for expr in examples:
            prom.query(server, expr)


def test_unauthenticated_scrapes_are_refused_when_auth_is_set(tmp_path: Path) -> None:
    """The environment's credentials reach the subprocess: 401 without them, 200 with."""
    db = tmp_path / "history.db"
    port = prom.free_port()
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        "".join(
            f"[sources.{n}]\nenabled = false\n"
            for n in ("coingecko", "ionet", "akash", "filecoin", "helium")
        )
        + "[fleet.local]\nenabled = false\n[retention]\nenabled = false\n"
    )
    environ = env(tmp_path) | {
        "DEPIN_EXPLORER_METRICS_USER": "prom",
        "DEPIN_EXPLORER_METRICS_PASSWORD": "s3cret",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer", "--config", str(cfg), "--db", str(db)]
        + ["poll", "--metrics-listen", f"localhost:{port}"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://localhost:{port}/metrics"  # whichever address localhost was bound to
    try:
        refused = prom.wait_for(lambda: httpx.get(url, timeout=2), timeout=20, what="listener")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic ")
        good = httpx.get(url, auth=("prom", "s3cret"), timeout=5)
        assert good.status_code == 200
        assert "depin_exporter_cache_ok" in good.text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    errors = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 0, errors
    assert "warning" not in errors  # localhost is loopback
    assert "s3cret" not in errors


class _Stamped:
    """Gauges stamped with a poll time (30 s, 10 min, 2 h ago) and one left to the scrape."""

    def __init__(self) -> None:
        self.polled = time.time()
        self.serving = True

    def collect(self) -> Iterator[Metric]:
        if not self.serving:
            return
        stamped = GaugeMetricFamily("probe_stamped", "stamped", labels=["age"])
        for age, seconds in (("30s", 30), ("10m", 600), ("2h", 7200)):
            stamped.add_metric([age], 1.0, timestamp=self.polled - seconds)
        yield stamped
        plain = GaugeMetricFamily("probe_plain", "scrape time")
        plain.add_metric([], 3.0)
        yield plain


def test_poll_time_timestamps_would_hide_slow_sources(tmp_path: Path) -> None:
    """Why the exporter sets no sample timestamps (docs/prometheus.md), on the real Prometheus:
    a figure stamped with its poll time 10 minutes back is stored but an instant query no longer
    finds it (5 min lookback; Filfox is polled every 15 min, Helium every 30); one stamped 2 h
    back (a failing source's last good value) is not stored at all; and a stamped series that
    stops being served lingers, where a scrape-time one ends at once (a staleness marker)."""
    probe = _Stamped()
    registry = CollectorRegistry()
    registry.register(probe)
    port = prom.free_port()
    server, thread = start_http_server(port, "127.0.0.1", registry=registry)
    try:
        with prom.prometheus(tmp_path, [f"127.0.0.1:{port}"]) as (_, url):
            time.sleep(2)  # a few more scrapes
            assert [float(r["value"][1]) for r in prom.query(url, "probe_plain")] == [3.0]
            assert {r["metric"]["age"] for r in prom.query(url, "probe_stamped")} == {"30s"}
            kept = {r["metric"]["age"] for r in prom.query(url, "probe_stamped[3h]")}
            assert kept == {"30s", "10m"}
            probe.serving = False
            time.sleep(3)  # scrapes without either series
            assert prom.query(url, "probe_plain") == []
            assert {r["metric"]["age"] for r in prom.query(url, "probe_stamped")} == {"30s"}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def export_fleet(cfg: Path, db: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["--config", str(cfg), "--db", str(db), "export", "fleet"])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))
