"""The command line: global options, config commands, headless polls and exports, end to end.

Every poll that is not ``--offline`` points at a LoopbackServer on 127.0.0.1; nothing reaches the
internet. The acceptance scenario of issue 2 is at the end.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from explorer import __version__
from explorer.cli import cli
from explorer.config import EXAMPLE
from tests.support.loopback import LoopbackServer, Reply

REPO = Path(__file__).resolve().parents[2]
MARKETS = "/api/v3/coins/markets"
KEY = "CG-q7Zx9LmW2pR8tV4nK6yB3"
PRO_ROOT = "https://pro-api.coingecko.com/api/v3"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
KEYS = [
    "coin_id",
    "symbol",
    "name",
    "rank",
    "price_usd",
    "market_cap_usd",
    "volume_24h_usd",
    "change_24h_pct",
    "change_7d_pct",
    "change_30d_pct",
    "source",
    "fetched_at",
]
EXPORTED = [
    *KEYS,  # then the per-device figures (cache/market_devices.py)
    "price_change_30d_pct",
    "devices_network",
    "devices_metric",
    "devices",
    "devices_fetched_at",
    "market_cap_per_device_usd",
    "devices_change_30d_pct",
]


@pytest.fixture(autouse=True)
def _no_env_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback requests must go straight to 127.0.0.1, whatever the caller's environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def run(runner: CliRunner, *args: str | Path) -> Result:
    """Invoke the CLI in-process; an unexpected exception fails the test with its traceback."""
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def served_body(fixtures_dir: Path) -> bytes:
    return (fixtures_dir / "coingecko_markets_depin.written.json").read_bytes()


def rate_limited_reply(fixtures_dir: Path) -> Reply:
    return Reply(
        429,
        (fixtures_dir / "coingecko_429.json").read_bytes(),
        {"content-type": "application/json", "retry-after": "119"},
    )


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def loopback_config(tmp_path: Path, server: LoopbackServer, extra: str = "") -> Path:
    return write_config(
        tmp_path / "conf" / "loopback.toml",
        f'[sources.coingecko]\nbase_url = "{server.url}/api/v3"\ntimeout = 5\n{extra}'
        + NO_NETWORKS,
    )


# These tests are about CoinGecko; the public network sources are covered elsewhere.
NO_NETWORKS = "".join(
    f"\n[sources.{name}]\nenabled = false\n" for name in ("ionet", "akash", "filecoin", "helium")
)


def header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


# -- version -------------------------------------------------------------------------------------


def test_version(runner: CliRunner) -> None:
    result = run(runner, "--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"depin-explorer, version {__version__}"
    assert __version__ == metadata.version("depin-explorer")


def test_python_dash_m_explorer_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "explorer", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"depin-explorer, version {__version__}"
    assert proc.stderr == ""


# -- global options before and after the subcommand -----------------------------------------------


def test_db_before_and_after_the_subcommand(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    assert run(runner, "--db", db, "--offline", "poll", "--once").exit_code == 0

    before = run(runner, "--db", db, "export", "rankings")
    after = run(runner, "export", "rankings", "--db", db)
    middle = run(runner, "export", "--db", db, "rankings")
    assert before.exit_code == after.exit_code == middle.exit_code == 0
    assert before.stdout == after.stdout == middle.stdout
    assert len(json.loads(before.stdout)) == 20

    # without --db the (empty) default database is used: proof that --db was what mattered
    default = run(runner, "export", "rankings")
    assert default.exit_code == 1
    assert default.stdout == ""


def test_offline_before_and_after_the_subcommand(
    runner: CliRunner, tmp_path: Path, fixtures_dir: Path
) -> None:
    with LoopbackServer({MARKETS: [Reply(200, served_body(fixtures_dir))]}) as server:
        config = loopback_config(tmp_path, server)
        for n, args in enumerate(
            (["--offline", "poll", "--once"], ["poll", "--once", "--offline"])
        ):
            db = tmp_path / f"offline{n}.db"
            result = run(runner, "--config", config, "--db", db, *args)
            assert result.exit_code == 0, result.output
            assert result.stderr == ""  # a skipped network source is not a failure
            assert server.requests == []
            exported = json.loads(run(runner, "export", "rankings", "--db", db).stdout)
            assert {r["source"] for r in exported} == {"sample"}

        # the same config without --offline does reach the loopback server
        online = run(runner, "--config", config, "--db", tmp_path / "online.db", "poll", "--once")
        assert online.exit_code == 0, online.output
        assert len(server.requests) == 1


def test_config_before_and_after_the_subcommand(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", '[sources.coingecko]\ncategory = "my-cat"\n')
    before = run(runner, "--config", config, "config", "check")
    after = run(runner, "config", "check", "--config", config)
    middle = run(runner, "config", "--config", config, "check")
    for result in (before, after, middle):
        assert result.exit_code == 0, result.output
        assert 'category = "my-cat"' in result.stdout
        assert str(config) in result.stdout
    assert before.stdout == after.stdout == middle.stdout
    # the default file does not exist: the defaults say "depin"
    default = run(runner, "config", "check")
    assert 'category = "depin"' in default.stdout


def test_config_from_the_environment_and_option_wins(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = write_config(tmp_path / "env.toml", '[sources.coingecko]\ncategory = "from-env"\n')
    opt_file = write_config(tmp_path / "opt.toml", '[sources.coingecko]\ncategory = "from-opt"\n')
    monkeypatch.setenv("DEPIN_EXPLORER_CONFIG", str(env_file))
    assert 'category = "from-env"' in run(runner, "config", "check").stdout
    assert 'category = "from-opt"' in run(runner, "config", "check", "--config", opt_file).stdout


# -- config init / check / path ------------------------------------------------------------------


def test_config_init_writes_the_example_with_mode_0600(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "newdir" / "config.toml"
    result = run(runner, "--config", path, "config", "init")
    mode = os.stat(path).st_mode & 0o777
    assert mode == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    assert result.exit_code == 0
    assert str(path) in result.stdout
    assert path.read_text(encoding="utf-8") == EXAMPLE
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left

    # the written example is itself a valid config
    check = run(runner, "--config", path, "config", "check")
    assert check.exit_code == 0, check.output


def test_config_init_refuses_to_overwrite_without_force(runner: CliRunner, tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.toml", "# mine\n")
    path.chmod(0o644)
    refused = run(runner, "config", "init", "--config", path)
    assert refused.exit_code == 2
    assert "--force" in refused.stderr
    assert path.read_text() == "# mine\n"

    forced = run(runner, "config", "init", "--force", "--config", path)
    assert forced.exit_code == 0
    assert path.read_text(encoding="utf-8") == EXAMPLE
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_config_init_default_location(
    runner: CliRunner, isolated_platform_dirs: dict[str, Path]
) -> None:
    result = run(runner, "config", "init")
    assert result.exit_code == 0
    path = isolated_platform_dirs["config"] / "depin-explorer" / "config.toml"
    assert path.exists()
    assert os.stat(path).st_mode & 0o777 == 0o600


BAD_INTERVAL = "[sources.coingecko]\ninterval = 0\n"


def test_config_check_on_a_bad_file(runner: CliRunner, tmp_path: Path) -> None:
    path = write_config(tmp_path / "bad.toml", BAD_INTERVAL)
    result = run(runner, "config", "check", "--config", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = lines(result.stderr)
    assert str(path) in line
    assert "sources.coingecko.interval" in line
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[sources.coingecko]\nintervall = 60\n", "sources.coingecko.intervall"),
        ('[sources.coingecko]\nmax_coins = "lots"\n', "sources.coingecko.max_coins"),
        ('[ui]\nstart_screen = "settings"\n', "ui.start_screen"),
    ],
)
def test_config_errors_exit_2_from_every_command(
    runner: CliRunner, tmp_path: Path, text: str, key: str
) -> None:
    path = write_config(tmp_path / "bad.toml", text)
    db = tmp_path / "x.db"
    for args in (
        ["config", "check"],
        ["poll", "--once", "--offline", "--db", db],
        ["export", "rankings", "--db", db],
    ):
        result = run(runner, "--config", path, *args)
        assert result.exit_code == 2, (args, result.output)
        (line,) = lines(result.output)
        assert str(path) in line and key in line


def test_config_check_on_a_bad_file_in_a_real_process(tmp_path: Path) -> None:
    path = write_config(tmp_path / "bad.toml", BAD_INTERVAL)
    proc = subprocess.run(
        [sys.executable, "-m", "explorer", "config", "check", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    (line,) = lines(proc.stderr)
    assert str(path) in line and "sources.coingecko.interval" in line


def test_config_check_masks_the_key(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COINGECKO_API_KEY", KEY)
    log = tmp_path / "logs" / "debug.log"
    result = run(runner, "config", "check", "--log-file", log)
    assert result.exit_code == 0, result.output
    assert "COINGECKO_API_KEY" in result.stdout
    assert KEY[-4:] in result.stdout  # says which key is set ...
    for start in range(len(KEY) - 4):  # ... without revealing more than its last 4 characters
        assert KEY[start : start + 5] not in result.output
    assert log.exists()
    assert KEY not in log.read_text(encoding="utf-8")


def test_config_check_shows_the_effective_root(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COINGECKO_API_KEY", KEY)
    monkeypatch.setenv("COINGECKO_API_PLAN", "pro")
    result = run(runner, "config", "check")
    assert result.exit_code == 0
    assert f'base_url = "{PRO_ROOT}"' in result.stdout
    mirror = write_config(
        tmp_path / "m.toml", '[sources.coingecko]\nbase_url = "http://127.0.0.1:1/api/v3"\n'
    )
    explicit = run(runner, "config", "check", "--config", mirror)
    assert 'base_url = "http://127.0.0.1:1/api/v3"' in explicit.stdout
    assert PRO_ROOT not in explicit.stdout


def test_config_invalid_plan_exits_2(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINGECKO_API_PLAN", "enterprise")
    result = run(runner, "config", "check")
    assert result.exit_code == 2
    (line,) = lines(result.output)
    assert "COINGECKO_API_PLAN" in line


def test_config_path_defaults(runner: CliRunner, isolated_platform_dirs: dict[str, Path]) -> None:
    result = run(runner, "config", "path")
    assert result.exit_code == 0
    shown = dict(line.split(None, 1) for line in lines(result.stdout))
    assert set(shown) == {"config", "database", "state", "log"}
    assert shown["config"].startswith(str(isolated_platform_dirs["config"]))
    assert shown["database"].startswith(str(isolated_platform_dirs["data"]))
    assert shown["state"].startswith(str(isolated_platform_dirs["state"]))
    assert shown["log"].startswith(str(isolated_platform_dirs["state"]))


def test_config_path_follows_the_options(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", f'[cache]\npath = "{tmp_path / "from-config.db"}"\n')
    log = tmp_path / "my.log"
    result = run(runner, "config", "path", "--config", config, "--log-file", log)
    shown = dict(line.split(None, 1) for line in lines(result.stdout))
    assert shown["config"] == str(config)
    assert shown["database"] == str(tmp_path / "from-config.db")
    assert shown["log"] == str(log)
    with_db = run(runner, "--db", tmp_path / "opt.db", "config", "path", "--config", config)
    assert dict(line.split(None, 1) for line in lines(with_db.stdout))["database"] == str(
        tmp_path / "opt.db"
    )


# -- poll ----------------------------------------------------------------------------------------


def test_poll_once_offline_on_an_empty_db_stores_the_sample(
    runner: CliRunner, tmp_path: Path
) -> None:
    db = tmp_path / "fresh.db"
    result = run(runner, "poll", "--once", "--offline", "--db", db)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""

    exported = run(runner, "export", "rankings", "--db", db, "--format", "json")
    assert exported.exit_code == 0
    records = json.loads(exported.stdout)
    assert len(records) == 20
    assert all(list(r) == EXPORTED for r in records)
    assert {r["source"] for r in records} == {"sample"}
    assert all(r["fetched_at"].startswith("2024-06-30") for r in records)
    assert all(ISO_UTC.match(r["fetched_at"]) for r in records)
    render = next(r for r in records if r["name"] == "Render")
    assert (render["symbol"], render["price_usd"], render["market_cap_usd"]) == (
        "RNDR",
        6.85,
        2679921422,
    )

    as_csv = run(runner, "export", "rankings", "--db", db, "--format", "csv")
    rows = list(csv.reader(io.StringIO(as_csv.stdout, newline="")))
    assert rows[0] == EXPORTED
    assert len(rows) == 21

    # a second round does not store the sample again: the cache holds rankings now
    assert run(runner, "poll", "--once", "--offline", "--db", db).exit_code == 0
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM polls").fetchone()[0] == 1
    finally:
        conn.close()


def test_poll_only_an_unknown_source(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    result = run(runner, "poll", "--once", "--only", "nope", "--db", db)
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = lines(result.stderr)
    assert "nope" in line
    assert "--only" in line
    assert "coingecko" in line  # says which names exist
    assert not db.exists()


def test_poll_only_sample_with_coingecko_disabled(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", "[sources.coingecko]\nenabled = false\n")
    db = tmp_path / "s.db"
    refused = run(runner, "poll", "--once", "--only", "coingecko", "--config", config, "--db", db)
    assert refused.exit_code == 2
    assert "coingecko" in refused.stderr
    ok = run(runner, "poll", "--once", "--only", "sample", "--config", config, "--db", db)
    assert ok.exit_code == 0, ok.output


def test_export_without_a_cache_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    result = run(runner, "export", "rankings", "--db", tmp_path / "missing.db")
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = lines(result.stderr)
    assert "missing.db" in line


# -- acceptance: a loopback CoinGecko, then a 429 -------------------------------------------------


def expected_record(item: dict[str, Any]) -> dict[str, Any]:
    change_24h = item.get("price_change_percentage_24h_in_currency")
    if change_24h is None:
        change_24h = item.get("price_change_percentage_24h")
    return {
        "coin_id": item["id"],
        "symbol": item["symbol"],
        "name": item["name"],
        "rank": item["market_cap_rank"],
        "price_usd": item["current_price"],
        "market_cap_usd": item["market_cap"],
        "volume_24h_usd": item["total_volume"],
        "change_24h_pct": change_24h,
        "change_7d_pct": item.get("price_change_percentage_7d_in_currency"),
        "change_30d_pct": item.get("price_change_percentage_30d_in_currency"),
        "source": "coingecko",
    }


class Scenario:
    """One database, one config and one log file, shared by the steps of the scenario."""

    def __init__(self, runner: CliRunner, tmp_path: Path, server: LoopbackServer) -> None:
        self.runner = runner
        self.server = server
        self.db = tmp_path / "data" / "history.db"
        self.log = tmp_path / "logs" / "debug.log"
        self.config = loopback_config(tmp_path, server)
        self.results: list[Result] = []

    def __call__(self, *args: str) -> Result:
        result = run(
            self.runner,
            *args,
            "--config",
            self.config,
            "--db",
            self.db,
            "--log-file",
            self.log,
        )
        self.results.append(result)
        return result

    def export(self) -> tuple[str, list[dict[str, Any]]]:
        result = self("export", "rankings", "--format", "json")
        assert result.exit_code == 0, result.output
        return result.stdout, json.loads(result.stdout)

    def assert_key_never_leaked(self) -> None:
        for result in self.results:
            assert KEY not in result.stdout
            assert KEY not in result.stderr
        assert self.log.exists()
        log_text = self.log.read_text(encoding="utf-8")
        assert "coingecko" in log_text  # the log did record the polls
        assert KEY not in log_text
        for path in self.db.parent.iterdir():
            assert KEY.encode() not in path.read_bytes(), path


def test_live_poll_then_export_reproduces_every_served_value(
    runner: CliRunner,
    tmp_path: Path,
    fixtures_dir: Path,
    depin_page: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COINGECKO_API_KEY", KEY)
    with LoopbackServer({MARKETS: [Reply(200, served_body(fixtures_dir))]}) as server:
        step = Scenario(runner, tmp_path, server)
        started = datetime.now(UTC)
        polled = step("poll", "--once")
        assert polled.exit_code == 0, polled.output
        assert polled.stderr == ""

        assert len(server.requests) == 1
        target, headers = server.requests[0]
        query = target.split("?", 1)[1]
        for part in ("vs_currency=usd", "category=depin", "sparkline=true"):
            assert part in query
        assert "price_change_percentage=24h%2C7d%2C30d" in query or (
            "price_change_percentage=24h,7d,30d" in query
        )
        assert KEY not in target  # the key travels in its header only
        assert header(headers, "x-cg-demo-api-key") == KEY

        _, records = step.export()
        assert all(list(r) == EXPORTED for r in records)
        got = {r["coin_id"]: r for r in records}
        assert set(got) == {item["id"] for item in depin_page}
        for item in depin_page:
            record = got[item["id"]]
            assert {k: record[k] for k in KEYS[:-1]} == expected_record(item), item["id"]
            assert ISO_UTC.match(record["fetched_at"])
            fetched = datetime.fromisoformat(record["fetched_at"].replace("Z", "+00:00"))
            assert started - timedelta(seconds=1) <= fetched <= datetime.now(UTC)
        # helium has no 24h _in_currency value: the plain 24h change is used
        assert got["helium"]["change_24h_pct"] == 0.87
        assert got["helium"]["change_30d_pct"] is None
        # render's two 24h values differ: the _in_currency one wins
        assert got["render-token"]["change_24h_pct"] == 1.734
        step.assert_key_never_leaked()


def test_rate_limit_keeps_the_snapshot_and_is_honoured_across_runs(
    runner: CliRunner,
    tmp_path: Path,
    fixtures_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COINGECKO_API_KEY", KEY)
    with LoopbackServer({MARKETS: [Reply(200, served_body(fixtures_dir))]}) as server:
        step = Scenario(runner, tmp_path, server)
        assert step("poll", "--once").exit_code == 0
        good_text, good = step.export()
        assert {r["source"] for r in good} == {"coingecko"}

        # CoinGecko now answers 429 with its real error body and retry-after: 119
        server.routes[MARKETS] = [rate_limited_reply(fixtures_dir)]
        before = len(server.requests)
        limited_at = datetime.now().astimezone()
        limited = step("poll", "--once", "--only", "coingecko")
        assert limited.exit_code == 1
        assert len(server.requests) == before + 1  # one request, no retry loop
        (line,) = lines(limited.stderr)
        assert line.startswith("coingecko:")
        assert "rate limit" in line.lower()

        same_text, _ = step.export()
        assert same_text == good_text

        conn = sqlite3.connect(step.db)
        try:
            status, kind, finished, retry_at = conn.execute(
                "SELECT status, error_kind, finished_at, retry_at FROM polls "
                "WHERE source = 'coingecko' ORDER BY id DESC LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
        assert (status, kind) == ("failed", "rate_limited")
        gap = datetime.fromisoformat(retry_at.replace("Z", "+00:00")) - datetime.fromisoformat(
            finished.replace("Z", "+00:00")
        )
        assert gap == timedelta(seconds=119)

        # right after, a new process honours the stored retry_at: no request at all
        requests_so_far = len(server.requests)
        again = step("poll", "--once", "--only", "coingecko")
        assert again.exit_code == 1
        assert len(server.requests) == requests_so_far
        (line,) = lines(again.stderr)
        assert line.startswith("coingecko:")
        match = re.search(r"rate limited until (\d\d):(\d\d):(\d\d)", line)
        assert match, line
        shown = int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3])
        expected = limited_at + timedelta(seconds=119)
        wanted = expected.hour * 3600 + expected.minute * 60 + expected.second
        assert min((shown - wanted) % 86400, (wanted - shown) % 86400) <= 10

        assert step.export()[0] == good_text
        step.assert_key_never_leaked()
