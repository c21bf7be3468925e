"""Snapshot tests of the History (diff) view at 80x24 and 120x40, on a fixed cache and clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from screens.history import HistoryScreen
from tests.support.ui import settle
from tests.ui.appkit import make_app
from tests.ui.historykit import LOOKED, history_cache

SIZES = [(80, 24), (120, 40)]


def opened(*presses: str) -> Callable[[Pilot], Awaitable[None]]:
    async def run_before(pilot: Pilot) -> None:
        pilot.app.last_looked = lambda: LOOKED  # the app has no last_looked() yet
        await settle(pilot)
        pilot.app.push_screen(HistoryScreen())
        await settle(pilot)
        for key in presses:
            await pilot.press(key)
        await settle(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_history(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    history_cache(tmp_path)
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=opened())


def test_history_bad_from(snap_compare, tmp_path: Path) -> None:
    history_cache(tmp_path)
    run_before = opened("s", *"last tuesday", "enter")
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=run_before)
