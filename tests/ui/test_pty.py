"""The real app in a real pty: no raw control sequence from hostile data reaches the terminal
(reliability.md UI-02). Textual passes ESC, OSC and C1 bytes straight through, so only the
app's own sanitising stands between a project name and the operator's terminal."""

from __future__ import annotations

import os
from pathlib import Path

from tests.corpus import FORBIDDEN_SEQUENCES
from tests.support.ui import run_in_pty
from tests.ui.hostile import store_hostile_rankings


def test_hostile_names_never_reach_the_terminal_raw(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    trap = tmp_path / "trap"
    trap.mkdir()
    store_hostile_rankings(db, trap)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.update(TERM="xterm-256color", COLUMNS="120", LINES="40", TZ="UTC")
    keys = [
        (4.0, b"2"),
        (6.0, b"\r"),
        (8.0, b"\x1b"),
        (8.5, b"j"),
        (9.0, b"\r"),
        (11.0, b"\x1b"),
        (11.5, b"1"),
        (13.0, b"q"),
    ]
    output, code = run_in_pty(["--offline", "--db", str(db)], keys, env)
    assert code == 0, output[-2000:]
    assert b"DePIN rankings" in output or b"DePIN" in output
    text = output.decode("utf-8", errors="replace")
    for sequence in FORBIDDEN_SEQUENCES:
        assert sequence not in text, f"{sequence!r} reached the terminal"
    assert "\u241b" in text  # ESC from the data is shown as the visible ␛ instead
    assert list(trap.iterdir()) == []


def test_a_bad_config_in_the_tui_is_one_line_and_status_2(tmp_path: Path) -> None:
    # The TUI paints before it validates the config (issue 8's first paint); the error must
    # still end it with the CLI's one line and exit status, the terminal given back.
    config = tmp_path / "config.toml"
    config.write_text("[sources.coingecko]\nintervall = 60\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.update(TERM="xterm-256color", TZ="UTC", HOME=str(tmp_path))
    for name in ("DATA", "STATE", "CONFIG"):
        env[f"XDG_{name}_HOME"] = str(tmp_path / name.lower())
    args = ["--offline", "--config", str(config), "--db", str(tmp_path / "cache.db")]
    output, code = run_in_pty(args, [], env, limit=20.0)
    text = output.decode("utf-8", errors="replace")
    assert code == 2, text[-2000:]
    assert f"depin-explorer: config error: {config}: sources.coingecko.intervall" in text
    assert "Traceback" not in text
    assert text.rstrip().endswith("Extra inputs are not permitted")  # after the app's screen
    assert not (tmp_path / "cache.db").exists()  # nothing was opened for writing


def test_a_malformed_config_file_ends_the_tui_before_anything_is_drawn(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[sources.coingecko\ninterval = 60\n")  # the usual typo: a lost bracket
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.update(TERM="xterm-256color", TZ="UTC", HOME=str(tmp_path))
    args = ["--offline", "--config", str(config), "--db", str(tmp_path / "cache.db")]
    output, code = run_in_pty(args, [], env, limit=20.0)
    text = output.decode("utf-8", errors="replace")
    assert code == 2, text[-2000:]
    assert f"depin-explorer: config error: {config}: not valid TOML" in text
    assert "\x1b[?1049h" not in text  # the alternate screen was never entered: no flash
