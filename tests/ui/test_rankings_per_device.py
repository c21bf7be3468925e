"""Rankings' per-device columns: market cap per device, device and price change over 30 days for
the projects whose network is polled, "—" for the others; sortable, as of T, in `e` exports."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import DataTable

from explorer.exports import exports_dir
from screens.rankings import RankingsScreen
from sources.models import NetworkMetric, Reading
from tests.support.ui import SIZES, keys, live_cache, settle
from tests.ui.appkit import NOW, make_app, store, store_networks


def per_device_cache(tmp_path: Path) -> None:
    """io.net at 20,500 devices 30 days ago; then the live rankings and every network now."""
    db = tmp_path / "cache.db"
    month_ago = NOW - timedelta(days=30, hours=1)
    metric = NetworkMetric(network="io.net", metric="devices_total", value=20500.0)
    store(db, "ionet", month_ago, Reading(metrics=[metric]))
    live_cache(tmp_path)
    store_networks(db)  # io.net 24,600 devices, Filecoin 2,345 miners, Helium, Akash


async def open_rankings(pilot) -> RankingsScreen:
    await pilot.press("2")
    await settle(pilot)
    assert isinstance(pilot.app.screen, RankingsScreen)
    return pilot.app.screen


def cells(screen: RankingsScreen, name: str) -> dict[str, str]:
    table = screen.query_one(DataTable)
    row = next(i for i, c in enumerate(screen.shown) if c.name == name)
    labels = [str(c.label) for c in table.columns.values()]
    return {labels[i]: str(v) for i, v in enumerate(table.get_row_at(row))}


async def test_per_device_columns_sort_and_missing(tmp_path: Path) -> None:
    per_device_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_rankings(pilot)
        io = screen.per_device["io-net"]
        assert io.market_cap_per_device_usd == 240_000_000 / 24600
        assert io.devices_change_30d_pct == pytest.approx((24600 - 20500) / 20500 * 100)
        shown = cells(screen, "io.net")
        assert (shown["MCap/dev"], shown["Dev 30d"], shown["Px 30d"]) == (
            "$9.76K",
            "+20.0%",
            "+40.1%",
        )
        assert cells(screen, "Render")["MCap/dev"] == "—"  # no polled network
        assert cells(screen, "Helium")["Px 30d"] == "—"  # neither CoinGecko nor history has it
        screen.sort_by("change_30d")
        await pilot.press("s")  # the next column: market cap per device, largest first
        await pilot.pause()
        assert screen.sort_key == "per_device" and screen.descending
        assert [c.name for c in screen.shown] == [
            "Akash Network",  # 2 providers in the fixture
            "Filecoin",
            "io.net",
            "Helium",
            "Bittensor",  # missing last, by name
            "Render",
        ]
        await pilot.press("S")
        await pilot.pause()
        assert [c.name for c in screen.shown][:4] == [
            "Helium",
            "io.net",
            "Filecoin",
            "Akash Network",
        ]
        await pilot.press("s")
        await pilot.pause()
        assert screen.sort_key == "devices_30d" and screen.shown[0].name == "io.net"


async def test_per_device_as_of_t(tmp_path: Path) -> None:
    per_device_cache(tmp_path)
    app = make_app(tmp_path)
    app.at = NOW - timedelta(seconds=55)  # before today's network polls
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_rankings(pilot)
        io = screen.per_device["io-net"]
        assert io.devices == 20500 and io.market_cap_per_device_usd == 240_000_000 / 20500
        assert io.devices_change_30d_pct is None  # nothing stored 30 days before that reading
        assert cells(screen, "io.net")["Dev 30d"] == "—"
        assert screen.per_device["filecoin"].devices is None


async def test_export_has_the_per_device_figures(tmp_path: Path) -> None:
    per_device_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_rankings(pilot)
        await pilot.press("e")
        await settle(pilot)
        [path] = exports_dir().glob("rankings-*.csv")
        with path.open(newline="") as handle:
            rows = {r["coin_id"]: r for r in csv.DictReader(handle)}
    assert float(rows["io-net"]["market_cap_per_device_usd"]) == 240_000_000 / 24600
    assert rows["io-net"]["devices"] == "24600.0"
    assert rows["render-token"]["market_cap_per_device_usd"] == ""


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_rankings_per_device_snapshot(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    per_device_cache(tmp_path)

    async def run_before(pilot) -> None:
        await keys("2")(pilot)
        pilot.app.screen.sort_by("per_device")
        if size[0] < 100:  # scrolled right, as a user would, to the per-device columns
            await pilot.press(*["right"] * 24)
        await settle(pilot)

    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=run_before)
