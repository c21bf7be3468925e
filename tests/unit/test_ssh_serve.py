"""ssh-serve without a client: refusals at start, the host key, what a session's viewer gets."""

from __future__ import annotations

import gc
import json
import stat
from pathlib import Path

import asyncssh
import pytest
from click.testing import CliRunner, Result

from explorer.cli import Globals, cli
from explorer.paths import state_dir
from explorer.ssh_serve import (
    check_authorized_keys,
    host_key_path,
    is_loopback,
    load_host_key,
    viewer_args,
)
from explorer.ssh_session import ServeSettings, clamp_size, key_file_name, viewer_env
from explorer.state import UserState


def run(runner: CliRunner, *args: object) -> Result:
    return runner.invoke(cli, [str(a) for a in args])


def public_key() -> str:
    key = asyncssh.generate_private_key("ssh-ed25519", comment="alice@laptop")
    return key.export_public_key().decode()


def test_a_missing_authorized_keys_file_is_refused_with_exit_2(
    runner: CliRunner, tmp_path: Path
) -> None:
    missing = tmp_path / "nope"
    result = run(runner, "ssh-serve", "--authorized-keys", missing, "--port", 0)
    assert result.exit_code == 2
    assert f"no authorized keys file {missing}" in result.output
    assert "one per line" in result.output
    assert not host_key_path().exists()  # refused before anything is created


@pytest.mark.parametrize("text", ["", "\n\n", "# alice's key, removed\n"])
def test_an_authorized_keys_file_without_a_key_is_refused(
    runner: CliRunner, tmp_path: Path, text: str
) -> None:
    path = tmp_path / "authorized_keys"
    path.write_text(text)
    result = run(runner, "ssh-serve", "--authorized-keys", path, "--port", 0)
    assert result.exit_code == 2
    assert f"{path} holds no key" in result.output


def test_an_authorized_keys_file_of_malformed_lines_is_refused(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "authorized_keys"
    path.write_text("ssh-ed25519 not-base64!!\nssh-rsa\n")
    result = run(runner, "ssh-serve", "--authorized-keys", path, "--port", 0)
    assert result.exit_code == 2
    assert f"{path} holds no key (every line is malformed)" in result.output
    assert "Traceback" not in result.output


def test_malformed_lines_are_skipped_as_sshd_skips_them(tmp_path: Path) -> None:
    path = tmp_path / "authorized_keys"
    path.write_text(
        f'# the team\n{public_key()}ssh-ed25519 not-base64!!\n\nfrom="127.0.0.1" {public_key()}'
    )
    assert check_authorized_keys(path) == (2, [3])


def test_the_default_authorized_keys_is_the_users(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    result = run(runner, "ssh-serve", "--port", 0)
    assert result.exit_code == 2
    assert f"no authorized keys file {tmp_path / '.ssh' / 'authorized_keys'}" in result.output


def test_the_host_key_is_created_0600_once_then_reused() -> None:
    path = host_key_path()
    assert path.parent == state_dir()
    key, created = load_host_key(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again, created = load_host_key(path)
    assert not created
    assert again.get_fingerprint("sha256") == key.get_fingerprint("sha256")
    assert key.get_algorithm() == "ssh-ed25519"


def test_a_host_key_others_can_read_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    load_host_key(host_key_path())
    host_key_path().chmod(0o640)
    keys = tmp_path / "authorized_keys"
    keys.write_text(public_key())
    result = run(runner, "ssh-serve", "--authorized-keys", keys, "--port", 0)
    assert result.exit_code == 2
    assert "is open to others (mode 640)" in result.output
    assert f"chmod 600 {host_key_path()}" in result.output


def test_the_sessions_own_options_are_not_the_servers(runner: CliRunner, tmp_path: Path) -> None:
    keys = tmp_path / "authorized_keys"
    keys.write_text(public_key())
    result = run(runner, "--viewer", "ssh", "ssh-serve", "--authorized-keys", keys)
    assert result.exit_code == 2
    assert "the sessions' own options" in result.output


def test_a_key_fingerprint_becomes_a_file_name() -> None:
    name = key_file_name("SHA256:ab+c/d9Z")
    assert name == "SHA256-ab-c_d9Z"
    assert "/" not in key_file_name(asyncssh.import_public_key(public_key()).get_fingerprint())


def test_the_viewer_gets_the_servers_paths_and_only_the_clients_accepted_env() -> None:
    server = {
        "PATH": "/usr/bin",
        "HOME": "/home/op",
        "XDG_STATE_HOME": "/s",
        "DEPIN_EXPLORER_CONFIG": "/c.toml",
        "COINGECKO_API_KEY": "CG-secret",  # a viewer never polls: it needs no key
        "SSH_AUTH_SOCK": "/tmp/agent",
    }
    client = {
        "NO_COLOR": "1",
        "COLORTERM": "truecolor",
        "LANG": "de_DE.UTF-8",
        "LC_ALL": "C.UTF-8",
        "LC_TIME": "$(reboot)",  # not a locale name: dropped
        "PATH": "/evil",
        "PYTHONPATH": "/evil",
        "LD_PRELOAD": "/evil.so",
        "TERM": "ignored-here",  # TERM comes from the pty request
    }
    env = viewer_env("screen-256color", client, server)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/op",
        "XDG_STATE_HOME": "/s",
        "DEPIN_EXPLORER_CONFIG": "/c.toml",
        "NO_COLOR": "1",
        "COLORTERM": "truecolor",
        "LANG": "de_DE.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "screen-256color",
    }


@pytest.mark.parametrize("term", [None, "", "xterm\x1b]0;x\x07", "a" * 65])
def test_a_missing_or_odd_term_is_xterm_256color(term: str | None) -> None:
    assert viewer_env(term, {}, {})["TERM"] == "xterm-256color"
    assert viewer_env(term, {}, {})["PATH"]  # the system's default when the server has none


def test_a_clients_size_is_bounded() -> None:
    assert clamp_size(120, 40) == (120, 40)
    assert clamp_size(0, 0) == (80, 24)
    assert clamp_size(65535, 65535) == (1000, 500)


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.5")
    assert not is_loopback("example.org")


def test_the_viewer_is_started_with_the_servers_options_and_the_keys_state(
    tmp_path: Path,
) -> None:
    glob = Globals(config=tmp_path / "c.toml", private=True, at="-3h")
    args = viewer_args(glob, tmp_path / "cache.db")
    assert args == ["--db", str(tmp_path / "cache.db"), "--config", str(tmp_path / "c.toml")] + [
        "--private",
        "--at",
        "-3h",
    ]
    settings = ServeSettings(tmp_path / "keys", 8, 1800, tmp_path / "sessions", args)
    command = settings.viewer_command("SHA256:x/y+z")
    assert command[1:4] == ["-P", "-m", "explorer"]  # -P: the cwd is not on sys.path
    assert command[-4:] == [
        "--viewer",
        "ssh",
        "--state-file",
        str(tmp_path / "sessions" / "SHA256-x_y-z.json"),
    ]


def test_the_state_file_keeps_private_mode_and_reads_an_older_file_without_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "SHA256-key.json"
    old = {"databases": {str(tmp_path / "cache.db"): {"watchlist": ["helium"]}}}
    path.write_text(json.dumps(old))  # written before private mode was kept
    state = UserState(path, tmp_path / "cache.db")
    assert not state.private and not UserState.stored_private(path)
    state.set_private(True)
    again = UserState(path, tmp_path / "cache.db")
    assert again.private and UserState.stored_private(path)
    assert again.watchlist == {"helium"}  # the rest of the file as it was
    again.set_private(False)
    assert not UserState.stored_private(path)
    path.write_text(json.dumps({"private": "yes"}))  # only a JSON true turns it on
    assert not UserState.stored_private(path)
    assert not UserState.stored_private(tmp_path / "none.json")


@pytest.mark.parametrize(("server_private", "fixed"), [(True, True), (False, False)])
def test_ssh_serve_private_reaches_the_viewer_fixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server_private: bool, fixed: bool
) -> None:
    from explorer.app import DepinExplorerApp

    started: list[tuple[bool, bool]] = []
    monkeypatch.setattr(gc, "disable", lambda: None)  # the app that turns it back on never runs
    monkeypatch.setattr(
        DepinExplorerApp, "run", lambda app: started.append((app.private, app.private_fixed))
    )
    args = viewer_args(Globals(private=server_private), tmp_path / "cache.db")
    settings = ServeSettings(tmp_path / "keys", 8, 1800, tmp_path / "sessions", args)
    command = settings.viewer_command("SHA256:abc")
    result = CliRunner().invoke(cli, command[4:])  # what follows ``python -P -m explorer``
    assert result.exit_code == 0, result.output
    assert started == [(server_private, fixed)]
