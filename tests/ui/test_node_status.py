"""The Node screen beside the network: missed io.net blocks on every chart's time axis, their
summary by cause, and our up/down against the network's status over the chart range.

rig-01 (io.net device D1) is polled every 5 min for 2 h and 20 s before now: up, then down at
our exporter from 11:00 while io.net keeps calling it up; io.net read nothing between 10:20 and
10:40. Its blocks: 09:00 "not in block" and 10:00 paid (fetched at 10:10), 11:00 failed
(fetched at 11:55).
rig-02 (device D2) earned every block; plain-01 carries no device id or provider label.
"""

from __future__ import annotations

from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Static

from cache.db import open_reader
from cache.network_status import NET_UP, status_timelines
from screens.node import NodeScreen
from screens.widgets.chart import Chart, ChartData
from screens.widgets.chart_axis import segments
from sources.models import DeviceStatus, NodeSample, Reading, Reward
from tests.support.ui import SIZES, settle
from tests.ui.appkit import NOW, make_app, store

D1 = "3f1d2c4b-5a69-4e7f-8b0c-1d2e3f405162"
D2 = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f60514"
DOWN_FROM = NOW - timedelta(minutes=60)
"""rig-01's exporter answers down from here to now."""
NET_SILENT = (NOW - timedelta(minutes=100), NOW - timedelta(minutes=80))
"""No io.net devices poll finished in this stretch."""
LAST = NOW - timedelta(seconds=20)
"""Our newest poll."""
CHARTS = ("chart-status", "chart-rewards", *(f"chart-{f}" for f in ("cpu_pct", "gpu_util_pct")))


def _sample(name: str, at: datetime, **labels: str) -> NodeSample:
    if name == "rig-01" and at >= DOWN_FROM:
        return NodeSample(node=name, source_kind="exporter", up=False, labels=labels)
    return NodeSample(
        node=name,
        source_kind="exporter",
        network="io.net" if labels else None,
        labels=labels,
        up=True,
        cpu_pct=30.0,
        gpus=8,
        gpu_util_pct=80.0,
        gpu_temp_c=65.0,
        gpu_power_w=2000.0,
    )


def _block(device: str, node: str, hour: int, amount: float, status: str) -> Reward:
    at = NOW.replace(hour=hour)
    return Reward(
        network="io.net",
        device_id=device,
        node=node,
        at=at,
        amount=amount,
        token="IO",
        source=f"io.net block {at.strftime('%Y-%m-%dT%H:%M:%S')}",
        status=status,
    )


def _fleet(db: Path, at: datetime) -> None:
    nodes = [
        _sample("rig-01", at, device_id=D1),
        _sample("rig-02", at, device_id=D2),
        _sample("plain-01", at),
    ]
    store(db, "fleet", at, Reading(nodes=nodes))


def node_cache(db: Path) -> None:
    for minutes in range(120, 0, -5):
        at = NOW - timedelta(minutes=minutes)
        _fleet(db, at)
        polled = at + timedelta(seconds=20)
        if NET_SILENT[0] <= polled < NET_SILENT[1]:
            continue
        rewards: list[Reward] = []
        if minutes == 110:  # 10:10
            rewards = [_block(D1, "rig-01", 9, 0.0, "not in block")]
            rewards += [_block(D1, "rig-01", 10, 0.25, "Success")]
            rewards += [_block(D2, "rig-02", h, 0.25, "Success") for h in (9, 10)]
        if minutes == 5:  # 11:55
            rewards = [_block(D1, "rig-01", 11, 0.0, "Failed")]
            rewards += [_block(D2, "rig-02", 11, 0.25, "Success")]
        devices = [
            DeviceStatus(network="io.net", device_id=D1, node="rig-01", status="up"),
            DeviceStatus(network="io.net", device_id=D2, node="rig-02", status="up"),
        ]
        store(db, "ionet-devices", polled, Reading(devices=devices, rewards=rewards))
    _fleet(db, LAST)  # the Fleet calls a node stale after twice its 15 s interval


async def open_node(pilot: Pilot[None], name: str) -> NodeScreen:
    await settle(pilot)
    await pilot.press("4")
    await settle(pilot)
    pilot.app.screen.query_one("#fleet-table").move_cursor_to(name)
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, NodeScreen) and screen.node_name == name
    return screen


def _data(screen: NodeScreen, chart: str) -> ChartData:
    data = screen.query_one(f"#{chart}", Chart).data
    assert data is not None, chart
    return data


def _shown(screen: NodeScreen, widget: str) -> str:
    rendered = screen.query_one(f"#{widget}", Static).render()
    return rendered.plain if isinstance(rendered, Text) else str(rendered)


async def test_missed_blocks_marked_on_every_chart_and_summed_up(tmp_path: Path) -> None:
    node_cache(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_node(pilot, "rig-01")
        expected = (
            (NOW.replace(hour=9), "not in blk"),
            (NOW.replace(hour=11), "failed"),
        )
        for chart in CHARTS:
            assert _data(screen, chart).marks == expected, chart
        box = _shown(screen, "node-ionet")
        assert "2 missed blocks in 24 h: not in block ×1, failed ×1" in box
        assert "down 60 min in 1 of 2 missed blocks" in box

        await pilot.press("escape")
        screen = await open_node(pilot, "rig-02")
        for chart in CHARTS:
            assert _data(screen, chart).marks == (), chart
        assert "no missed blocks in this range" in _shown(screen, "node-ionet")


async def test_private_mode_keeps_the_misses_and_hides_the_rewards_chart(tmp_path: Path) -> None:
    node_cache(tmp_path / "cache.db")
    app = make_app(tmp_path)
    app.private = True
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_node(pilot, "rig-01")
        assert not screen.query_one("#chart-rewards", Chart).display
        assert len(_data(screen, "chart-cpu_pct").marks) == 2
        assert "2 missed blocks in 24 h" in _shown(screen, "node-ionet")


async def test_status_chart_ours_down_while_the_network_says_up(tmp_path: Path) -> None:
    node_cache(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_node(pilot, "rig-01")
        chart = screen.query_one("#chart-status", Chart)
        assert chart.display
        data = _data(screen, "chart-status")
        assert (data.start, data.end) == (NOW - timedelta(hours=24), NOW)
        assert [s.label for s in data.series] == ["ours", "io.net"]
        assert data.levels == ((1.0, "up"), (0.0, "down"))
        ours, theirs = (dict(s.points) for s in data.series)
        assert ours[NOW - timedelta(minutes=65)] == 1.0
        assert ours[NOW - timedelta(minutes=45)] == 0.0  # our exporter: down
        assert theirs[NOW - timedelta(minutes=45, seconds=-20)] == 1.0  # io.net: up
        assert len(ours) == 25 and len(theirs) == 20
        # nothing stored between 10:20 and 10:40: the network's line has a gap there, ours none
        assert len(segments(data.series[1].points)) == 2
        assert len(segments(data.series[0].points)) == 1
        heading = _shown(screen, "chart-title-status")
        assert heading.startswith("Status: ours vs io.net — last 24 h")
        assert "ours down 20 s ago" in heading and "io.net up 4 min ago" in heading
        assert heading.endswith(NET_UP)


async def test_status_chart_hidden_without_a_network_label(tmp_path: Path) -> None:
    node_cache(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_node(pilot, "plain-01")
        assert not screen.query_one("#chart-status", Chart).display
        assert not screen.query_one("#chart-title-status", Static).display
        assert not screen.query_one("#node-ionet", Static).display  # no device: no misses line
        assert _data(screen, "chart-cpu_pct").marks == ()


async def test_network_published_nothing(tmp_path: Path) -> None:
    """A device id no devices poll has reported on: the chart stays, the heading says so."""
    db = tmp_path / "cache.db"
    for at in (NOW - timedelta(minutes=5), LAST):
        store(db, "fleet", at, Reading(nodes=[_sample("rig-09", at, device_id="x")]))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_node(pilot, "rig-09")
        assert screen.query_one("#chart-status", Chart).display
        heading = _shown(screen, "chart-title-status")
        assert "ours up 20 s ago" in heading and "network: no status stored" in heading
        assert heading.endswith("unknown")
        assert [len(s.points) for s in _data(screen, "chart-status").series] == [2, 0]


async def test_time_travel_bounds_the_marks_and_both_timelines(tmp_path: Path) -> None:
    node_cache(tmp_path / "cache.db")
    app = make_app(tmp_path)
    at = NOW - timedelta(minutes=40)  # 11:20: the 11:00 block is not fetched yet
    app.at = at
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_node(pilot, "rig-01")
        for chart in CHARTS[:1] + CHARTS[2:]:  # rewards: none in the range as of 11:20
            assert _data(screen, chart).marks == ((NOW.replace(hour=9), "not in blk"),), chart
        data = _data(screen, "chart-status")
        assert data.end == at
        ours, theirs = (dict(s.points) for s in data.series)
        assert max(ours) == NOW - timedelta(minutes=40)
        assert max(theirs) == NOW - timedelta(minutes=45, seconds=-20)
        assert "1 missed block in 24 h: not in block ×1" in _shown(screen, "node-ionet")
        heading = _shown(screen, "chart-title-status")
        assert "24 h to" in heading and "ours down 0 s ago" in heading


def test_status_timelines_as_of_an_earlier_moment(tmp_path: Path) -> None:
    """``at`` leaves out every poll stored after it, even inside ``[start, end]``."""
    db = tmp_path / "cache.db"
    node_cache(db)
    at = NOW - timedelta(minutes=40)
    start = NOW - timedelta(hours=2)
    with closing(open_reader(db)) as conn:
        live = status_timelines(conn, "rig-01", start, NOW)
        then = status_timelines(conn, "rig-01", start, NOW, at=at)
        before = status_timelines(conn, "rig-01", start, NOW, at=start - timedelta(hours=1))
    assert max(t for t, _ in live.ours) == LAST
    assert max(t for t, _ in then.ours) == at
    assert max(t for t, _ in then.network) == NOW - timedelta(minutes=45, seconds=-20)
    assert then.ours == [p for p in live.ours if p[0] <= at]
    assert then.network == [p for p in live.network if p[0] <= at]
    assert before.ours == [] and before.network == []


def test_status_timelines_follow_the_way_the_node_is_seen(tmp_path: Path) -> None:
    """The Node screen's own source kind when it is stored; else exporter, promql, local."""
    db = tmp_path / "cache.db"
    node_cache(db)
    promql = NodeSample(node="rig-01", source_kind="promql", up=True, labels={"device_id": D1})
    store(db, "promql", NOW - timedelta(minutes=30), Reading(nodes=[promql]))
    start = NOW - timedelta(hours=2)
    with closing(open_reader(db)) as conn:
        seen = status_timelines(conn, "rig-01", start, NOW, source_kind="promql")
        default = status_timelines(conn, "rig-01", start, NOW)
        unseen = status_timelines(conn, "rig-01", start, NOW, source_kind="local")
    assert seen.source_kind == "promql" and seen.ours == [(NOW - timedelta(minutes=30), True)]
    assert seen.network_name == "io.net" and len(seen.network) == 20
    assert default.source_kind == "exporter" and len(default.ours) == 25
    assert unseen.source_kind == "exporter"  # not seen that way: the preferred way instead


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_node_with_misses_and_status(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    node_cache(tmp_path / "cache.db")

    async def run_before(pilot: Pilot[None]) -> None:
        await open_node(pilot, "rig-01")

    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=run_before)


async def test_the_title_says_stale_as_the_fleet_does(tmp_path: Path) -> None:
    """Our newest sample older than the Fleet's limit: the title says stale, and what it said."""
    for name, last, title in (
        ("fresh", LAST, "rig-01  (exporter)  down  ·"),  # 20 s ago: within the 30 s limit
        ("old", NOW - timedelta(minutes=5), "rig-01  (exporter)  stale (last sample down, 5 min"),
    ):
        (tmp_path / name).mkdir()
        _fleet(tmp_path / name / "cache.db", last)
        async with make_app(tmp_path / name).run_test(size=(120, 40)) as pilot:
            screen = await open_node(pilot, "rig-01")
            assert _shown(screen, "node-title").startswith(title), name
