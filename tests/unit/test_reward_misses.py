"""Reward misses on written histories: one test per cause io.net gives (failed, not nominated,
slashed, 404) and per cause our history shows (down, idle GPU, hot GPU, network says down, no
samples), the per-node summary, 1-minute rollups, "as of T" and the Node screen's list."""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cache.db import iso, open_reader, open_writer
from cache.export import REWARDS_KEYS, rewards_export
from cache.retention import apply_retention
from cache.retention_policy import RetentionPolicy
from cache.reward_misses import NodeMisses, RewardMisses, io_cause, missed_blocks, reward_misses
from cache.rollup import INSERT_ROLLUP, ROLLUP_COLUMNS
from cache.store import PollRecord, write_poll
from screens.reward_misses_view import node_cells
from sources.models import DeviceStatus, NodeSample, Reading, Reward

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
DEV_1, DEV_2, DEV_3 = (
    "7a3e1c52-9d4b-4f0e-8a61-2b5c9e0d4f17",
    "599ef4af-7fe6-44b5-aba3-25899bde2ab6",
    "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9",
)
STEP = timedelta(minutes=5)


def hour(h: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 26, h, minute, tzinfo=UTC)


def put(db: Path, source: str, when: datetime, reading: Reading) -> None:
    conn = open_writer(db)
    try:
        write_poll(conn, PollRecord(source, when - timedelta(seconds=1), when, reading))
    finally:
        conn.close()


def block(device: str, node: str | None, h: int, amount: float, status: str | None) -> Reward:
    start = hour(h)
    return Reward(
        network="io.net",
        device_id=device,
        node=node,
        at=start,
        amount=amount,
        token="IO",
        source=f"io.net block {start.strftime('%Y-%m-%dT%H:%M:%S')}",
        status=status,
    )


def gpu_01(t: datetime) -> NodeSample | None:
    """Up, busy and cool, except: down 06:00-06:40, GPUs idle at 07, hot at 08, gone 09:55-11:05."""
    if hour(9, 55) <= t < hour(11, 5):
        return None
    if hour(6) <= t < hour(6, 40):
        return NodeSample(
            node="gpu-01", source_kind="exporter", up=False, error="connect: connection refused"
        )
    return NodeSample(
        node="gpu-01",
        source_kind="exporter",
        network="io.net",
        up=True,
        cpu_pct=50.0,
        gpus=8,
        gpu_util_pct=2.0 if t.hour == 7 else 90.0,
        gpu_temp_c=92.0 if t.hour == 8 else 70.0,
    )


GPU_02_DOWN = {1: (10, 15), 2: (20,), 3: (30,), 4: (40,), 5: (5, 10, 15)}
"""gpu-02's down samples: hour → minutes (each stands for 5 min): 40 min over five blocks."""


def gpu_02(t: datetime) -> NodeSample:
    down = t.minute in GPU_02_DOWN.get(t.hour, ())
    return NodeSample(
        node="gpu-02",
        source_kind="exporter",
        network="io.net",
        up=not down,
        cpu_pct=None if down else 40.0,
        gpus=None if down else 4,
        gpu_util_pct=None if down else 80.0,
        gpu_temp_c=None if down else 65.0,
    )


def history(db: Path) -> None:
    """A day of 5-minute fleet polls, 15-minute io.net device polls, rewards fetched at 08:00
    (blocks up to 07:00) and 11:50 (the rest). Polls are written in time order."""
    early = [
        block(DEV_1, "gpu-01", 1, 0.25, "Success"),
        block(DEV_1, "gpu-01", 2, 0.0, "Failed"),  # io.net: failed; ours: nothing wrong
        block(DEV_1, "gpu-01", 3, 0.0, "not in block"),  # the 404
        block(DEV_1, "gpu-01", 4, 0.0, "Not Nominated"),
        block(DEV_1, "gpu-01", 5, 0.0, "Slashed"),
        block(DEV_1, "gpu-01", 6, 0.0, "Failed"),  # down 40 min
        block(DEV_1, "gpu-01", 7, 0.0, "Failed"),  # GPUs idle
        block(DEV_3, None, 3, 0.0, "Failed"),  # a device no fleet node is labelled with
        *(block(DEV_2, "gpu-02", h, 0.0, "Failed") for h in range(1, 8)),
    ]
    late = [
        block(DEV_1, "gpu-01", 8, 0.0, "Failed"),  # GPU at 92 °C
        block(DEV_1, "gpu-01", 9, 0.0, "Failed"),  # the network says down
        block(DEV_1, "gpu-01", 10, 0.0, "Failed"),  # no samples at all
        block(DEV_1, "gpu-01", 11, 0.3, "Success"),
        *(block(DEV_2, "gpu-02", h, 0.2, "Success") for h in range(8, 11)),
    ]
    t = hour(0)
    while t < T:
        nodes = [s for s in (gpu_01(t), gpu_02(t)) if s is not None]
        put(db, "fleet", t, Reading(nodes=nodes))
        if t.minute % 15 == 0:
            status = "down" if t.hour == 9 else "up"
            devices = [
                DeviceStatus(network="io.net", device_id=DEV_1, node="gpu-01", status=status),
                DeviceStatus(network="io.net", device_id=DEV_2, node="gpu-02", status="up"),
            ]
            rewards = early if t == hour(8) else late if t == hour(11, 45) else []
            put(
                db,
                "ionet-devices",
                t + timedelta(seconds=30),
                Reading(devices=devices, rewards=rewards),
            )
        t += STEP


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("misses") / "cache.db"
    history(db)
    return db


def read(db: Path, until: datetime = T, since: datetime | None = None) -> RewardMisses:
    conn = open_reader(db)
    try:
        return reward_misses(conn, since or until - DAY, until)
    finally:
        conn.close()


def miss(found: RewardMisses, who: str, h: int):
    [m] = [m for m in found.misses if m.who == who and m.at == hour(h)]
    return m


@pytest.mark.parametrize(
    ("status", "amount", "cause"),
    [
        ("Success", 0.25, None),
        ("Failed", 0.0, "failed"),
        ("not in block", 0.0, "not in block"),
        ("Not Nominated", 0.0, "not nominated"),
        ("not_nominated", 0.0, "not nominated"),
        ("Slashed", 0.0, "slashed"),
        ("Success", 0.0, "paid 0"),
        (None, 0.0, "paid 0"),
        ("Pending review", 0.0, "Pending review"),
    ],
)
def test_io_cause_maps_the_stored_status_and_amount(status, amount, cause) -> None:
    assert io_cause(status, amount) == cause


def test_failed_block_with_nothing_wrong_in_our_history(cache: Path) -> None:
    m = miss(read(cache), "gpu-01", 2)
    assert (m.cause, m.status, m.device_id) == ("failed", "Failed", DEV_1)
    assert m.figures is not None and m.figures.samples == 12
    assert m.down_min == 0 and m.sampled_min == 60
    assert m.figures.cpu_pct == 50.0 and m.figures.gpu_util_pct == 90.0
    assert m.figures.gpu_temp_max_c == 70.0
    assert m.network_status == "up"
    assert (m.seen, m.seen_label) == (None, "no cause in our history")
    assert m.short == "failed: no cause in our history"
    assert m.mark == "failed"


def test_not_in_block_is_the_404(cache: Path) -> None:
    m = miss(read(cache), "gpu-01", 3)
    assert (m.cause, m.status) == ("not in block", "not in block")


def test_not_nominated_and_slashed_as_io_net_says(cache: Path) -> None:
    found = read(cache)
    assert miss(found, "gpu-01", 4).cause == "not nominated"
    assert miss(found, "gpu-01", 5).cause == "slashed"


def test_down_minutes_from_down_samples(cache: Path) -> None:
    m = miss(read(cache), "gpu-01", 6)
    assert m.figures is not None
    assert m.down_min == 40.0  # eight down samples of 5 min from 06:00
    assert m.figures.samples == 12 and m.sampled_min == 60
    assert m.figures.cpu_pct == 50.0  # the means are over the up samples only
    assert m.figures.scrape_error == "connect: connection refused"
    assert (m.seen, m.seen_label) == ("down", "down 40 min")
    assert m.network_status == "up"  # io.net did not see it


def test_idle_gpu(cache: Path) -> None:
    m = miss(read(cache), "gpu-01", 7)
    assert m.figures is not None and m.figures.gpu_util_pct == 2.0
    assert (m.seen, m.seen_label) == ("idle", "GPU idle (2 %)")


def test_hot_gpu(cache: Path) -> None:
    m = miss(read(cache), "gpu-01", 8)
    assert m.figures is not None and m.figures.gpu_temp_max_c == 92.0
    assert (m.seen, m.seen_label) == ("hot", "GPU 92 °C")


def test_network_says_offline(cache: Path) -> None:
    m = miss(read(cache), "gpu-01", 9)
    assert m.network_status == "down"  # the four device polls of 09:00-09:45
    assert m.figures is not None and m.down_min == 0  # our exporter saw it up
    assert (m.seen, m.seen_label) == ("network_down", "network says down")


def test_no_samples_that_hour(cache: Path) -> None:
    m = miss(read(cache), "gpu-01", 10)
    assert m.figures is None and m.down_min is None and m.sampled_min is None
    assert (m.seen, m.seen_label) == ("no_samples", "no samples")
    assert m.network_status == "up"


def test_device_without_a_fleet_node(cache: Path) -> None:
    found = read(cache)
    m = miss(found, DEV_3, 3)
    assert (m.node, m.figures, m.network_status) == (None, None, None)  # never polled either
    assert (m.seen, m.seen_label) == ("no_node", "no fleet node: no samples")
    assert found.nodes[DEV_3].summary == "no fleet node (no samples) in 1 of 1 missed block"


def test_summary_per_node(cache: Path) -> None:
    found = read(cache)
    gpu_02 = found.nodes["gpu-02"]
    assert (gpu_02.earned, gpu_02.missed) == (3, 7)
    assert gpu_02.causes == {"failed": 7}
    assert gpu_02.seen == "down" and gpu_02.seen_count == 5
    assert gpu_02.summary == "down 40 min in 5 of 7 missed blocks"
    assert [round(m.down_min or 0) for m in found.misses if m.who == "gpu-02"] == [
        10,
        5,
        5,
        5,
        15,
        0,
        0,
    ]
    gpu_01 = found.nodes["gpu-01"]
    assert (gpu_01.earned, gpu_01.missed) == (2, 9)
    assert gpu_01.causes == {"failed": 6, "not in block": 1, "not nominated": 1, "slashed": 1}
    # one block each for down, network, hot, idle and no samples: ties go in SEEN_ORDER
    assert gpu_01.summary == "down 40 min in 1 of 9 missed blocks"


def test_as_of_t_sees_only_what_was_stored_by_then(cache: Path) -> None:
    found = read(cache, until=hour(9, 30), since=hour(0))
    assert {m.at for m in found.misses if m.who == "gpu-01"} == {hour(h) for h in range(2, 8)}
    assert found.nodes["gpu-01"].earned == 1
    assert read(cache, until=hour(7, 59), since=hour(0)).misses == []  # fetched at 08:00


def test_missed_blocks_for_the_node_screen(cache: Path) -> None:
    conn = open_reader(cache)
    try:
        marks = missed_blocks(conn, "gpu-01", hour(5), hour(9), at=T)
        assert missed_blocks(conn, "gpu-01", hour(5), hour(9)) == [
            (hour(h), m)
            for h, m in (
                (5, "slashed"),  # io.net's cause: the node's summary line gives ours
                (6, "failed"),
                (7, "failed"),
            )
        ]  # as of 09:00: the blocks fetched by then
    finally:
        conn.close()
    assert marks == [(hour(5), "slashed")] + [(hour(h), "failed") for h in (6, 7, 8, 9)]


def test_hours_older_than_the_raw_samples_read_the_minute_rollups(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    put(db, "fleet", hour(0), Reading(nodes=[gpu_02(hour(0))]))
    put(db, "ionet-devices", hour(11), Reading(rewards=[block(DEV_2, "gpu-02", 3, 0.0, "Failed")]))
    conn = open_writer(db)
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('retention.raw_until', ?)", (iso(hour(6)),)
        )
        for minute in range(0, 60, 2):  # 30 buckets of one minute: half the hour has samples
            down = minute < 10
            values = dict.fromkeys(ROLLUP_COLUMNS)
            values.update(resolution=60, node="gpu-02", source_kind="exporter")
            values.update(bucket_at=iso(hour(3, minute)), samples=2, up_samples=0 if down else 2)
            if not down:
                values.update(cpu_pct=30.0, gpus=4, gpu_util_pct=60.0, gpu_temp_max_c=88.0)
            conn.execute(INSERT_ROLLUP, list(values.values()))
    conn.close()
    m = miss(read(db), "gpu-02", 3)
    assert m.figures is not None and m.figures.read_from == "minute rollups"
    assert m.sampled_min == 30.0 and m.down_min == 5.0
    assert m.figures.cpu_pct == 30.0 and m.figures.gpu_util_pct == 60.0
    assert m.figures.gpu_temp_max_c == 88.0
    assert (m.seen, m.seen_label) == ("down", "down 5 min")


def test_export_rewards_explains_each_missed_block(cache: Path) -> None:
    conn = open_reader(cache)
    try:
        records = rewards_export(conn, T)
        earlier = rewards_export(conn, hour(9))
    finally:
        conn.close()
    assert all(list(r) == list(REWARDS_KEYS) for r in records)
    by_block = {(r["node"], r["at"][11:16]): r for r in records}
    down = by_block[("gpu-01", "06:00")]
    assert (down["missed"], down["status"], down["cause"]) == (True, "Failed", "failed")
    assert (down["seen_cause"], down["down_min"], down["sampled_min"]) == ("down 40 min", 40, 60)
    assert (down["cpu_pct_mean"], down["gpu_util_pct_mean"]) == (50.0, 90.0)
    assert (down["gpu_temp_max_c"], down["network_status"]) == (70.0, "up")
    gone = by_block[("gpu-01", "10:00")]
    assert (gone["seen_cause"], gone["down_min"], gone["cpu_pct_mean"]) == (
        "no samples",
        None,
        None,
    )
    paid = by_block[("gpu-01", "11:00")]
    assert (paid["missed"], paid["cause"], paid["seen_cause"]) == (False, None, None)
    assert len(records) == 22 and len(earlier) == 15  # as of 09:00: the 08:00 fetch only


def test_hours_rolled_up_by_retention_give_the_same_figures(cache: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cache.db"
    source = open_reader(cache)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    conn = open_writer(copy)
    apply_retention(conn, RetentionPolicy(), T)  # rolls up every hour over by T
    conn.close()
    before, after = read(cache), read(copy)
    assert len(after.misses) == len(before.misses)
    read_from = Counter()
    for old, new in zip(before.misses, after.misses, strict=True):
        assert old.figures is None or old.figures.read_from == "samples"
        if new.figures is not None:
            read_from[new.figures.read_from] += 1
            assert replace(new.figures, read_from="samples") == old.figures, new.at
        else:
            assert old.figures is None
        assert (new.seen, new.seen_label) == (old.seen, old.seen_label)
    # all-up hours from their rollup; hours with a down sample (gpu-01 at 06, gpu-02 at 01-05)
    # or a gap longer than the span (gpu-01 at 09: the exporter gone from 09:55) from the samples
    assert read_from == {"hour rollup": 8, "samples": 7}
    assert miss(after, "gpu-01", 9).figures.read_from == "samples"
    assert miss(after, "gpu-01", 6).figures.read_from == "samples"
    assert miss(after, "gpu-01", 2).figures.read_from == "hour rollup"


def test_the_rewards_why_cell_says_no_cause_only_when_blocks_were_missed() -> None:
    def node(missed: int, seen: str | None) -> NodeMisses:
        return NodeMisses("gpu-01", 5, missed, {"failed": missed}, seen, 0, "")

    assert node_cells(node(2, None)) == {"missed": 2, "why": "no cause"}
    assert node_cells(node(2, "down"))["why"] == "down"
    assert node_cells(node(0, None)) == {"missed": 0, "why": ""}
    assert node_cells(None) == {"missed": None, "why": None}
