"""How the command starts the TUI (issue 8's first paint): first screen, then config, then GC."""

from __future__ import annotations

import gc
from datetime import timedelta
from pathlib import Path

from textual.widgets import DataTable

from explorer.config import Config
from screens.widgets.status_line import StatusLine
from tests.support.ui import deferred_app
from tests.ui.appkit import NOW, make_app, store_fleet, store_live


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


async def test_a_reader_learns_the_fleet_interval_in_a_thread_and_redraws_the_status(
    tmp_path: Path,
) -> None:
    # Offline or attached, the sources' intervals are built off the UI thread; until then the
    # status line uses the config section's default, and it is redrawn once they arrive.
    store_fleet(tmp_path / "cache.db", at=NOW - timedelta(seconds=60))
    config = Config.model_validate(
        {"fleet": {"interval": 15, "prometheus": [{"url": "http://127.0.0.1:9"}]}}
    )
    app = make_app(tmp_path, config=config)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        status = ""
        for _ in range(60):  # 3 s, under the 5 s status tick: the redraw is what shows it
            await pilot.pause(0.05)
            status = str(app.screen.query_one(StatusLine).render())
            if "stale" in status:
                break
        assert "promql · cached · 1 min ago (stale)" in status  # 60 s > 2 x 15 s
        assert app.source_interval("promql") == 15


async def test_the_status_line_is_redrawn_when_the_intervals_arrive(tmp_path: Path) -> None:
    from explorer.registry import SourceSettings

    store_fleet(tmp_path / "cache.db", at=NOW - timedelta(seconds=60))
    app = make_app(tmp_path)  # no [[fleet.prometheus]]: "promql" falls back to 120 s
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        for _ in range(40):
            await pilot.pause(0.05)
            if "promql" in str(app.screen.query_one(StatusLine).render()):
                break
        assert "(stale)" not in str(app.screen.query_one(StatusLine).render())
        app._settings = None  # as if they were still being built
        app._settings_loaded({"promql": SourceSettings(interval=15, timeout=5)})
        await pilot.pause()
        assert "promql · cached · 1 min ago (stale)" in str(
            app.screen.query_one(StatusLine).render()
        )
