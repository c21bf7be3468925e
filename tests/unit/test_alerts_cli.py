"""`depin-explorer alerts` (exit status 1 while any alert fires) and `export alerts`."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from cache.alert_rules import Rule
from cache.alerts import ALERT_KEYS, evaluate
from cache.db import open_writer
from cache.store import PollRecord, write_poll
from explorer.cli import cli
from sources.models import NodeSample, Reading

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RULES = [
    Rule("node down", "node_down", "critical"),
    Rule("hot", "gpu_temp_above", "warning", threshold=80),
]


def cache(tmp_path: Path) -> Path:
    """gpu-01 down at T0, up again at T0+10 min; =cmd|x (a hostile name) hot from T0+5 min."""
    db = tmp_path / "cache.db"
    conn = open_writer(db)
    steps = [
        (T0, [("gpu-01", False, None)]),
        (T0 + timedelta(minutes=5), [("=cmd|x", True, 91.5)]),
        (T0 + timedelta(minutes=10), [("gpu-01", True, None)]),
    ]
    for at, nodes in steps:
        samples = [
            NodeSample(node=n, source_kind="exporter", up=up, gpus=1, gpu_temp_c=t)
            for n, up, t in nodes
        ]
        poll_id = write_poll(conn, PollRecord("fleet", at, at, reading=Reading(nodes=samples)))
        evaluate(conn, RULES, poll_id, at)
    conn.close()
    return db


def run(db: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--db", str(db), *args])
    return result.exit_code, result.output


def test_alerts_exit_one_while_firing_and_json_keys(tmp_path: Path) -> None:
    db = cache(tmp_path)
    code, out = run(db, "alerts", "--firing", "--format", "json")
    assert code == 1
    [record] = json.loads(out)
    assert list(record) == list(ALERT_KEYS)
    assert record == {
        "rule": "hot",
        "subject": "=cmd|x",
        "severity": "warning",
        "state": "firing",
        "started_at": "2026-11-25T12:05:00.000Z",
        "resolved_at": None,
        "value": 91.5,
        "message": "=cmd|x GPU at 92 °C (limit 80 °C)",
    }
    code, out = run(db, "alerts", "--format", "json")
    assert code == 1 and [r["state"] for r in json.loads(out)] == ["firing", "resolved"]


def test_alerts_as_of_a_time(tmp_path: Path) -> None:
    db = cache(tmp_path)
    before = (T0 - timedelta(minutes=1)).isoformat()
    assert run(db, "alerts", "--firing", "--at", before) == (0, "no alerts firing\n")
    code, out = run(
        db, "alerts", "--at", (T0 + timedelta(minutes=1)).isoformat(), "--format", "json"
    )
    assert code == 1
    [record] = json.loads(out)
    assert record["subject"] == "gpu-01" and record["state"] == "firing"
    assert record["resolved_at"] is None  # resolved later than the moment asked about


def test_alerts_table(tmp_path: Path) -> None:
    code, out = run(cache(tmp_path), "alerts")
    lines = out.splitlines()
    assert code == 1 and lines[0].split()[:4] == ["STATE", "SEVERITY", "RULE", "SUBJECT"]
    assert lines[1].startswith("firing") and "=cmd|x GPU at 92 °C" in lines[1]
    assert lines[2].startswith("resolved") and "gpu-01 is down" in lines[2]


def test_alerts_exit_zero_when_none_fire_and_two_without_a_cache(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    open_writer(db).close()
    assert run(db, "alerts") == (0, "no alerts\n")
    assert run(db, "alerts", "--firing", "--format", "json") == (0, "[]\n")
    code, out = run(tmp_path / "missing.db", "alerts")
    assert code == 2 and "no cache" in out


def test_export_alerts_json_and_csv(tmp_path: Path) -> None:
    db = cache(tmp_path)
    code, out = run(db, "export", "alerts")
    assert code == 0
    records = json.loads(out)
    assert [list(r) for r in records] == [list(ALERT_KEYS)] * 2
    code, out = run(db, "export", "alerts", "--format", "csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == list(ALERT_KEYS)
    assert rows[1][:4] == ["hot", "'=cmd|x", "warning", "firing"]  # a formula made inert
    assert rows[2][:6] == [
        "node down",
        "gpu-01",
        "critical",
        "resolved",
        "2026-11-25T12:00:00.000Z",
        "2026-11-25T12:10:00.000Z",
    ]
    code, out = run(db, "export", "alerts", "--at", (T0 + timedelta(minutes=1)).isoformat())
    assert code == 0 and [r["state"] for r in json.loads(out)] == ["firing"]
    assert run(tmp_path / "missing.db", "export", "alerts")[0] == 1
