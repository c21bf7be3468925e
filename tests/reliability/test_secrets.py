"""Secrets of docs/reliability.md: SE-01..SE-07 (SE-08 is tests/unit/test_cache_export.py).

Permission cases run as an unprivileged user in a forked child (tests/support/privdrop.py): root
reads any file, so a permission test run as root proves nothing.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.config import Config, ConfigError, Secrets, load_config, load_secrets
from explorer.logsetup import setup_logging
from explorer.paths import private_write
from explorer.poller import Poller
from explorer.state import UserState
from tests.support.privdrop import ChildError, Unprivileged

ROOT = Path(__file__).resolve().parents[2]
KEY = "CG-reliabilitySecret0123456789"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2VjcmV0LXRva2VuLXZhbHVl"
SECRETS = f'COINGECKO_API_KEY = "{KEY}"\nIONET_TOKEN = "{TOKEN}"\n'


def write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


# -- SE-01 / SE-02: a file that holds secrets must be private; the config never is refused -------


def test_se01_secrets_file_readable_by_others_is_refused_with_the_hint(
    unprivileged: Unprivileged,
) -> None:
    folder = unprivileged.home
    secrets = write(folder / "secrets.toml", SECRETS, 0o644)
    config = write(folder / "config.toml", "[ui]\nstart_screen = 'rankings'\n", 0o644)
    if os.geteuid() == 0:
        for path in (secrets, config):
            os.chown(path, unprivileged.uid, unprivileged.gid)

    def attempt() -> str:
        try:
            load_secrets({}, secrets)
        except ConfigError as exc:
            return str(exc)
        return "loaded"

    refused = unprivileged.run(attempt)
    assert f"chmod 600 {secrets}" in refused and "0644" in refused
    assert KEY not in refused

    os.chmod(secrets, 0o600)
    loaded = unprivileged.run(lambda: load_secrets({}, secrets).coingecko_api_key)
    assert loaded is not None and loaded.get_secret_value() == KEY
    # a config without secrets is never refused for its mode, even 0644 (or 0666)
    os.chmod(config, 0o666)
    assert unprivileged.run(lambda: load_config(config).ui.start_screen) == "rankings"


def test_se02_secrets_file_owned_by_another_uid_is_refused(unprivileged: Unprivileged) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file to another owner")
    secrets = write(unprivileged.home / "secrets.toml", SECRETS, 0o600)
    os.chmod(secrets, 0o644)  # readable by the child, so only the owner rule can refuse it
    with pytest.raises(ChildError, match="owned by uid 0, not you") as caught:
        unprivileged.run(lambda: load_secrets({}, secrets))
    assert caught.value.kind == "ConfigError" and KEY not in str(caught.value)


def test_se01_the_environment_wins_and_the_cli_says_what_to_do(tmp_path: Path) -> None:
    secrets = write(tmp_path / "secrets.toml", SECRETS, 0o640)
    config = write(tmp_path / "config.toml", "", 0o644)
    result = CliRunner().invoke(cli, ["--config", str(config), "config", "check"])
    assert result.exit_code == 2 and f"chmod 600 {secrets}" in result.output
    os.chmod(secrets, 0o600)
    env = {"COINGECKO_API_KEY": "CG-fromTheEnvironment99"}
    assert (
        load_secrets(env, secrets).coingecko_api_key.get_secret_value()
        == env[  # type: ignore[union-attr]
            "COINGECKO_API_KEY"
        ]
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "config", "check"])
    assert result.exit_code == 0 and KEY not in result.output and "…6789" in result.output


def test_se01_bad_secrets_files_never_echo_their_content(tmp_path: Path) -> None:
    bad = write(tmp_path / "secrets.toml", f'COINGECKO_API_KEY = "{KEY}\n', 0o600)
    with pytest.raises(ConfigError) as caught:
        load_secrets({}, bad)
    assert KEY not in str(caught.value)
    write(bad, f'OTHER = "{KEY}"\n', 0o600)
    with pytest.raises(ConfigError, match="unknown name 'OTHER'") as caught:
        load_secrets({}, bad)
    assert KEY not in str(caught.value)


def test_se01_a_directory_named_secrets_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "secrets.toml").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_secrets({}, tmp_path / "secrets.toml")
    config = write(tmp_path / "config.toml", "", 0o644)
    result = CliRunner().invoke(cli, ["--config", str(config), "config", "check"])
    assert result.exit_code == 2 and "not a regular file" in result.output
    assert "Traceback" not in result.output


# -- SE-03: files the app creates are private from creation ---------------------------------------


def test_se03_every_file_the_app_creates_is_0600_in_a_0700_dir(tmp_path: Path) -> None:
    config = tmp_path / "new-config" / "config.toml"
    result = CliRunner().invoke(cli, ["--config", str(config), "config", "init"])
    assert result.exit_code == 0
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700

    state = tmp_path / "state" / "state.json"
    UserState(state, tmp_path / "x.db").set_watchlist({"helium"})
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700

    log = tmp_path / "logs" / "depin-explorer.log"
    setup_logging(log, [KEY])
    logging.getLogger("reliability").warning("x" * 600_000)  # past 1 MiB: rotate once
    logging.getLogger("reliability").warning("x" * 600_000)
    logging.getLogger("reliability").warning("after the rotation")
    for path in log.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert len(list(log.parent.iterdir())) >= 2
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700

    private_write(tmp_path / "replaced.txt", "a")  # a wider file left behind is replaced, not kept
    os.chmod(tmp_path / "replaced.txt", 0o644)
    private_write(tmp_path / "replaced.txt", "b")
    assert stat.S_IMODE((tmp_path / "replaced.txt").stat().st_mode) == 0o600


# -- SE-04: no key in any log line over a poll cycle with a 401 and a 500 -----------------------


async def test_se04_debug_logs_of_a_401_and_a_500_never_hold_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "debug.log"
    setup_logging(log, [KEY])
    for name in ("httpx", "httpcore"):  # everything, not the quiet default
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    statuses = iter([500, 500, 500, 401])

    def reply(request: httpx.Request) -> httpx.Response:
        status = next(statuses, 401)
        body = f'{{"error": "bad key {request.headers.get("x-cg-demo-api-key")}"}}'
        return httpx.Response(status, headers={"content-type": "application/json"}, text=body)

    base = {name: {"enabled": False} for name in ("ionet", "akash", "filecoin", "helium", "sample")}
    base["coingecko"] = {"base_url": "http://127.0.0.1:9/api/v3", "timeout": 5}
    config = Config.model_validate({"sources": base, "fleet": {"local": {"enabled": False}}})
    secrets = load_secrets({"COINGECKO_API_KEY": KEY})
    poller = Poller(config, secrets, tmp_path / "c.db", transport=httpx.MockTransport(reply))
    await poller.prepare()
    try:
        first = await poller.poll_once()  # 500 three times
        poller.schedules["coingecko"].breaker.record_success()
        second = await poller.poll_once()  # 401
    finally:
        await poller.close()
    assert first[0].record.error.kind == "http_5xx"  # type: ignore[union-attr]
    assert second[0].record.error.kind == "auth"  # type: ignore[union-attr]
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert KEY not in log.read_text()
    assert len(log.read_text()) > 0
    assert all(KEY not in record.getMessage() for record in caplog.records)


# -- SE-05: a crash prints no local variables, so no key --------------------------------------

CRASH = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from explorer.app import DepinExplorerApp
    from explorer.config import Config, load_secrets

    class Crashing(DepinExplorerApp):
        def on_mount(self):
            api_key = self.secrets.coingecko_api_key.get_secret_value()
            headers = {"x-cg-demo-api-key": api_key}
            raise RuntimeError("poll crashed")

    secrets = load_secrets({"COINGECKO_API_KEY": sys.argv[1]})
    app = Crashing(Config(), secrets, Path(sys.argv[2]), offline=True,
                   state_path=Path(sys.argv[3]), poll=False)
    app.run(headless=True)
    """
)


def test_se05_crash_output_has_no_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", CRASH, KEY, str(tmp_path / "c.db"), str(tmp_path / "s.json")],
        capture_output=True,
        timeout=60,
        env=env,
        cwd=ROOT,
        check=False,
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert "poll crashed" in output  # the crash is reported...
    assert KEY not in output and "headers" not in output.split("poll crashed")[-1]
    assert "api_key =" not in output  # ...without its locals


# -- SE-06: screenshots never show a key ----------------------------------------------------------


async def test_se06_screenshot_of_sources_and_every_screen_has_no_key(tmp_path: Path) -> None:
    from explorer.app import DepinExplorerApp
    from tests.support.ui import settle
    from tests.ui.appkit import frozen, store_live

    store_live(tmp_path / "cache.db")
    secrets = load_secrets({"COINGECKO_API_KEY": KEY, "IONET_TOKEN": TOKEN})
    app = DepinExplorerApp(
        Config(),
        secrets,
        tmp_path / "cache.db",
        offline=True,
        state_path=tmp_path / "s.json",
        clock=frozen,
        poll=False,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        for key in ("7", "1", "2", "3", "4", "6"):
            await pilot.press(key)
            await settle(pilot)
            svg = app.export_screenshot()
            assert KEY not in svg and TOKEN not in svg and TOKEN[-20:] not in svg, key


# -- SE-07: there is no keyring: a broken one changes nothing ------------------------------------


def test_se07_no_keyring_is_used_and_a_failing_one_is_harmless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = types.ModuleType("keyring")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("No recommended backend was available (fail.Keyring)")

    failing.get_password = broken  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", failing)
    secrets = write(tmp_path / "secrets.toml", SECRETS, 0o600)
    loaded = load_secrets({}, secrets)
    assert loaded.coingecko_api_key.get_secret_value() == KEY  # type: ignore[union-attr]
    assert load_secrets({"IONET_TOKEN": TOKEN}).ionet_token is not None
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, explorer.cli, explorer.poller, explorer.app; "
            "print('keyring' in sys.modules)",
        ],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert probe.stdout.strip() == b"False"
    assert isinstance(Secrets(), Secrets)
