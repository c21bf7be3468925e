"""The /metrics endpoint over real HTTP on loopback: what it serves, auth, private mode, paths;
the address, the credentials and the poll command's checks."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from cache.db import open_reader
from cache.queries import latest_metrics
from explorer import metrics_listen
from explorer.cli import cli
from explorer.config import Config
from explorer.errors import ConfigError
from explorer.metrics_listen import (
    BasicAuth,
    CacheCollector,
    MetricsListener,
    auth_from_env,
    is_loopback,
    listener_for_poll,
    parse_listen,
    stale_limits,
)
from tests.unit.test_metrics_view import NOW, build


@contextmanager
def serving(db: Path, *, auth: BasicAuth | None = None, private: bool = False) -> Iterator[str]:
    collector = CacheCollector(db, private=private, clock=lambda: NOW)
    listener = MetricsListener("127.0.0.1", 0, collector, auth)
    listener.start()
    try:
        host, port = listener.address
        yield f"http://{host}:{port}"
    finally:
        listener.stop()


def parsed(text: str) -> dict[str, Metric]:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "c.db"
    build(path)
    return path


def test_metrics_over_http_read_back_by_prometheus_client(db: Path) -> None:
    with serving(db) as url:
        response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = parsed(response.text)
    served = {
        (s.labels["network"], s.labels["metric"], s.labels["unit"]): s.value
        for s in got["depin_network_value"].samples
    }
    conn = open_reader(db)
    try:
        stored = {(m.network, m.metric, m.unit): m.value for m in latest_metrics(conn)}
    finally:
        conn.close()
    assert (
        served
        == stored
        == {("akash", "gpus_total", "count"): 410, ("akash", "leases_active", "count"): 90}
    )
    assert got["depin_exporter_cache_ok"].samples[0].value == 1
    rewards = got["depin_device_rewards_24h"].samples
    assert [(s.labels["node"], s.value) for s in rewards] == [("gpu-01", 0.75)]
    assert all(s.timestamp is None for f in got.values() for s in f.samples)


def test_openmetrics_is_served_when_asked_for(db: Path) -> None:
    accept = {"accept": "application/openmetrics-text; version=1.0.0"}
    with serving(db) as url:
        response = httpx.get(f"{url}/metrics", headers=accept, timeout=5)
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_private_mode_hides_rewards_entirely(db: Path) -> None:
    with serving(db, private=True) as url:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    assert "depin_device_" not in text
    assert "gpu-01" not in text and "7a3e1c52" not in text  # neither the node nor the device
    assert "depin_network_value{" in text


def test_only_the_metrics_path_answers(db: Path) -> None:
    with serving(db) as url:
        for path in ("/", "/metrics/", "/favicon.ico", "/api/v1/query", "/metricsx"):
            assert httpx.get(f"{url}{path}", timeout=5).status_code == 404, path


def test_basic_auth(db: Path) -> None:
    auth = BasicAuth("prom", "pässword:with-colon")
    with serving(db, auth=auth) as url:
        bare = httpx.get(f"{url}/metrics", timeout=5)
        assert bare.status_code == 401
        assert bare.headers["www-authenticate"].startswith('Basic realm="depin-explorer"')
        assert "depin_" not in bare.text
        wrong = httpx.get(f"{url}/metrics", auth=("prom", "nope"), timeout=5)
        assert wrong.status_code == 401
        other = httpx.get(f"{url}/metrics", auth=("root", "pässword:with-colon"), timeout=5)
        assert other.status_code == 401
        junk = httpx.get(f"{url}/metrics", headers={"authorization": "Basic %%%"}, timeout=5)
        assert junk.status_code == 401
        token = base64.b64encode("prom:pässword:with-colon".encode()).decode()
        good = httpx.get(f"{url}/metrics", headers={"authorization": f"Basic {token}"}, timeout=5)
        assert good.status_code == 200 and "depin_network_value{" in good.text
        assert httpx.get(f"{url}/", timeout=5).status_code == 404  # the path is checked first


def test_no_cache_yet_serves_cache_ok_0_and_nothing_else(tmp_path: Path) -> None:
    with serving(tmp_path / "missing.db") as url:
        got = parsed(httpx.get(f"{url}/metrics", timeout=5).text)
    assert set(got) == {"depin_exporter_cache_ok", "depin_exporter_cache_read_seconds"}
    assert got["depin_exporter_cache_ok"].samples[0].value == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9464", ("::1", 9464)),
        ("0.0.0.0:9464", ("0.0.0.0", 9464)),
        ("9464", ("127.0.0.1", 9464)),  # a bare port: loopback
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", "99999", ":9464", "::1:9464", "host:port", "h:70000", "h:-1"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.3.4.5") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.5")


def test_auth_from_env_both_or_neither() -> None:
    user, password = metrics_listen.USER_ENV, metrics_listen.PASSWORD_ENV
    assert auth_from_env({}) is None
    assert auth_from_env({user: "prom", password: "x"}) == BasicAuth("prom", "x")
    with pytest.raises(ConfigError, match=password):
        auth_from_env({user: "prom"})
    with pytest.raises(ConfigError, match=user):
        auth_from_env({password: "x"})
    with pytest.raises(ConfigError, match="':'"):
        auth_from_env({user: "a:b", password: "x"})
    assert "x" not in repr(BasicAuth("prom", "x"))


def test_stale_limits_are_twice_each_kinds_interval() -> None:
    limits = stale_limits({"fleet": 15, "promql-1": 30, "promql-2": 60, "coingecko": 120}, 15)
    assert limits == {"exporter": 30, "promql": 120, "local": 30}


def _listener(config: Config, tmp_path: Path, **kwargs: object) -> tuple[object, list[str]]:
    said: list[str] = []
    options: dict[str, object] = {
        "listen": None,
        "once": False,
        "private": False,
        "state_path": tmp_path / "state.json",
        "intervals": {},
        "environ": {},
        "warn": said.append,
    } | kwargs
    listener = listener_for_poll(config, tmp_path / "c.db", **options)
    if listener is not None:
        listener.stop()
    return listener, said


def test_listener_for_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config.model_validate({"collector": {"metrics_listen": "127.0.0.1:0"}})
    listener, said = _listener(config, tmp_path)
    assert listener is not None
    assert said[-1].startswith("serving metrics on http://127.0.0.1:")
    assert not any("warning" in line for line in said)
    assert _listener(config, tmp_path, once=True)[0] is None  # --once ignores the config
    assert _listener(Config(), tmp_path)[0] is None
    with pytest.raises(ConfigError, match="drop --once"):
        _listener(Config(), tmp_path, listen="127.0.0.1:0", once=True)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        _listener(Config(), tmp_path, listen="nowhere")
    # an address other machines reach: allowed, with a warning (bound here on loopback only)
    monkeypatch.setattr(metrics_listen, "is_loopback", lambda host: False)
    _, said = _listener(Config(), tmp_path, listen="127.0.0.1:0")
    assert said[0].startswith("warning: http://127.0.0.1:")
    assert "needs no password" in said[0]
    env = {metrics_listen.USER_ENV: "prom", metrics_listen.PASSWORD_ENV: "x"}
    _, said = _listener(Config(), tmp_path, listen="127.0.0.1:0", environ=env)
    assert "reachable from other machines" in said[0] and "password" not in said[0]


def test_an_address_in_use_is_a_config_error(tmp_path: Path) -> None:
    taken = MetricsListener("127.0.0.1", 0, CacheCollector(tmp_path / "c.db"))
    try:
        port = taken.address[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            _listener(Config(), tmp_path, listen=f"127.0.0.1:{port}")
    finally:
        taken.stop()


def test_config_section(tmp_path: Path) -> None:
    assert Config().collector.metrics_listen is None
    assert Config().collector.metrics_top_coins == 20
    bad = tmp_path / "config.toml"
    bad.write_text('[collector]\nmetrics_listen = "nowhere"\n')
    result = CliRunner().invoke(cli, ["--config", str(bad), "config", "check"])
    assert result.exit_code == 2
    assert "collector.metrics_listen" in result.output and "HOST:PORT" in result.output


def test_poll_once_refuses_metrics_listen(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["--db", str(tmp_path / "c.db"), "--offline", "poll", "--once"]
        + ["--metrics-listen", "127.0.0.1:0"],
    )
    assert result.exit_code == 2
    assert "--metrics-listen serves a running collector: drop --once" in result.output
