"""``serve``'s command line and its token file: defaults, options passed to viewers, rotation."""

from __future__ import annotations

import gc
import logging
import os
import socket
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

import explorer.serve as serve_cli
from explorer.cli import cli
from explorer.serve import is_loopback, page_url
from explorer.serve_app import ServeSettings
from explorer.serve_token import load_token, token_matches, token_path


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[ServeSettings]:
    """The settings ``serve`` would run with; the server itself is not started."""
    seen: list[ServeSettings] = []

    async def fake_serve(settings: ServeSettings) -> None:
        seen.append(settings)

    monkeypatch.setattr(serve_cli, "_serve", fake_serve)
    return seen


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_token_is_made_on_first_use_0600_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "serve-token"
    first = load_token(path)
    assert first.created and first.reason is None
    assert len(first.value) >= 43
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    again = load_token(path)
    assert again.value == first.value and not again.created


def test_new_token_rotates_it(tmp_path: Path) -> None:
    path = tmp_path / "serve-token"
    old = load_token(path).value
    new = load_token(path, rotate=True)
    assert new.created and new.value != old
    assert path.read_text().strip() == new.value
    assert mode(path) == 0o600


def test_a_token_file_others_can_read_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "serve-token"
    old = load_token(path).value
    os.chmod(path, 0o644)
    replaced = load_token(path)
    assert replaced.value != old and replaced.reason is not None
    assert "readable by other users" in replaced.reason
    assert mode(path) == 0o600


def test_a_short_token_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "serve-token"
    path.write_text("hunter2\n")
    os.chmod(path, 0o600)
    replaced = load_token(path)
    assert replaced.value != "hunter2" and replaced.reason is not None


def test_token_matches_only_the_token() -> None:
    token = "a" * 43
    assert token_matches(token, token)
    for other in (None, "", "a" * 42, "a" * 44, "b" * 43, "A" * 43):
        assert not token_matches(other, token)


def test_serve_binds_loopback_8080_by_default(
    runner: CliRunner, started: list[ServeSettings], tmp_path: Path
) -> None:
    db = tmp_path / "cache.db"
    result = runner.invoke(cli, ["serve", "--db", str(db)])
    assert result.exit_code == 0, result.output
    (settings,) = started
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.max_sessions == 8
    assert settings.idle_timeout == 1800
    assert settings.viewer_args == ["--db", str(db.resolve())]
    assert settings.token == token_path().read_text().strip()
    assert settings.sessions_dir.is_relative_to(token_path().parent)


def test_serve_passes_the_global_options_to_every_viewer(
    runner: CliRunner, started: list[ServeSettings], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    result = runner.invoke(
        cli,
        [
            "--offline",
            "serve",
            "--config",
            str(config),
            "--db",
            "rel.db",
            "--private",
            "--at",
            "-3h",
            "--max-sessions",
            "2",
            "--idle-timeout",
            "60",
        ],
    )
    assert result.exit_code == 0, result.output
    (settings,) = started
    args = list(settings.viewer_args)
    assert args[args.index("--db") + 1] == str(Path("rel.db").resolve())  # viewers' cwd may differ
    assert args[args.index("--config") + 1] == str(config.resolve())
    assert "--offline" in args and "--private" in args
    assert args[args.index("--at") + 1] == "-3h"
    assert (settings.max_sessions, settings.idle_timeout) == (2, 60)


def test_new_token_on_the_command_line_rotates(
    runner: CliRunner, started: list[ServeSettings], tmp_path: Path
) -> None:
    db = str(tmp_path / "cache.db")
    assert runner.invoke(cli, ["serve", "--db", db]).exit_code == 0
    assert runner.invoke(cli, ["serve", "--db", db]).exit_code == 0
    assert runner.invoke(cli, ["serve", "--db", db, "--new-token"]).exit_code == 0
    first, second, third = (s.token for s in started)
    assert first == second != third
    assert mode(token_path()) == 0o600


@pytest.mark.parametrize(
    "args",
    [["--at", "not a time"], ["--max-sessions", "0"], ["--idle-timeout", "0"], ["--port", "-1"]],
)
def test_bad_options_exit_2_before_anything_starts(
    runner: CliRunner, started: list[ServeSettings], args: list[str], tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["serve", "--db", str(tmp_path / "c.db"), *args])
    assert result.exit_code == 2, result.output
    assert started == []
    assert not token_path().exists()


def test_a_port_in_use_is_one_line_and_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(cli, ["serve", "--db", str(tmp_path / "c.db"), "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


def _settings(host: str) -> ServeSettings:
    return ServeSettings(token="T" * 43, viewer_args=[], sessions_dir=Path("."), host=host)


def test_the_start_prints_the_url_with_the_token_on_one_line(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "explorer.serve")
    serve_cli._announce(_settings("127.0.0.1"), 8123)
    out = capsys.readouterr().out
    assert out == f"http://127.0.0.1:8123/?token={'T' * 43}\n"
    assert "plain HTTP" not in caplog.text
    assert "T" * 43 not in caplog.text


def test_beyond_loopback_the_start_says_how_it_is_protected(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "explorer.serve")
    serve_cli._announce(_settings("0.0.0.0"), 8080)
    assert capsys.readouterr().out.startswith("http://127.0.0.1:8080/?token=")
    assert "needs the token" in caplog.text
    assert "plain HTTP" in caplog.text and "TLS reverse proxy" in caplog.text


@pytest.mark.parametrize(
    ("host", "loopback", "url"),
    [
        ("127.0.0.1", True, "http://127.0.0.1:1/?token=x"),
        ("localhost", True, "http://localhost:1/?token=x"),
        ("::1", True, "http://[::1]:1/?token=x"),
        ("0.0.0.0", False, "http://127.0.0.1:1/?token=x"),
        ("::", False, "http://[::1]:1/?token=x"),
        ("192.0.2.7", False, "http://192.0.2.7:1/?token=x"),
    ],
)
def test_hosts_and_urls(host: str, loopback: bool, url: str) -> None:
    assert is_loopback(host) is loopback
    assert page_url(host, 1, "x") == url


def test_serve_help_names_the_options(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--max-sessions", "--idle-timeout", "--new-token", "--db"):
        assert option in result.output
    assert "127.0.0.1" in result.output


def test_the_browser_tests_skip_without_chromium_and_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.support.browser import require_chromium

    monkeypatch.setenv("CHROMIUM_BIN", str(tmp_path / "no-chromium"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium not installed"):
        require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but chromium not installed"):
        require_chromium()


@pytest.mark.parametrize("private", [True, False])
def test_serve_private_reaches_every_browser_viewer_fixed(
    runner: CliRunner,
    started: list[ServeSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    private: bool,
) -> None:
    from explorer.app import DepinExplorerApp

    result = runner.invoke(cli, ["serve", "--db", str(tmp_path / "c.db")] + ["--private"] * private)
    assert result.exit_code == 0, result.output
    (settings,) = started
    viewers: list[tuple[bool, bool]] = []
    monkeypatch.setattr(gc, "disable", lambda: None)  # the app that turns it back on never runs
    monkeypatch.setattr(
        DepinExplorerApp, "run", lambda app: viewers.append((app.private, app.private_fixed))
    )
    state = ["--state-file", str(tmp_path / "session-x.json")]
    # what the server runs after ``python -m explorer`` for each browser session
    viewer = runner.invoke(cli, ["--viewer", "browser", *state, *settings.viewer_args])
    assert viewer.exit_code == 0, viewer.output
    assert viewers == [(private, private)]
