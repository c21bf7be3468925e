"""Snapshot tests of the Rewards screen at 80x24 and 120x40, on a fixed cache and clock: per
node with the missed-blocks columns, the missed blocks themselves, private mode per day."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.ui import SIZES, keys
from tests.ui.appkit import make_app
from tests.ui.rewardskit import ECONOMICS, rewards_cache


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_rewards(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    rewards_cache(tmp_path, misses=True)
    app = make_app(tmp_path, config=ECONOMICS)
    assert snap_compare(app, terminal_size=size, run_before=keys("5"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_rewards_missed_blocks(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    rewards_cache(tmp_path, misses=True)
    app = make_app(tmp_path, config=ECONOMICS)
    assert snap_compare(app, terminal_size=size, run_before=keys("5", "m"))


def test_rewards_private_by_day(snap_compare, tmp_path: Path) -> None:
    rewards_cache(tmp_path)
    app = make_app(tmp_path, config=ECONOMICS)
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("5", "p", "v"))
