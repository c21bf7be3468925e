"""The README's screenshots are the app's own SVG export at 120x40, and they are current.

Each test builds one prepared cache (rankings, networks, a small fleet polled over ten hours,
io.net devices and rewards) with the clock frozen, opens a screen as a user would, exports it
(``App.export_screenshot``) and compares it with the file under docs/screenshots/. After a
deliberate UI change: ``UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/ui/test_readme_screenshots.py``,
then look at the new files before committing them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.support.ui import live_cache, settle
from tests.ui.appkit import NOW, make_app, store_devices, store_fleet, store_networks

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
SIZE = (120, 40)
UPDATE_ENV = "UPDATE_SCREENSHOTS"
# Rich names the SVG's CSS classes after a random id (terminal-<digits>-…); a fixed one keeps
# the files comparable and their diffs small.
UNIQUE_ID = re.compile(r"\bterminal-\d+")


def prepared_cache(tmp_path: Path) -> None:
    """Every source the three screens draw, the newest poll under a minute old."""
    db = tmp_path / "cache.db"
    live_cache(tmp_path)
    store_networks(db, at=NOW - timedelta(hours=1))
    store_networks(db)
    for minutes in (600, 300, 120, 60, 30, 10):
        store_fleet(db, at=NOW - timedelta(minutes=minutes))
    store_fleet(db)
    store_devices(db)


async def overview(pilot: Pilot[None]) -> None:
    await settle(pilot)


async def fleet(pilot: Pilot[None]) -> None:
    await settle(pilot)
    await pilot.press("4")
    await settle(pilot)


async def node(pilot: Pilot[None]) -> None:
    await fleet(pilot)
    pilot.app.screen.query_one("#fleet-table").move_cursor_to("gpu-01")  # type: ignore[attr-defined]
    await pilot.press("enter")
    await settle(pilot)


SCREENS: dict[str, Callable[[Pilot[None]], Awaitable[None]]] = {
    "overview": overview,
    "fleet": fleet,
    "node": node,
}


async def screenshot(tmp_path: Path, name: str) -> str:
    prepared_cache(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await SCREENS[name](pilot)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        svg = app.export_screenshot(title=f"depin-explorer · {name}", simplify=True)
    return UNIQUE_ID.sub("terminal-depin-explorer", svg)


@pytest.mark.parametrize("name", list(SCREENS))
async def test_readme_screenshot_is_current(tmp_path: Path, name: str) -> None:
    svg = await screenshot(tmp_path, name)
    path = SHOTS / f"{name}.svg"
    if os.environ.get(UPDATE_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(svg, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with {UPDATE_ENV}=1 to create it"
    assert path.read_text(encoding="utf-8") == svg, (
        f"{path.relative_to(ROOT)} is not what the app draws now; if the change is deliberate, "
        f"run {UPDATE_ENV}=1 .venv/bin/pytest {Path(__file__).relative_to(ROOT)} "
        "and look at the new file before committing it"
    )


def test_readme_embeds_every_screenshot() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in SCREENS:
        assert f"](docs/screenshots/{name}.svg)" in readme
