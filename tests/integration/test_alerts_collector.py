"""Issue 7's acceptance, from outside: a real `depin-explorer poll` collector with a "node down"
rule against a loopback exporter that is then stopped posts exactly one firing alert to a
loopback webhook and, once the exporter is back, exactly one resolved alert; `alerts --firing`
exits 1 in between and 0 after."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from click.testing import CliRunner

from explorer.cli import cli
from tests.integration.test_collector import start_collector, wait_for
from tests.support.loopback import LoopbackServer, PostReceiver, Reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OFF = "".join(
    f"[sources.{n}]\nenabled = false\n"
    for n in ("coingecko", "ionet", "akash", "filecoin", "helium", "sample")
)
PROM = {"content-type": "text/plain; version=0.0.4; charset=utf-8"}


def exporter(port: int = 0) -> LoopbackServer:
    body = (FIXTURES / "node_exporter_1.5.0_2cpu.prom").read_bytes()
    return LoopbackServer({"/metrics": [Reply(200, body, PROM)]}, port=port)


def firing_status(db: Path) -> int:
    return CliRunner().invoke(cli, ["--db", str(db), "alerts", "--firing"]).exit_code


def test_node_down_fires_once_and_resolves_once(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    with PostReceiver() as hook:
        node = exporter().__enter__()
        port = node.port
        cfg = tmp_path / "config.toml"
        cfg.write_text(
            OFF + "[fleet]\ninterval = 1\ntimeout = 0.5\n[fleet.local]\nenabled = false\n"
            f'[[fleet.targets]]\nname = "gpu-01"\nurl = "{node.url}/metrics"\n'
            "[retention]\nenabled = false\n"
            f'[alerts.webhook]\nurl = "{hook.url}"\ntimeout = 2\nretries = 2\n'
            '[[alerts.rules]]\nname = "node down"\nkind = "node_down"\nseverity = "critical"\n'
            'for = "2s"\nresolve_after = "2s"\n'
        )
        collector = start_collector(tmp_path, cfg, db)
        try:
            wait_for(lambda: len(node.requests) >= 2)  # scraped, up, twice
            assert firing_status(db) == 0 and hook.bodies() == []
            node.__exit__()  # the exporter stops: connection refused from now on
            wait_for(lambda: len(hook.bodies()) >= 1)
            assert firing_status(db) == 1
            time.sleep(3)  # three more polls of a node still down: nothing more is sent
            assert len(hook.bodies()) == 1 and firing_status(db) == 1
            with exporter(port) as back:  # the same address again
                wait_for(lambda: len(hook.bodies()) >= 2)
                assert len(back.requests) >= 1
                assert firing_status(db) == 0
                time.sleep(2)
        finally:
            collector.send_signal(signal.SIGTERM)
            code = collector.wait(timeout=20)
        assert code == 0, collector.stderr.read().decode() if collector.stderr else ""
    fired, resolved = hook.bodies()
    assert fired["state"] == "firing" and resolved["state"] == "resolved"  # type: ignore[index]
    for body in (fired, resolved):
        assert body["rule"] == "node down" and body["subject"] == "gpu-01"  # type: ignore[index]
        assert body["severity"] == "critical"  # type: ignore[index]
    assert fired["started_at"] == resolved["started_at"]  # type: ignore[index]
    assert fired["resolved_at"] is None and resolved["resolved_at"]  # type: ignore[index]
    assert "gpu-01 is down: connect: cannot connect to 127.0.0.1" in fired["message"]  # type: ignore[index]
    assert len(hook.bodies()) == 2 and hook.attempts == 2
