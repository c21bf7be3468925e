"""Exporter scrapes against the loopback fault server (docs/reliability.md): PR-06 (4 MiB + 1
byte plain and gzip), PR-07 (a 200 MB gzip bomb), PR-10 (a 1 byte/s drip and a hang), PR-12 (ESC and
OSC in label values and HELP, through the cache to the screen). The other PR cases are
tests/unit/test_exporter.py and tests/unit/test_exposition.py."""

from __future__ import annotations

import gzip
import re
import sqlite3
import time
import tracemalloc
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest

from cache.db import open_writer
from cache.store import PollRecord, write_poll
from sources.base import make_client
from sources.exporter import ExporterFleetSource, Target
from sources.models import NodeSample
from tests.support.fault_server import Drip, FaultServer, Hang, Reply, gzip_bomb_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NODE = (FIXTURES / "node_exporter_1.5.0_2cpu.prom").read_bytes()
TEXT = {"content-type": "text/plain; version=0.0.4; charset=utf-8"}
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
LIMIT = 4 * 1024 * 1024


async def scrape(url: str, deadline: float = 3.0) -> NodeSample:
    fleet = ExporterFleetSource(targets=lambda: [Target(name="n", url=url)], timeout=deadline)
    async with make_client() as client:
        [sample] = (await fleet.fetch(client)).nodes
    return sample


def over_limit_body() -> bytes:
    line = b"# " + b"x" * 1000 + b"\n"
    body = line * (LIMIT // len(line) + 1)
    return body[: LIMIT + 1]


@pytest.mark.parametrize("encoding", ["plain", "gzip"])
async def test_pr06_4_mib_plus_one_byte_is_too_large(encoding: str) -> None:
    body = over_limit_body()
    assert len(body) == LIMIT + 1
    headers = dict(TEXT)
    if encoding == "gzip":
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    async with FaultServer({"/metrics": Reply(200, body, headers)}) as server:
        tracemalloc.start()
        try:
            sample = await scrape(server.url + "/metrics")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert not sample.up and "too_large" in (sample.error or "")
    assert peak < 20 * 1024 * 1024, peak


async def test_pr07_gzip_bomb_is_too_large_quickly_with_flat_memory() -> None:
    bomb = gzip_bomb_bytes()  # ~0.2 MB on the wire, 200 MB decoded
    headers = {**TEXT, "content-encoding": "gzip"}
    async with FaultServer({"/metrics": Reply(200, bomb, headers)}) as server:
        tracemalloc.start()
        try:
            started = time.monotonic()
            sample = await scrape(server.url + "/metrics")
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert not sample.up and "too_large" in (sample.error or "")
    assert peak < 20 * 1024 * 1024, peak
    print(f"PR-07: aborted after {elapsed * 1000:.0f} ms, peak {peak / 1e6:.1f} MB")
    assert elapsed < 5.0  # the budget is 0.5 s; slack for a shared CI machine


@pytest.mark.parametrize("behaviour", ["drip", "hang"])
async def test_pr10_drip_and_hang_fail_with_timeout_at_the_deadline(behaviour: str) -> None:
    script = (
        Drip(body=NODE[:200], interval=1.0, max_bytes=30, headers=TEXT)
        if behaviour == "drip"
        else Hang(max_seconds=30)
    )
    async with FaultServer({"/metrics": script}) as server:
        started = time.monotonic()
        sample = await scrape(server.url + "/metrics", deadline=1.5)
        elapsed = time.monotonic() - started
    assert not sample.up and "timeout" in (sample.error or "")
    assert elapsed >= 1.5 * 0.9  # not before the deadline...
    assert elapsed < 1.5 * 3  # ...and not long after it (±10 % on a quiet machine)


HOSTILE_BODY = (
    b"# HELP node_load1 \x1b]0;PWNED\x07 load \x1b[2J\n"
    b"# TYPE node_load1 gauge\n"
    b"node_load1 0.5\n"
    b'node_uname_info{nodename="evil\x1b]52;c;ZWNobyBwd25lZA==\x07host",release="\x9b6n"} 1\n'
)


async def test_pr12_escapes_in_labels_and_help_are_sanitised_in_the_db_and_the_ui(
    tmp_path: Path,
) -> None:
    from tests.support.ui import settle
    from tests.ui.appkit import NOW, make_app

    bad_line = b'node_load5{job="\x1b]8;;http://evil\x1b\\x"'  # malformed: quoted in the error
    async with FaultServer(
        {
            "/ok": Reply(200, NODE + HOSTILE_BODY, TEXT),
            "/bad": Reply(200, NODE + HOSTILE_BODY + bad_line + b"\n", TEXT),
        }
    ) as server:
        fleet = ExporterFleetSource(
            targets=lambda: [
                Target(name="ok\x1b[31m", url=server.url + "/ok", labels={"rack": "r\x1b]0;x\x07"}),
                Target(name="bad", url=server.url + "/bad"),
            ],
            timeout=3.0,
        )
        async with make_client() as client:
            reading = await fleet.fetch(client)
    good, bad = sorted(reading.nodes, key=lambda n: n.node != "bad")[::-1]
    assert good.up and not bad.up
    db = tmp_path / "cache.db"
    conn = open_writer(db)
    at = NOW - timedelta(seconds=10)
    write_poll(conn, PollRecord("fleet", at, at, reading))
    stored = conn.execute(
        "SELECT node, COALESCE(error, '') FROM node_samples "
        "UNION ALL SELECT node, labels FROM nodes"
    ).fetchall()
    conn.close()
    assert stored and not any(UNSAFE.search(a) or UNSAFE.search(b) for a, b in stored), stored
    assert any("␛" in b for _, b in stored)  # the error quotes the line, made visible

    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("enter")  # the node page of the first row
        await settle(pilot)
        svg = app.export_screenshot()
        ET.fromstring(svg)
        assert not UNSAFE.search(svg) and app.is_running
    assert sqlite3.sqlite_version  # the store went through SQLite, not a mock
