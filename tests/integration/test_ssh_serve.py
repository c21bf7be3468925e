"""``depin-explorer ssh-serve`` with Debian's OpenSSH client on loopback (issue 16, parts 2-3).

A generated key in a generated authorized_keys file logs in and reads the Overview and the
Rankings from the session's output; any other key and any password are refused; a resize
redraws at the new size; the session past the cap is told to try later; ``q``, a dropped
connection and the idle timeout leave no viewer process behind; the database file and its
writer lock are as they were.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from cache.lock import holder_pid
from tests.support.prom import wait_for
from tests.support.sshclient import (
    fingerprint,
    make_key,
    no_viewer_left,
    plain,
    pty_client,
    require_ssh,
    server_env,
    ssh_serve,
    viewers,
)
from tests.ui.appkit import store_live, store_sample
from tests.ui.rewardskit import rewards_cache

pytestmark = pytest.mark.integration
require_ssh()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "cache.db"
    store_sample(path)
    store_live(path)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pty_size(proc: psutil.Process) -> tuple[int, int]:
    """(columns, rows) of the pty a viewer draws on, read from the server's side."""
    fd = os.open(f"/proc/{proc.pid}/fd/1", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        rows, columns, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    finally:
        os.close(fd)
    return columns, rows


def test_an_authorized_key_sees_the_overview_and_rankings_and_q_ends_it(
    tmp_path: Path, db: Path
) -> None:
    before = _digest(db)
    with ssh_serve(tmp_path, db) as server:
        mine = fingerprint(server.key)
        assert "host key SHA256:" in server.log_text()
        with pty_client(server.ssh_args()) as client:
            client.read_until("Tracked market cap")
            client.read_until("$11.15B")  # the cache's six market caps, summed
            client.read_until("io.net")
            client.read_until("read-only viewer")
            mark = len(client.output)
            client.send(b"2")
            client.read_until("DePIN rankings", since=mark)
            client.read_until("$412.31", since=mark)  # Bittensor's price in the cache
            (viewer,) = viewers(tmp_path)
            env = viewer.environ()
            assert env["TERM"] == "xterm-256color"
            client.send(b"q")
            assert client.wait() == 0
        no_viewer_left(server, [viewer])
        log = server.log_text()
    assert re.search(rf"session start 127\.0\.0\.1:\d+ {re.escape(mine)} pid \d+", log), log
    assert re.search(rf"session end 127\.0\.0\.1:\d+ {re.escape(mine)} after \d+ s: exit 0", log)
    state = tmp_path / "xdg-state" / "depin-explorer" / "ssh-sessions"
    safe = mine.replace(":", "-", 1).replace("+", "-").replace("/", "_")
    assert (state / f"{safe}.json").is_file()  # this key's own watchlist and last look
    assert (state / f"{safe}.json").stat().st_mode & 0o777 == 0o600
    assert _digest(db) == before
    assert holder_pid(db) is None


def test_a_key_not_in_the_file_and_a_password_are_refused(tmp_path: Path, db: Path) -> None:
    stranger = make_key(tmp_path, "stranger")
    askpass = tmp_path / "askpass"
    asked = tmp_path / "asked"
    askpass.write_text(f"#!/bin/sh\necho asked >> {asked}\necho hunter2\n")
    askpass.chmod(0o700)
    with ssh_serve(tmp_path, db) as server:
        wrong = subprocess.run(
            [*server.ssh_args(stranger), "true"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert wrong.returncode == 255
        assert "Permission denied (publickey)" in wrong.stderr
        # a password typed without a terminal: ssh asks SSH_ASKPASS (forced), from a new session
        password = [
            "setsid",
            "-w",
            *server.ssh_args(
                None,
                "-o",
                "PreferredAuthentications=password,keyboard-interactive",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
                tty=False,
                batch=False,
            ),
            "true",
        ]
        env = {
            **server_env(tmp_path),
            "SSH_ASKPASS": str(askpass),
            "SSH_ASKPASS_REQUIRE": "force",
            "DISPLAY": ":0",
        }
        refused = subprocess.run(
            password, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL
        )
        assert refused.returncode == 255, refused.stderr
        assert "Permission denied" in refused.stderr
        # the server offers no password method at all: ssh never needed to ask for one
        assert "(publickey)" in refused.stderr
        assert not asked.exists()
        # the server logs a refusal when the connection is gone, maybe after ssh has exited
        wait_for(
            lambda: server.log_text().count("no authorized key") == 2,
            timeout=10,
            what="both refusals logged",
        )
        log = server.log_text()
    assert "session start" not in log
    assert not viewers(tmp_path)


def test_a_resize_redraws_the_session_at_the_new_size(tmp_path: Path, db: Path) -> None:
    with ssh_serve(tmp_path, db) as server:
        with pty_client(server.ssh_args()) as client:
            client.read_until("2 Rankings")  # the full tab labels: 120 columns
            (viewer,) = viewers(tmp_path)
            assert _pty_size(viewer) == (120, 40)
            mark = len(client.output)
            client.resize(80, 24)
            client.read_until("2 Rank   3 Net", since=mark)  # the short labels of 80 columns
            assert _pty_size(viewer) == (80, 24)
            mark = len(client.output)
            client.resize(120, 40)
            client.read_until("2 Rankings", since=mark)
            client.send(b"q")
            assert client.wait() == 0
        no_viewer_left(server, [viewer])


def test_the_session_past_the_cap_is_told_to_try_later(tmp_path: Path, db: Path) -> None:
    before = _digest(db)
    with ssh_serve(tmp_path, db, "--max-sessions", "2") as server:
        with pty_client(server.ssh_args()) as first, pty_client(server.ssh_args()) as second:
            first.read_until("Tracked market cap")
            second.read_until("Tracked market cap")
            with pty_client(server.ssh_args()) as third:
                shown = third.read_until("2 sessions are open; try later")
                assert third.wait() == 2
            assert "Tracked market cap" not in shown
            assert len(viewers(tmp_path)) == 2  # no process was started for the third
            first.send(b"q")
            assert first.wait() == 0
            with pty_client(server.ssh_args()) as fourth:  # a place is free again
                fourth.read_until("Tracked market cap")
                fourth.send(b"q")
                assert fourth.wait() == 0
            second.send(b"q")
            assert second.wait() == 0
        no_viewer_left(server)
        assert "2 sessions open" in server.log_text()
    assert _digest(db) == before
    assert holder_pid(db) is None


def test_a_dropped_connection_leaves_no_viewer_behind(tmp_path: Path, db: Path) -> None:
    with ssh_serve(tmp_path, db) as server:
        with pty_client(server.ssh_args()) as client:
            client.read_until("Tracked market cap")
            (viewer,) = viewers(tmp_path)
            client.kill()  # the client's end vanishes as with a closed laptop lid
        no_viewer_left(server, [viewer])
        # logged once the server has reaped the viewer, an instant after it is gone
        wait_for(lambda: "client gone" in server.log_text(), timeout=10, what="end logged")


def test_an_idle_session_is_closed_with_a_message(tmp_path: Path, db: Path) -> None:
    with ssh_serve(tmp_path, db, "--idle-timeout", "4") as server:
        with pty_client(server.ssh_args()) as client:
            client.read_until("Tracked market cap")
            client.send(b"2")  # a key press starts the wait again
            client.read_until("DePIN rankings")
            shown = client.read_until("no key pressed for 4 s: session closed")
            assert client.wait() == 1
        assert "\x1b[?1049l" in client.output.decode(errors="replace")[-400:]  # screen restored
        assert shown
        no_viewer_left(server)
        assert "no key pressed" in server.log_text()


def test_the_client_env_passes_only_term_and_colour_and_locale(tmp_path: Path, db: Path) -> None:
    with ssh_serve(tmp_path, db) as server:
        args = server.ssh_args(
            None,
            "-o",
            "SetEnv=NO_COLOR=1 COLORTERM=truecolor LC_TIME=C.UTF-8 PYTHONSTARTUP=/x EVIL=1",
        )
        with pty_client(args) as client:
            client.read_until("Tracked market cap")
            (viewer,) = viewers(tmp_path)
            env = viewer.environ()
            client.send(b"q")
            assert client.wait() == 0
    assert env["NO_COLOR"] == "1" and env["COLORTERM"] == "truecolor"
    assert env["LC_TIME"] == "C.UTF-8" and env["TERM"] == "xterm-256color"
    assert "PYTHONSTARTUP" not in env and "EVIL" not in env
    assert set(env) <= {
        "PATH",
        "HOME",
        "TZ",
        "TERM",
        "NO_COLOR",
        "COLORTERM",
        "LC_TIME",
        "LANG",
        *(f"XDG_{n}_HOME" for n in ("CONFIG", "DATA", "STATE", "CACHE")),
    }, sorted(env)


def test_exec_sftp_and_forwarding_are_refused(tmp_path: Path, db: Path) -> None:
    with ssh_serve(tmp_path, db) as server:

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*server.ssh_args(None, *args[:-1], tty=False), *args[-1:]],
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )

        command = run("cat /etc/passwd")
        assert command.returncode != 0 and "root:" not in command.stdout
        assert "exec request failed" in command.stderr
        sftp = run("-s", "sftp")
        assert sftp.returncode != 0 and "subsystem request failed" in sftp.stderr
        forward = run("-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9", "-N", "")
        assert forward.returncode != 0 and "forwarding failed" in forward.stderr
        log = server.log_text()
    assert "refused exec" in log and "refused subsystem 'sftp'" in log
    assert "session start" not in log
    assert not viewers(tmp_path)


def _state(tmp_path: Path, key: Path) -> dict[str, Any]:
    safe = fingerprint(key).replace(":", "-", 1).replace("+", "-").replace("/", "_")
    path = tmp_path / "xdg-state" / "depin-explorer" / "ssh-sessions" / f"{safe}.json"
    databases = json.loads(path.read_text())["databases"]
    (mine,) = databases.values()
    return dict(mine)


def test_each_key_has_its_own_watchlist_and_the_host_key_is_the_printed_one(
    tmp_path: Path, db: Path
) -> None:
    alice, bob = make_key(tmp_path, "alice"), make_key(tmp_path, "bob")
    with ssh_serve(tmp_path, db, authorized=[alice, bob]) as server:
        with pty_client(server.ssh_args(alice)) as client:
            client.read_until("Tracked market cap")
            client.send(b"2")
            client.read_until("$412.31")
            client.send(b"f")  # star the coin under the cursor (saved at once)
            client.send(b"q")
            assert client.wait() == 0
        with pty_client(server.ssh_args(bob)) as client:
            client.read_until("Tracked market cap")
            client.send(b"q")
            assert client.wait() == 0
        log = server.log_text()
    assert len(_state(tmp_path, alice)["watchlist"]) == 1
    assert "watchlist" not in _state(tmp_path, bob)
    assert "last_looked" in _state(tmp_path, bob)
    host_key = tmp_path / "xdg-state" / "depin-explorer" / "ssh_host_ed25519_key"
    assert host_key.stat().st_mode & 0o777 == 0o600
    _, keygen = require_ssh()
    listed = subprocess.run(
        [keygen, "-l", "-E", "sha256", "-f", str(host_key)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()[1]
    assert f"host key {listed} (ED25519) (created now)" in log


def test_stopping_the_server_ends_its_sessions_with_a_message(tmp_path: Path, db: Path) -> None:
    with ssh_serve(tmp_path, db) as server:
        with pty_client(server.ssh_args()) as client:
            client.read_until("Tracked market cap")
            (viewer,) = viewers(tmp_path)
            server.proc.send_signal(signal.SIGTERM)
            client.read_until("the server is stopping")
            assert client.wait() == 1
        assert server.proc.wait(30) == 0
        assert not viewer.is_running()
        assert not viewers(tmp_path)


def test_a_session_cannot_save_a_screenshot_on_the_server(tmp_path: Path, db: Path) -> None:
    downloads = tmp_path / "home" / "Downloads"  # where Textual's Screenshot command saves
    downloads.mkdir(parents=True)
    with ssh_serve(tmp_path, db) as server, pty_client(server.ssh_args()) as client:
        client.read_until("Tracked market cap")
        client.send(b"\x10")  # ctrl+p: the command palette
        client.read_until("Theme")  # the palette lists Textual's system commands
        mark = len(client.output)
        client.send(b"screenshot")
        client.read_until("screenshot", since=mark)
        client.send(b"\r")
        time.sleep(2.0)
        shown = plain(bytes(client.output[mark:]))
        # ctrl+q quits from the palette too; Escape then q could reach a busy viewer as alt+q
        client.send(b"\x11")
        assert client.wait() == 0
    assert "Save an SVG" not in shown
    assert list(downloads.iterdir()) == []


def test_the_keys_file_is_read_at_each_login_with_its_from_patterns(
    tmp_path: Path, db: Path
) -> None:
    carol = make_key(tmp_path, "carol")
    with ssh_serve(tmp_path, db) as server:
        keys = tmp_path / "authorized_keys"
        first = keys.read_text()

        def login(key: Path) -> str:
            done = subprocess.run(
                [*server.ssh_args(key, tty=False), "true"],
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
            return done.stderr

        # in: authenticated, then its command refused (a session runs the viewer only)
        assert "exec request failed" in login(server.key)
        assert "Permission denied (publickey)" in login(carol)
        carol_pub = Path(f"{carol}.pub").read_text()
        keys.write_text(first + f'from="10.9.9.9" {carol_pub}')  # not from this address
        assert "Permission denied (publickey)" in login(carol)
        keys.write_text(first + f'from="127.0.0.1" {carol_pub}')
        assert "exec request failed" in login(carol)  # added without a restart
        keys.write_text(f'from="127.0.0.1" {carol_pub}')  # the first key taken out
        assert "Permission denied (publickey)" in login(server.key)
    assert not viewers(tmp_path)


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path, db: Path) -> None:
    key = make_key(tmp_path, "client")
    (tmp_path / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "explorer",
                "ssh-serve",
                "--port",
                str(port),
                "--db",
                str(db),
                "--authorized-keys",
                str(tmp_path / "authorized_keys"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=server_env(tmp_path),
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 1, done.stderr
    assert f"depin-explorer: cannot listen on 127.0.0.1:{port}: " in done.stderr
    assert "Traceback" not in done.stderr


def test_a_key_that_turned_private_on_gets_it_at_its_next_login(tmp_path: Path) -> None:
    rewards_cache(tmp_path)  # io.net rewards up to the kit's "now", shown with --at
    db = tmp_path / "cache.db"
    key = make_key(tmp_path, "alice")
    with ssh_serve(tmp_path, db, "--at", "2026-11-25T12:00:00Z", authorized=[key]) as server:
        with pty_client(server.ssh_args(key)) as client:
            client.read_until("Tracked market cap")
            client.send(b"5")  # Rewards: gpu-01 earned 4.75 IO in the last 24 h
            mark = len(client.output)
            client.read_until("4.75", since=mark)
            client.send(b"p")
            client.read_until("private: earnings hidden", since=mark)
            client.send(b"q")
            assert client.wait() == 0
        with pty_client(server.ssh_args(key)) as client:
            client.read_until("Tracked market cap")
            client.send(b"5")
            mark = len(client.output)
            shown = client.read_until("•••", since=mark)
            client.send(b"q")
            assert client.wait() == 0
    assert "4.75" not in shown
    path = tmp_path / "xdg-state" / "depin-explorer" / "ssh-sessions"
    (state,) = path.glob("*.json")
    assert json.loads(state.read_text())["private"] is True
