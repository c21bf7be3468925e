"""Issue 4's acceptance, end to end: a real node_exporter and a real Prometheus scraping it on
loopback; two `poll --once --only fleet` runs then `export fleet` show the machine up from both
`exporter` and `promql`, agreeing with the exporter's own numbers; stopping the exporter turns the
node down on the next poll without losing its history."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from explorer.cli import cli
from tests.support.prom import node_exporter, prometheus, query, require_binaries, stop, wait_for

pytestmark = pytest.mark.integration

require_binaries()

OFF = "".join(
    f"[sources.{n}]\nenabled = false\n"
    for n in ("coingecko", "ionet", "akash", "filecoin", "helium", "sample")
)


def exporter_figures(url: str) -> dict[str, float]:
    body = httpx.get(url + "/metrics", timeout=5).text

    def one(pattern: str) -> float:
        match = re.search(pattern + r"\s+(\S+)$", body, re.MULTILINE)
        assert match, pattern
        return float(match.group(1))

    root = r'\{[^}]*mountpoint="/"[^}]*\}'
    return {
        "mem_pct": 100
        * (1 - one(r"^node_memory_MemAvailable_bytes") / one(r"^node_memory_MemTotal_bytes")),
        "disk_pct": 100
        * (
            1
            - one(r"^node_filesystem_avail_bytes" + root)
            / one(r"^node_filesystem_size_bytes" + root)
        ),
        "uptime_s": one(r"^node_time_seconds") - one(r"^node_boot_time_seconds"),
    }


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.output


def test_exporter_and_promql_agree_and_down_keeps_history(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    with node_exporter(tmp_path) as (exporter, exporter_url):
        instance = exporter_url.removeprefix("http://")
        with prometheus(tmp_path, [instance]) as (_, prom_url):
            config = tmp_path / "config.toml"
            config.write_text(
                OFF + "[fleet]\ninterval = 4\ntimeout = 2\n[fleet.local]\nenabled = false\n"
                f'[[fleet.targets]]\nname = "node-1"\nurl = "{exporter_url}/metrics"\n'
                'labels = { network = "io.net", device_id = "dev-1" }\n'
                f'[[fleet.prometheus]]\nurl = "{prom_url}"\nselector = \'{{job="node"}}\'\n'
            )
            # rate()[5m] needs two scrapes in Prometheus (1 s interval)
            wait_for(
                lambda: (
                    len(query(prom_url, 'count_over_time(up{job="node"}[1m])'))
                    and float(query(prom_url, 'count_over_time(up{job="node"}[1m])')[0]["value"][1])
                    >= 2
                ),
                timeout=20,
                what="two scrapes",
            )
            base = ["--config", str(config), "--db", str(db)]
            for _ in range(2):
                code, output = run(["poll", "--once", "--only", "fleet", *base])
                assert code == 0, output
                time.sleep(1.2)
            code, output = run(["export", "fleet", "--format", "json", *base])
            assert code == 0, output
            truth = exporter_figures(exporter_url)
            rows = {row["source"]: row for row in json.loads(output)}
            assert set(rows) == {"exporter", "promql"}
            assert rows["exporter"]["node"] == "node-1"
            assert rows["exporter"]["network"] == "io.net"
            assert rows["promql"]["node"] == instance
            for row in rows.values():
                assert row["up"] is True
                assert row["mem_pct"] == pytest.approx(truth["mem_pct"], abs=5)
                assert row["disk_pct"] == pytest.approx(truth["disk_pct"], abs=2)
                assert row["uptime_s"] == pytest.approx(truth["uptime_s"], abs=30)
                assert 0 <= row["cpu_pct"] <= 100  # the second run has a rate
                assert row["gpus"] is None and row["gpu_util_pct"] is None  # no GPU here
            stop(exporter)
            wait_for(
                lambda: query(prom_url, f'up{{instance="{instance}"}}')[0]["value"][1] == "0",
                timeout=15,
                what="Prometheus to see the exporter down",
            )
            code, output = run(["poll", "--once", "--only", "fleet", *base])
            assert code == 0, output
            code, output = run(["export", "fleet", "--format", "json", *base])
            rows = {row["source"]: row for row in json.loads(output)}
            assert rows["exporter"]["up"] is False and rows["promql"]["up"] is False
            assert rows["exporter"]["mem_pct"] is None  # a failed scrape stores no values
    conn = sqlite3.connect(db)
    kept = conn.execute("SELECT COUNT(*), SUM(up) FROM node_samples WHERE node = 'node-1'")
    assert kept.fetchone() == (3, 2)  # history intact: two good samples and the down one
