"""How the command starts the TUI (issue 8's first paint): first screen, then config, then GC."""

from __future__ import annotations

import gc
from pathlib import Path

from textual.widgets import DataTable

from tests.ui.appkit import make_app, store_live
from tests.ui.test_app_errors import deferred_app


async def test_the_deferred_config_applies_start_screen_keys_and_cache(tmp_path: Path) -> None:
    store_live(tmp_path / "cache.db")
    app = deferred_app(tmp_path, '[ui]\nstart_screen = "rankings"\n[keys]\n"poll.refresh" = "R"\n')
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.current_mode == "rankings"  # composed first, before the config was read
        for _ in range(50):  # the config loads in a thread; the screen reads after it
            await pilot.pause(0.05)
            if app.screen.query_one(DataTable).row_count:
                break
        assert app.screen.query_one(DataTable).row_count > 0
        assert app.config.ui.start_screen == "rankings"
        active = app.screen.active_bindings  # the key remap applied
        assert "R" in active and active["R"].binding.action == "refresh"
    assert app.fatal_message is None


async def test_the_gc_paused_for_the_start_comes_back_with_the_start_frozen(
    tmp_path: Path,
) -> None:
    gc.disable()  # as cli.run_tui does before importing the app
    try:
        app = make_app(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert gc.isenabled()
            assert gc.get_freeze_count() > 10_000  # modules, classes, widgets, CSS rules
    finally:
        gc.enable()
        gc.unfreeze()


async def test_an_app_started_with_the_gc_on_leaves_it_alone(tmp_path: Path) -> None:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
    assert gc.isenabled() and gc.get_freeze_count() == 0
