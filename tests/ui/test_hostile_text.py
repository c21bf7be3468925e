"""Every corpus string as a project name, symbol, category and error message: shown literally,
no crash, no action fired (reliability.md UI-01, UI-03, UI-04, UI-05 and UI-06)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from screens.project import ProjectScreen
from screens.rankings import RankingsScreen
from tests.support.ui import settle
from tests.ui.appkit import make_app
from tests.ui.hostile import store_hostile_rankings


def files(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


def cell_texts(table: DataTable) -> list[str]:
    return [str(cell) for row in range(table.row_count) for cell in table.get_row_at(row)]


async def test_corpus_on_every_screen_no_crash_no_action(tmp_path: Path) -> None:
    trap = tmp_path / "trap"
    trap.mkdir()
    payloads = store_hostile_rankings(tmp_path / "cache.db", trap)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)  # Overview: movers and the failed poll's error message
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RankingsScreen)
        assert len(screen.shown) == len(payloads)
        table = screen.query_one(DataTable)
        cells = cell_texts(table)
        assert "[bold red]ALERT[/]" in cells  # literal, not styled
        assert "proj [/]" in cells  # no MarkupError
        assert not any(ch in "".join(cells) for ch in "\x1b\x07\x00\x9b\x9d")
        for row in range(min(table.row_count, 30)):  # click every visible name cell
            await pilot.click(DataTable, offset=(20, row + 1))
        await pilot.pause()
        for _ in range(len(payloads)):  # open each project, then come back
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, ProjectScreen)
            await pilot.click("#project-title", offset=(2, 0))
            await pilot.press("escape")
            await pilot.press("down")
        assert app.is_running
    assert files(trap, "*") == []  # the screenshot payload wrote nothing
    assert app.return_code in (None, 0)


async def test_app_refuses_actions_outside_its_allow_list(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        for action in (
            "screenshot",
            "suspend_process",
            "simulate_key('q')",
            "quit",
            "push_screen('help')",
            "switch_mode('rankings')",
        ):
            await app.run_action(f"app.{action}")
            await pilot.pause()
            assert app.is_running
        assert app.check_action("refresh", ()) is True
        assert app.check_action("screenshot", ()) is False
    assert files(tmp_path, "*.svg") == []
