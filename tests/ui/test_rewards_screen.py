"""The Rewards screen (sort, period, per day, drill-down), private mode on every screen that shows
earnings, and `e` exports: the file holds what the table shows, formula cells neutralised."""

from __future__ import annotations

import csv
import html
import re
from datetime import timedelta
from pathlib import Path

from textual.app import App

from cache.export import neutralise
from explorer.exports import exports_dir
from screens.fleet import FleetScreen
from screens.node import NodeScreen
from screens.rewards import MONEY, RewardsScreen
from screens.widgets.fleet_table import FleetTable
from sources.models import NodeSample, Reading
from tests.support.ui import settle
from tests.ui.appkit import NOW, make_app, store
from tests.ui.rewardskit import ECONOMICS, rewards_cache

EARNINGS = ("4.75", "$7.70", "$6.59", "402.88", "38.51", "0.2500")
"""gpu-01's IO over 24 h, its value at $1.62, its net, io.net's totals and a block's amount."""


def screen_text(app: App[None]) -> str:
    """Every character on screen, as the terminal would show it."""
    svg = app.export_screenshot()
    body = svg[svg.index("</style>") :]  # the CSS holds digits of its own
    return html.unescape(re.sub(r"<[^>]+>", "", body)).replace("\xa0", " ")


async def open_rewards(pilot) -> FleetTable:
    await pilot.press("5")
    await settle(pilot)
    assert isinstance(pilot.app.screen, RewardsScreen)
    return pilot.app.screen.query_one(FleetTable)


async def test_rewards_sort_period_days_and_drill_down(tmp_path: Path) -> None:
    rewards_cache(tmp_path)
    app = make_app(tmp_path, config=ECONOMICS)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_rewards(pilot)
        screen = app.screen
        assert table.sort_state == ("net", True)
        assert table.visible_keys()[0] == "gpu-01"  # the only node with a net
        row = dict(zip([c.key for c in table.columns], table.row_for("gpu-01"), strict=True))
        assert row["rewards"] == 4.75  # 19 paid blocks of 0.25 in the last 24 h
        assert abs(row["value_usd"] - 4.75 * 1.62) < 1e-9
        text = screen_text(app)
        assert "$7.70" in text and "46 h older than their rewards" in text
        await pilot.press("s")  # the next column after net: payback, descending
        assert table.sort_state == ("payback_days", True)
        await pilot.press("S")
        assert table.sort_state == ("payback_days", False)
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert screen.period_index == 1 and "last 7 d" in screen_text(app)
        row = dict(zip([c.key for c in table.columns], table.row_for("gpu-01"), strict=True))
        assert row["rewards"] == 6.0  # all 29 blocks, 24 of them paid
        await pilot.press("v")
        await settle(pilot)
        assert [c.key for c in table.columns][0] == "day"
        assert table.visible_keys() == ["2026-11-25", "2026-11-24"]  # newest first
        await pilot.press("v")
        await settle(pilot)
        table.move_cursor_to("gpu-02")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, NodeScreen)
        assert (app.screen.node_name, app.screen.source_kind) == ("gpu-02", "exporter")


async def test_private_mode_hides_earnings_everywhere(tmp_path: Path) -> None:
    rewards_cache(tmp_path)
    app = make_app(tmp_path, config=ECONOMICS)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_rewards(pilot)
        assert "$7.70" in screen_text(app)
        await pilot.press("p")
        await settle(pilot)
        assert app.private
        shown = screen_text(app)
        assert "•••" in shown and not [e for e in EARNINGS if e in shown]
        assert "29.3" in shown or "GPU-h" in shown  # what is not money stays
        await pilot.press("4")
        await settle(pilot)
        assert isinstance(app.screen, FleetScreen)
        shown = screen_text(app)
        assert "••• IO earned 24h" in shown and not [e for e in EARNINGS if e in shown]
        app.screen.query_one(FleetTable).move_cursor_to("gpu-01")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, NodeScreen)
        shown = screen_text(app)
        assert "earned ••• IO to date" in shown and not [e for e in EARNINGS if e in shown]
        await pilot.press("p")  # and back
        await settle(pilot)
        assert "402.88" in screen_text(app)


async def test_private_flag_from_the_start(tmp_path: Path) -> None:
    rewards_cache(tmp_path)
    app = make_app(tmp_path, config=ECONOMICS)
    app.private = True  # as --private sets it
    async with app.run_test(size=(80, 24)) as pilot:
        await open_rewards(pilot)
        shown = screen_text(app)
        assert not [e for e in EARNINGS if e in shown]


def written(before: set[Path]) -> Path:
    [path] = set(exports_dir().glob("*.csv")) - before
    return path


async def test_export_writes_what_is_shown(tmp_path: Path) -> None:
    rewards_cache(tmp_path)
    hostile = NodeSample(
        node="=HYPERLINK(1)", source_kind="exporter", network="io.net", up=True, cpu_pct=1.0
    )
    store(tmp_path / "cache.db", "fleet", NOW - timedelta(seconds=10), Reading(nodes=[hostile]))
    app = make_app(tmp_path, config=ECONOMICS)
    toasts: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.notify = lambda message, **_: toasts.append(str(message))  # type: ignore[method-assign]
        await pilot.press("4")
        await settle(pilot)
        table = app.screen.query_one(FleetTable)
        await pilot.press("slash", *"io.net", "enter")
        await pilot.press("s")  # CPU%, descending
        shown = [table.row_for(k) for k in table.visible_keys()]
        assert len(shown) == 4 and shown[0][0] == "gpu-02"
        await pilot.press("e")
        await settle(pilot)
        path = written(set())
        assert toasts[-1].endswith(f"4 rows written to {path}")
        assert path.parent == exports_dir() and path.stat().st_mode & 0o777 == 0o600
        with path.open(newline="") as handle:
            lines = list(csv.reader(handle))
        assert lines[0] == [c.key for c in table.columns]
        assert [line[0] for line in lines[1:]] == ["gpu-02", "gpu-01", "'=HYPERLINK(1)", "gpu-03"]
        assert lines[1:] == [["" if v is None else str(neutralise(v)) for v in r] for r in shown]
        assert lines[2][lines[0].index("reward_24h")] == "4.75"
        assert lines[2][lines[0].index("seen_s")] == "20.0"  # raw seconds, not "20 s"
        await pilot.press("p", "e")  # private: the earnings column is hidden in the file too
        await settle(pilot)
        private = written({path})
        assert private.name != path.name  # never overwritten, even within the same second
        text = private.read_text()
        assert "4.75" not in text and "•••" in text
        await pilot.press("p", "5")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        rewards = written({path, private})
        with rewards.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        table = app.screen.query_one(FleetTable)
        assert [r["node"] for r in rows] == [neutralise(k) for k in table.visible_keys()]
        assert rows[0]["token"] == "IO" and rows[0]["rewards"] == "4.75"


async def test_export_on_a_screen_without_a_table_says_so(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    toasts: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        app.notify = lambda message, **_: toasts.append(str(message))  # type: ignore[method-assign]
        await settle(pilot)
        await pilot.press("3", "e")  # Networks: panels, not a table
        await settle(pilot)
        assert toasts[-1] == "no table to export on this screen"
        assert not exports_dir().exists() or not list(exports_dir().iterdir())


async def test_private_mode_never_orders_rows_by_what_it_hides(tmp_path: Path) -> None:
    rewards_cache(tmp_path)
    app = make_app(tmp_path, config=ECONOMICS)
    app.private = True
    async with app.run_test(size=(120, 40)) as pilot:
        await open_rewards(pilot)  # by default sorted by net, which private mode hides
        table = app.screen.query_one(FleetTable)
        assert table.sort_state == ("node", False)
        for _ in range(len(table.columns) + 1):  # s cycles through the columns it may show
            await pilot.press("s")
            await pilot.pause()
            assert table.sort_state is not None and table.sort_state[0] not in MONEY
        await pilot.press("4")
        await settle(pilot)
        fleet = app.screen.query_one(FleetTable)
        for _ in range(len(fleet.columns) + 1):
            await pilot.press("s")
            await pilot.pause()
            assert fleet.sort_state is not None and fleet.sort_state[0] != "reward_24h"
        await pilot.press("p")  # shown again: the earnings column sorts as before
        await settle(pilot)
        for _ in range(len(fleet.columns)):
            if fleet.sort_state and fleet.sort_state[0] == "reward_24h":
                break
            await pilot.press("s")
            await pilot.pause()
        assert fleet.sort_state == ("reward_24h", True)
        await pilot.press("p")  # hidden while sorted by it: back to the status order
        await settle(pilot)
        assert fleet.sort_state == ("status", False)


async def test_missed_blocks_marked_listed_and_explained(tmp_path: Path) -> None:
    rewards_cache(tmp_path, misses=True)
    app = make_app(tmp_path, config=ECONOMICS)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_rewards(pilot)
        keys = [c.key for c in table.columns]
        cells = {k: dict(zip(keys, table.row_for(k), strict=True)) for k in ("gpu-01", "gpu-02")}
        assert (cells["gpu-01"]["missed"], cells["gpu-01"]["why"]) == (4, "no samp.")
        assert (cells["gpu-02"]["missed"], cells["gpu-02"]["why"]) == (3, "down")
        assert dict(zip(keys, table.row_for("cpu-01"), strict=True))["missed"] is None
        await pilot.press("m")
        await settle(pilot)
        assert app.screen.show_misses and table.sort_state == ("at", True)
        rows = [
            dict(zip([c.key for c in table.columns], table.row_for(k), strict=True))
            for k in table.visible_keys()
        ]
        assert [(r["node"], r["at"][11:16], r["cause"], r["seen"]) for r in rows[:3]] == [
            ("gpu-02", "11:00", "failed", "network says down"),
            ("gpu-02", "10:00", "failed", "down 25 min"),
            ("gpu-02", "09:00", "failed", "no samples"),
        ]
        assert rows[1]["down_min"] == 25.0 and rows[1]["sampled_min"] == 60.0
        assert rows[0]["gpu_temp_max_c"] == 92.0 and rows[0]["network_status"] == "down"
        assert rows[2]["cpu_pct"] is None  # nothing guessed for an hour without samples
        assert [r["cause"] for r in rows[3:]] == ["not in block"] * 4
        shown = screen_text(app)
        assert "missed blocks" in shown
        assert "gpu-02      1 earned / 3 missed (3 failed)" in shown
        assert "down 25 min in 1 of 3 missed blocks" in shown
        assert "no samples in 4 of 4 missed blocks" in shown
        await pilot.press("enter")  # the block's node
        await settle(pilot)
        assert isinstance(app.screen, NodeScreen) and app.screen.node_name == "gpu-02"
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("p")  # private: counts and causes stay, no amount anywhere
        await settle(pilot)
        shown = screen_text(app)
        assert "3 missed (3 failed)" in shown and "4.75" not in shown and "0.25" not in shown
        await pilot.press("m")  # back to the nodes
        await settle(pilot)
        assert not app.screen.show_misses and "missed" in [c.key for c in table.columns]


async def test_missed_blocks_as_of_t(tmp_path: Path) -> None:
    rewards_cache(tmp_path, misses=True)
    app = make_app(tmp_path, config=ECONOMICS)
    app.at = NOW - timedelta(seconds=150)  # 11:57:30: gpu-02's blocks were fetched at 11:58
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_rewards(pilot)
        await pilot.press("m")
        await settle(pilot)
        nodes = {table.row_for(k)[1] for k in table.visible_keys()}
        assert nodes == {"gpu-01"}
        assert "gpu-02" not in screen_text(app)


async def test_export_of_the_missed_blocks(tmp_path: Path) -> None:
    rewards_cache(tmp_path, misses=True)
    app = make_app(tmp_path, config=ECONOMICS)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_rewards(pilot)
        await pilot.press("m", "e")
        await settle(pilot)
        with written(set()).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 7 and rows[1]["seen"] == "down 25 min"
        assert rows[1]["down_min"] == "25.0" and rows[2]["cpu_pct"] == ""
