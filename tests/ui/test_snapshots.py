"""Snapshot tests of every screen at 80x24 and 120x40, on a fixed cache and a frozen clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.support.ui import SIZES, keys, live_cache, settle
from tests.ui.appkit import NOW, make_app, store_failure, store_live


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_overview(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    live_cache(tmp_path)
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=keys())


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_rankings(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    live_cache(tmp_path)
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=keys("2"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_first_run_sample(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app = make_app(tmp_path, poll=True, offline=True)
    assert snap_compare(app, terminal_size=size, run_before=keys("2"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_project(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    live_cache(tmp_path)
    assert snap_compare(
        make_app(tmp_path), terminal_size=size, run_before=keys("2", "down", "enter")
    )


def test_rankings_stale_and_failing(snap_compare, tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    store_live(db, at=NOW - timedelta(hours=3))
    store_failure(db, NOW - timedelta(minutes=1))
    assert snap_compare(
        make_app(tmp_path), terminal_size=(80, 24), run_before=keys("2", "slash", "i", "o")
    )


def networks_cache(tmp_path: Path) -> None:
    from tests.ui.appkit import store_networks

    live_cache(tmp_path)
    store_networks(tmp_path / "cache.db", at=NOW - timedelta(hours=1))
    store_networks(tmp_path / "cache.db")


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_networks(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    networks_cache(tmp_path)
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=keys("3"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_gpu_models(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    networks_cache(tmp_path)
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=keys("3", "enter"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_sources(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    networks_cache(tmp_path)
    store_failure(tmp_path / "cache.db", NOW - timedelta(seconds=10))
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=keys("7"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_fleet(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    from tests.ui.appkit import store_devices, store_fleet

    store_fleet(tmp_path / "cache.db")
    store_devices(tmp_path / "cache.db")
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=keys("4"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_node(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    from tests.ui.appkit import store_devices, store_fleet

    db = tmp_path / "cache.db"
    for minutes in (600, 300, 120, 60, 30, 10):
        store_fleet(db, at=NOW - timedelta(minutes=minutes))
    store_devices(db)

    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        pilot.app.screen.query_one("#fleet-table").move_cursor_to("gpu-01")
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_time_travel_banner(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    """Fleet as of an earlier poll: the AS OF banner and the values of that moment."""
    from tests.ui.appkit import store_fleet

    db = tmp_path / "cache.db"
    store_fleet(db, at=NOW - timedelta(hours=2))
    store_fleet(db, at=NOW - timedelta(minutes=5))
    app = make_app(tmp_path)
    app.at = NOW - timedelta(hours=1)
    assert snap_compare(app, terminal_size=size, run_before=keys("4"))
