"""Issue 9 acceptance (UI-01, UI-02): the malicious corpus, served by loopback sources as project
names, GPU model names, node names, node labels and error messages, goes through the real poll
into the cache, then the real app in a real pty visits every screen: zero raw control sequences
reach the terminal, no action fires, nothing crashes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.corpus import FORBIDDEN_SEQUENCES
from tests.support.loopback import LoopbackServer, Reply
from tests.support.ui import run_in_pty
from tests.ui.hostile import raw_corpus

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SHORT = 150  # node names and labels are capped by the config; the long payloads go elsewhere


def served(payloads: list[str]) -> dict[str, list[Reply]]:
    markets = [
        {
            "id": f"coin-{i}",
            "symbol": p[:40],
            "name": p,
            "current_price": 1.0 + i,
            "market_cap": 1e9 - i,
            "market_cap_rank": i + 1,
            "price_change_percentage_24h_in_currency": 1.5,
        }
        for i, p in enumerate(payloads)
    ]
    hardware = {
        "data": {
            "hardware": [
                {"id": i, "name": p, "num_cards": 1, "price": 1.0 + i, "vram_per_card": 24}
                for i, p in enumerate(payloads)
            ]
        }
    }
    body = (FIXTURES / "node_exporter_1.5.0_2cpu.prom").read_bytes()
    escapes = [p for p in payloads if "\x1b" in p or "\x9b" in p]
    hostile_error = json.dumps({"error": " | ".join(escapes[:6] + payloads[:4])}).encode()
    return {
        "/api/v3/coins/markets": [Reply(200, json.dumps(markets).encode())],
        "/v1/io-cloud/vmaas/hardware": [Reply(200, json.dumps(hardware).encode())],
        "/v1/io-explorer/network/info": [Reply(500, hostile_error)],
        "/metrics": [Reply(200, body, {"content-type": "text/plain; version=0.0.4"})],
        "/broken": [Reply(503, hostile_error)],
    }


def config(server: LoopbackServer, payloads: list[str]) -> str:
    short = [p for p in payloads if 0 < len(p) <= SHORT and p.strip()]
    lines = [
        f'[sources.coingecko]\nbase_url = "{server.url}/api/v3"\ntimeout = 5',
        f'[sources.ionet]\nbase_url = "{server.url}"\ntimeout = 5',
        "[sources.akash]\nenabled = false",
        "[sources.filecoin]\nenabled = false",
        "[sources.helium]\nenabled = false",
        "[fleet.local]\nenabled = false",
        "[retention]\nenabled = false",
    ]
    for i, p in enumerate(short):
        # json.dumps escapes every control character as \\uXXXX, which TOML reads the same way
        name = json.dumps(f"{p}#{i}")
        url = f"{server.url}/broken" if i % 5 == 0 else f"{server.url}/metrics"
        lines.append(
            f'[[fleet.targets]]\nname = {name}\nurl = "{url}"\n'
            f"labels = {{ network = {json.dumps(p)}, rack = {json.dumps(p)} }}"
        )
    return "\n".join(lines) + "\n"


def test_corpus_from_loopback_sources_never_reaches_the_terminal_raw(tmp_path: Path) -> None:
    trap = tmp_path / "trap"
    trap.mkdir()
    payloads = raw_corpus(trap)
    db = tmp_path / "cache.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env = {k: v for k, v in env.items() if not k.endswith("_PROXY")}
    for name in ("CONFIG", "DATA", "STATE"):
        env[f"XDG_{name}_HOME"] = str(tmp_path / f"xdg-{name.lower()}")
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", TZ="UTC")
    env.pop("COINGECKO_API_KEY", None)
    with LoopbackServer(served(payloads)) as server:
        cfg = tmp_path / "config.toml"
        cfg.write_text(config(server, payloads), encoding="utf-8")
        poll = subprocess.run(
            [sys.executable, "-m", "explorer", "--config", str(cfg), "--db", str(db), "poll"]
            + ["--once"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert poll.returncode in (0, 1), poll.stderr.decode(errors="replace")[-2000:]
    assert b"Traceback" not in poll.stderr
    conn = sqlite3.connect(db)
    try:  # the corpus really went through the sources into every table the screens read
        assert conn.execute("SELECT COUNT(*) FROM market").fetchone()[0] >= len(payloads) - 2
        assert conn.execute("SELECT COUNT(*) FROM gpu_models").fetchone()[0] > 10
        names = [r[0] for r in conn.execute("SELECT node FROM node_samples")]
        assert len(names) > 20 and any("\u241b" in n for n in names)
        down = conn.execute("SELECT COUNT(*) FROM node_samples WHERE up = 0").fetchone()[0]
        assert down > 0
        errors = " ".join(r[0] for r in conn.execute("SELECT error FROM poll_errors"))
        assert "\u241b" in errors and "\x1b" not in errors
    finally:
        conn.close()
    steps = [
        "1", "2", "\r", "\x1b", "3", "\r", "\x1b", "4", "\r", "\x1b",
        "g", "g", "g", "g", "5", "6", "7", "\r", "\x1b", "8", "q",
    ]  # fmt: skip
    keys = [(4.0 + 1.2 * n, key.encode()) for n, key in enumerate(steps)]
    output, code = run_in_pty(
        ["--offline", "--config", str(cfg), "--db", str(db)], keys, env, limit=60.0
    )
    assert code == 0, output[-3000:]
    text = output.decode("utf-8", errors="replace")
    assert "Traceback" not in text
    for sequence in FORBIDDEN_SEQUENCES:
        assert sequence not in text, f"{sequence!r} reached the terminal"
    assert "\u241b" in text  # ESC from the data is shown as the visible ␛ instead
    assert "Fleet" in text and "Sources" in text
    assert list(trap.iterdir()) == []  # no screenshot was taken by a markup payload
