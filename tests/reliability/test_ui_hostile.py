"""UI cases of docs/reliability.md not covered elsewhere: UI-07 (huge strings), UI-08 (screenshots
parse as XML), UI-09 (a lone surrogate from JSON), UI-10 (a 2,000-row table updated again and
again stays responsive and flat in memory). UI-01..UI-06 are tests/ui/test_hostile_text.py and
tests/ui/test_pty.py."""

from __future__ import annotations

import gc
import json
import random
import re
import time
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.cells import cell_len
from textual.widgets import DataTable

from screens.project import ProjectScreen
from screens.rankings import RankingsScreen
from sources.coingecko import parse_markets
from sources.models import Reading
from tests.corpus import FORBIDDEN_SEQUENCES
from tests.support.ui import CountingTable, TableApp, make_rows, settle
from tests.ui.appkit import NOW, make_app, store
from tests.ui.hostile import store_hostile_rankings

RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
LONG = ("A" * 1000, "Z\u0301\u0301", "🧨🧨🧨")  # prefixes of the corpus's huge strings


def assert_clean_svg(svg: str) -> None:
    ET.fromstring(svg)  # parses: no raw control character, no broken markup
    assert not RAW_CONTROL.search(svg)
    for sequence in FORBIDDEN_SEQUENCES:
        assert sequence not in svg


async def test_ui07_ui08_huge_strings_truncated_and_screenshots_parse(tmp_path: Path) -> None:
    trap = tmp_path / "trap"
    trap.mkdir()
    store_hostile_rankings(tmp_path / "cache.db", trap)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert_clean_svg(app.export_screenshot())  # Overview with the hostile error message
        started = time.perf_counter()
        await pilot.press("2")
        await settle(pilot)
        shown_in = time.perf_counter() - started
        assert isinstance(app.screen, RankingsScreen)
        table = app.screen.query_one(DataTable)
        cells = [str(c) for row in range(table.row_count) for c in table.get_row_at(row)]
        huge = [c for c in cells if c.startswith(LONG)]
        assert len(huge) >= 3
        assert all(cell_len(c) <= 257 * 2 and len(c) <= 257 and c.endswith("…") for c in huge)
        assert_clean_svg(app.export_screenshot())
        for _ in range(3):  # project pages of the first rows
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, ProjectScreen)
            assert_clean_svg(app.export_screenshot())
            await pilot.press("escape", "down")
        assert app.is_running
    # UI-07 asks for frames under 200 ms; this machine is shared, so only a runaway fails here
    assert shown_in < 10.0, shown_in
    assert list(trap.iterdir()) == []


async def test_ui09_lone_surrogate_from_json_is_shown_as_replacement(tmp_path: Path) -> None:
    body = '[{"id": "s", "symbol": "\\ud800", "name": "node-\\ud800-x", "current_price": 1}]'
    coins, skipped = parse_markets(json.loads(body))
    store(tmp_path / "cache.db", "coingecko", NOW, Reading(market=coins, skipped=skipped))
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        names = [c.name for c in app.screen.shown]  # type: ignore[attr-defined]
        assert names == ["node-\ufffd-x"]
        svg = app.export_screenshot()
        assert_clean_svg(svg)
        svg.encode("utf-8")  # no UnicodeEncodeError on the way out


UPDATES = 12
"""UI-10 updates every 5 s for 60 s; here 12 updates back to back, each answered by a key."""


async def test_ui10_2000_rows_updated_repeatedly_stay_responsive_and_flat() -> None:
    rows, keys = make_rows(2000)
    rng = random.Random(10)
    app = TableApp(rows, keys)
    latencies: list[float] = []
    sizes: list[int] = []
    tracemalloc.start()
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            table = app.query_one(CountingTable)
            await pilot.pause()
            for update in range(UPDATES):
                fresh = [(r[0], r[1], r[2], round(rng.uniform(0, 100), 1), *r[4:]) for r in rows]
                table.update_rows(fresh, list(keys))  # a full update: every CPU value changes
                before = table.cursor_key
                started = time.perf_counter()
                await pilot.press("down")
                await pilot.pause()
                latencies.append(time.perf_counter() - started)
                assert table.cursor_key != before  # the key press was answered
                gc.collect()
                if update >= 2:  # after warm-up
                    sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    print(f"UI-10: key latency max {max(latencies) * 1000:.0f} ms, memory {sizes[0]}..{sizes[-1]}")
    assert max(latencies) < 2.0  # budget 100 ms; a shared 2-core CI box needs slack
    assert sizes[-1] - sizes[0] < 2 * 1024 * 1024  # not growing with each update
