"""The Fleet screen: summary, sort, filter, group, drill-down, hostile labels."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Static

from screens.fleet import FleetScreen
from screens.node import NodeScreen
from screens.widgets.fleet_table import FleetTable
from tests.ui.appkit import make_app, store_fleet
from tests.ui.test_navigation import settle


async def open_fleet(pilot) -> FleetTable:
    await pilot.press("4")
    await settle(pilot)
    assert isinstance(pilot.app.screen, FleetScreen)
    return pilot.app.screen.query_one(FleetTable)


async def test_summary_and_default_order_put_trouble_first(tmp_path: Path) -> None:
    store_fleet(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_fleet(pilot)
        summary = str(app.screen.query_one("#fleet-summary", Static).render())
        assert "6 nodes" in summary and "1 down" in summary and "1 stale" in summary
        assert "4,010 W" in summary
        keys = table.visible_keys()
        assert keys[0] == "exporter/gpu-03"  # down sorts first ("down" < "stale" < "up")
        assert keys[1] == "exporter/gpu-stale"


async def test_sort_filter_group_and_drill_down(tmp_path: Path) -> None:
    store_fleet(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_fleet(pilot)
        await pilot.press("s")  # next column after status: CPU%, descending
        assert table.visible_keys()[0] == "exporter/gpu-02"
        assert table.visible_keys()[-1] == "exporter/gpu-03"  # no value: last either way
        await pilot.press("S")
        assert table.visible_keys()[0] == "exporter/cpu-01"
        assert table.visible_keys()[-1] == "exporter/gpu-03"
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"akash")
        assert set(table.visible_keys()) == {"exporter/cpu-01", "exporter/gpu-stale"}
        await pilot.press("escape")
        assert table.visible_count == 6
        await pilot.press("g")  # by network
        assert table.group_key == "network"
        groups = dict(table.groups)
        assert groups["io.net"] == 3 and groups["akash"] == 2
        await pilot.press("g", "g")
        assert table.group_key is None
        table.move_cursor_to("exporter/gpu-02")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, NodeScreen)
        assert app.screen.node.node == "gpu-02"
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_node_screen_charts_history_over_ranges(tmp_path: Path) -> None:
    from datetime import timedelta

    from textual.widgets import Sparkline

    from tests.ui.appkit import NOW

    db = tmp_path / "cache.db"
    for minutes in (300, 50, 30, 10):  # four samples: three within the last hour
        store_fleet(db, at=NOW - timedelta(minutes=minutes))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_fleet(pilot)
        table.move_cursor_to("exporter/gpu-01")
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, NodeScreen)
        assert screen.query_one("#chart-cpu_pct", Sparkline).display
        title = str(screen.query_one("#chart-title-cpu_pct", Static).render())
        assert "(4 samples)" in title  # 24 h range by default
        await pilot.press("]")  # 7 d
        await settle(pilot)
        await pilot.press("]")  # 1 h
        assert screen.range_index == 0, screen.range_index
        await settle(pilot)
        title = str(screen.query_one("#chart-title-cpu_pct", Static).render())
        assert "(3 samples)" in title
        down = str(screen.query_one("#chart-title-gpu_temp_c", Static).render())
        assert "71.0" in down


async def test_hostile_node_names_and_labels_render_literally(tmp_path: Path) -> None:
    from datetime import timedelta

    from sources.models import NodeSample, Reading
    from tests.corpus import ALL
    from tests.ui.appkit import NOW, store

    nodes = [
        NodeSample(
            node=p,
            source_kind="exporter",
            up=i % 2 == 0,
            network=p,
            labels={"network": p, "k": p},
            cpu_pct=float(i),
        )
        for i, p in enumerate(ALL)
    ]
    store(tmp_path / "cache.db", "fleet", NOW - timedelta(seconds=5), Reading(nodes=nodes))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_fleet(pilot)
        assert table.row_count == len(ALL)
        await pilot.press("g")
        for _ in range(10):
            await pilot.press("down", "enter")
            await pilot.pause()
            await pilot.press("escape")
        assert app.is_running


def test_configured_thresholds_colour_the_cells() -> None:
    from screens.fleet import fleet_columns

    columns = {c.key: c for c in fleet_columns({"gpu_temp_c": (60, 70), "cpu_pct": (85, 95)})}
    temp = columns["gpu_temp_c"].style_for
    assert (temp(59.0), temp(65.0), temp(71.0), temp(None)) == ("", "warn", "critical", "")
    assert columns["mem_pct"].style_for is None  # no level configured: no colour
