"""Charts on the screens: a day of one node's samples with a hole and a down hour, drawn with
axes at both sizes and with NO_COLOR; gaps stay gaps; time travel; no redraw without change;
event marks and a status timeline from written data."""

from __future__ import annotations

import io
import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

import screens.widgets.chart as chart_module
from screens.networks import NetworkPanel
from screens.node import NodeScreen
from screens.widgets.chart import Chart, ChartData, draw, series
from sources.models import NodeSample, Reading
from tests.support.ui import SIZES, settle
from tests.ui.appkit import NOW, make_app, store

STEP = timedelta(minutes=10)
HOLE = (NOW - timedelta(hours=14), NOW - timedelta(hours=11))
"""No poll reached the node: no sample stored at all."""
DOWN = (NOW - timedelta(hours=5), NOW - timedelta(hours=4))
"""Polled, but the node was down: samples without values."""


def sample_at(at: datetime) -> NodeSample:
    phase = (NOW - at).total_seconds() / 3600 / 24 * 2 * math.pi
    if DOWN[0] <= at < DOWN[1]:
        return NodeSample(node="gpu-01", source_kind="exporter", up=False)
    return NodeSample(
        node="gpu-01",
        source_kind="exporter",
        up=True,
        labels={"network": "io.net"},
        network="io.net",
        cpu_pct=round(40 + 20 * math.sin(phase), 1),
        gpu_util_pct=round(70 + 25 * math.sin(phase * 2), 1),
        gpu_temp_c=round(62 + 8 * math.sin(phase * 2), 1),
        gpu_power_w=round(2200 + 500 * math.sin(phase * 2), 0),
    )


def node_day(db: Path) -> None:
    """gpu-01 every 10 min for a day, the hole left out and the down hour without values."""
    at = NOW - timedelta(hours=24) + STEP
    while at <= NOW - timedelta(minutes=1):
        if not HOLE[0] <= at < HOLE[1]:
            store(db, "fleet", at, Reading(nodes=[sample_at(at)]))
        at += STEP


async def open_node(pilot: Pilot[None]) -> None:
    await settle(pilot)
    await pilot.press("4")
    await settle(pilot)
    pilot.app.screen.query_one("#fleet-table").move_cursor_to("gpu-01")
    await pilot.press("enter")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_node_day_with_a_hole(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    node_day(tmp_path / "cache.db")
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=open_node)


def test_node_day_no_color(snap_compare, tmp_path: Path, monkeypatch) -> None:
    """NO_COLOR: the same charts in monochrome; nothing on them is told by colour alone."""
    node_day(tmp_path / "cache.db")
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(tmp_path)
    assert app.no_color
    assert snap_compare(app, terminal_size=(120, 40), run_before=open_node)


async def test_node_charts_keep_gaps_as_gaps(tmp_path: Path) -> None:
    node_day(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_node(pilot)
        screen = app.screen
        assert isinstance(screen, NodeScreen)
        chart = screen.query_one("#chart-gpu_util_pct", Chart)
        data = chart.data
        assert data is not None and (data.start, data.end) == (NOW - timedelta(hours=24), NOW)
        points = data.series[0].points
        assert not any(HOLE[0] <= t < HOLE[1] for t, _ in points)  # nothing made up
        in_down = [v for t, v in points if DOWN[0] <= t < DOWN[1]]
        assert in_down and all(v is None for v in in_down)  # down: no value, not 0
        assert min(v for _, v in points if v is not None) > 40
        heading = str(screen.query_one("#chart-title-gpu_util_pct", Static).render())
        assert heading.startswith("GPU utilization, % — last 24 h")
        assert f"({len([v for _, v in points if v is not None])} samples)" in heading
        # the drawing: no line cell in the columns of the hole
        text = draw(data, 100, 9).plain.splitlines()
        first, last = text[0].index("┌") + 1, text[0].index("┐")

        def column(at: datetime) -> int:
            share = (at - data.start).total_seconds() / (data.end - data.start).total_seconds()
            return first + int(share * (last - first))

        hole = range(column(HOLE[0]) + 1, column(HOLE[1]) - 1)
        assert hole and all(line[c] in " │" for line in text[1:-2] for c in hole)


async def test_node_charts_as_of_an_earlier_moment(tmp_path: Path) -> None:
    node_day(tmp_path / "cache.db")
    app = make_app(tmp_path)
    app.at = NOW - timedelta(hours=6)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_node(pilot)
        chart = app.screen.query_one("#chart-cpu_pct", Chart)
        assert chart.data is not None and chart.data.end == NOW - timedelta(hours=6)
        assert max(t for t, _ in chart.data.series[0].points) <= NOW - timedelta(hours=6)
        heading = str(app.screen.query_one("#chart-title-cpu_pct", Static).render())
        assert heading.startswith("CPU, % — 24 h to Wed 25 Nov 06:00")


async def test_a_reread_with_nothing_new_draws_nothing(tmp_path: Path, monkeypatch) -> None:
    node_day(tmp_path / "cache.db")
    drawn: list[int] = []
    real = chart_module.draw

    def counting(data: ChartData, width: int, height: int):
        drawn.append(width)
        return real(data, width, height)

    monkeypatch.setattr(chart_module, "draw", counting)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_node(pilot)
        screen = app.screen
        assert isinstance(screen, NodeScreen)
        before = -1
        for _ in range(20):  # the first paint may still be on its way: wait for it, bounded
            if len(drawn) == before:
                break
            before = len(drawn)
            await pilot.pause(0.1)
        assert before >= 3  # every chart on screen drawn once (the fourth is scrolled off)
        screen.reload()
        await settle(pilot)
        await pilot.pause(0.5)
        assert len(drawn) == before  # same data: no chart drawn again, and no timer
        await pilot.press("right_square_bracket")  # 7 d: new data, every chart again
        await settle(pilot)
        assert len(drawn) > before


async def test_networks_panel_chart_has_title_and_axis(tmp_path: Path) -> None:
    from tests.ui.appkit import store_networks

    db = tmp_path / "cache.db"
    for hours in (20, 12, 6, 1, 0):
        store_networks(db, at=NOW - timedelta(hours=hours, seconds=50))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        console = Console(width=56, record=True, color_system=None, file=io.StringIO())
        console.print(app.screen.query_one("#panel-ionet", NetworkPanel).content)
        panel = console.export_text()
        assert "GPU utilization, % — last 24 h" in panel
        assert "18:00" in panel and "00:00" in panel and "%┤" in panel


class ChartApp(App[None]):
    """One chart with written data: missed blocks marked, ours and the network's status."""

    def compose(self) -> ComposeResult:
        yield Static("Status, ours and as io.net reports it — last 24 h", id="title")
        yield Chart(id="status")
        yield Static("Block rewards, IO — last 24 h", id="title-2")
        yield Chart(id="rewards")
        yield Chart(id="nothing")

    def on_mount(self) -> None:
        start = NOW - timedelta(hours=24)
        hours = [start + timedelta(hours=h) for h in range(25)]
        missed = tuple((start + timedelta(hours=h), "missed") for h in (3, 9, 10, 17))
        self.query_one("#status", Chart).styles.height = 10
        self.query_one("#status", Chart).data = ChartData(
            start,
            NOW,
            "",
            (
                series("ours", [(t, 0 if 8 <= i < 11 else 1) for i, t in enumerate(hours)]),
                series("io.net says", [(t, 0 if 9 <= i < 12 else 1) for i, t in enumerate(hours)]),
            ),
            marks=missed,
            levels=((0.0, "down"), (1.0, "up")),
        )
        # a missed block earns a real 0 (stored as such): drawn at 0, unlike a gap
        rewards = [(t, 0.0 if i in (3, 9, 10, 17) else 0.25) for i, t in enumerate(hours)]
        self.query_one("#rewards", Chart).data = ChartData(
            start, NOW, "IO", (series("rewards", rewards),), marks=missed
        )
        self.query_one("#nothing", Chart).data = ChartData(start, NOW, "W")


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_event_marks_and_a_status_timeline(snap_compare, size: tuple[int, int]) -> None:
    assert snap_compare(ChartApp(), terminal_size=size)
