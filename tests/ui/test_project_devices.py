"""Device growth against price on the Project screen (what an investor asks of Rankings)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from screens.project import ProjectScreen
from screens.widgets.chart import Chart
from sources.models import NetworkMetric, Reading
from tests.support.ui import SIZES, keys, live_cache, settle
from tests.ui.appkit import NOW, make_app, store

IONET_ROW = ("2", *["down"] * 5, "enter")  # io.net: the 6th market cap of the live fixture


def devices_cache(tmp_path: Path) -> None:
    live_cache(tmp_path)
    db = tmp_path / "cache.db"
    for days, devices in ((31, 20_000), (20, 21_000), (7, 22_000), (3, 24_000), (0, 24_600)):
        metric = NetworkMetric(network="io.net", metric="devices_total", value=devices)
        at = NOW - timedelta(days=days, minutes=5)
        store(db, "ionet", at, Reading(metrics=[metric]))


def figures(screen: ProjectScreen) -> dict[str, str]:
    table = screen.query_one("#project-figures", DataTable)
    return {
        str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1]) for i in range(table.row_count)
    }


async def test_io_net_devices_against_its_price(tmp_path: Path) -> None:
    devices_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await keys(*IONET_ROW)(pilot)
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ProjectScreen) and screen.coin.coin_id == "io-net"
        shown = figures(screen)
        assert shown["Devices"] == "24,600 devices"
        assert shown["Mcap / device"] == "$9,756"  # $240.00M / 24,600
        assert shown["Devices 7d"] == "+11.8%  price +21.2%"  # 22,000 -> 24,600
        assert shown["Devices 30d"] == "+23.0%  price +40.1%"  # 20,000 -> 24,600
        assert screen.query_one("#project-devices", Chart).display
        title = str(screen.query_one("#project-devices-title", Static).render())
        assert title == "io.net devices in the cache, last 30 days: 4 values"


async def test_a_project_without_a_polled_network_shows_the_snapshot_figure(
    tmp_path: Path,
) -> None:
    devices_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await keys("2", "enter")(pilot)  # Render: no network this app polls
        await settle(pilot)
        shown = figures(app.screen)  # type: ignore[arg-type]
        assert shown["Devices"] == "—" and "Devices 7d" not in shown
        assert not app.screen.query_one("#project-devices-title", Static).display


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_project_devices_snapshot(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    devices_cache(tmp_path)
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=keys(*IONET_ROW))
