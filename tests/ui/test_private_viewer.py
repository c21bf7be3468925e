"""Private mode in the remote viewers: fixed on by ``serve --private`` / ``ssh-serve --private``,
and remembered per SSH key (its state file) otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from explorer.app import DepinExplorerApp
from explorer.config import Secrets
from explorer.host import Viewer
from screens.rewards import RewardsScreen
from tests.support.ui import settle
from tests.ui.appkit import frozen
from tests.ui.rewardskit import ECONOMICS, rewards_cache
from tests.ui.test_rewards_screen import EARNINGS, screen_text


def _viewer(
    tmp_path: Path, viewer: Viewer | None, *, private: bool = False, start: str | None = None
) -> DepinExplorerApp:
    return DepinExplorerApp(
        ECONOMICS,
        Secrets(),
        tmp_path / "cache.db",
        offline=True,
        state_path=tmp_path / "key-state.json",
        clock=frozen,
        poll=False,
        private=private,
        viewer=viewer,
        _start_screen=start,
    )


def _palette_titles(app: DepinExplorerApp) -> list[str]:
    return [command.title for command in app.get_system_commands(app.screen)]


def _toasts(app: DepinExplorerApp) -> list[str]:
    return [n.message for n in app._notifications]


@pytest.mark.parametrize("viewer", ["browser", "ssh"])
async def test_a_viewer_the_server_made_private_stays_private(
    tmp_path: Path, viewer: Viewer
) -> None:
    rewards_cache(tmp_path)
    state = tmp_path / "key-state.json"
    state.write_text(json.dumps({"private": False}))  # the server's --private wins over this
    app = _viewer(tmp_path, viewer, private=True, start="rewards")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert app.private
        assert "private mode is fixed by the server" in _toasts(app)
        shown = screen_text(app)
        assert "•••" in shown and not [e for e in EARNINGS if e in shown]
        assert "Private mode" not in _palette_titles(app)
        await pilot.press("ctrl+p")  # the palette, searched for it, offers nothing to run
        await settle(pilot)
        await pilot.press(*"private", "enter")
        await settle(pilot)
        assert app.private
    assert json.loads(state.read_text())["private"] is False  # a refused toggle writes nothing


async def test_the_palette_toggles_private_where_the_server_did_not_fix_it(
    tmp_path: Path,
) -> None:
    rewards_cache(tmp_path)
    app = _viewer(tmp_path, "browser", start="rewards")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert "Private mode" in _palette_titles(app)
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"private mode", "enter")
        await settle(pilot)
        assert app.private
        shown = screen_text(app)
        assert "•••" in shown and not [e for e in EARNINGS if e in shown]


async def test_an_ssh_key_that_left_private_on_starts_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rewards_cache(tmp_path)
    state = tmp_path / "key-state.json"
    state.write_text(json.dumps({"private": True, "databases": {}}))
    seen: list[bool] = []
    render = RewardsScreen.render_data

    def spy(screen: RewardsScreen, data: object) -> None:
        seen.append(screen.app.private)  # type: ignore[attr-defined]
        render(screen, data)  # type: ignore[arg-type]

    monkeypatch.setattr(RewardsScreen, "render_data", spy)
    app = _viewer(tmp_path, "ssh", start="rewards")
    assert app.private and not app.private_fixed  # before the app runs: before its first frame
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert seen and all(seen)  # every render of Rewards, the first one too, was private
        shown = screen_text(app)
        assert "•••" in shown and not [e for e in EARNINGS if e in shown]
        await pilot.press("p")  # the key's own choice: it may show earnings again
        await settle(pilot)
        assert not app.private
        assert "402.88" in screen_text(app) or "$7.70" in screen_text(app)
    assert json.loads(state.read_text())["private"] is False


async def test_an_ssh_key_toggling_private_is_kept_for_its_next_login(tmp_path: Path) -> None:
    rewards_cache(tmp_path)
    state = tmp_path / "key-state.json"
    first = _viewer(tmp_path, "ssh")
    async with first.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert not first.private  # no state file yet
        await pilot.press("p")
        await settle(pilot)
    stored = json.loads(state.read_text())
    assert stored["private"] is True
    assert list(stored["databases"].values())[0]["last_looked"]  # the rest kept as before
    assert _viewer(tmp_path, "ssh").private


async def test_the_local_tui_keeps_private_mode_to_itself(tmp_path: Path) -> None:
    rewards_cache(tmp_path)
    state = tmp_path / "key-state.json"
    state.write_text(json.dumps({"private": True}))  # an ssh key's habit is not the local user's
    app = _viewer(tmp_path, None, private=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert not app.private_fixed  # --private on the local TUI only starts it private
        await pilot.press("p")
        await settle(pilot)
        assert not app.private
    assert json.loads(state.read_text())["private"] is True  # not written by the local TUI
    assert not _viewer(tmp_path, None).private
