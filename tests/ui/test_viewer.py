"""The remote sessions' read-only viewer (``--viewer``): never polls, never writes the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cache.lock import holder_pid
from explorer.app import DepinExplorerApp
from explorer.config import Config, Secrets
from explorer.host import Viewer
from tests.support.ui import settle
from tests.ui.appkit import frozen, store_live, store_sample


def _viewer(tmp_path: Path, viewer: Viewer) -> DepinExplorerApp:
    return DepinExplorerApp(
        Config(),
        Secrets(),
        tmp_path / "cache.db",
        offline=False,  # not offline: without the viewer flag this app would poll
        state_path=tmp_path / "session-state.json",
        clock=frozen,
        poll=True,
        viewer=viewer,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_viewer_never_polls_and_leaves_the_cache_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    store_sample(db)
    store_live(db)
    before = _digest(db)
    app = _viewer(tmp_path, "ssh")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.pause(0.3)
        assert app.poller is None
        assert not [w for w in app.workers if w.group == "poller"]
        await pilot.press("r")  # refresh: a viewer asks nobody
        await settle(pilot)
        assert app.poller is None
        toasts = [n.message for n in app._notifications]
        assert any("read-only viewer" in t for t in toasts), toasts
        assert app.attached_note() == "read-only viewer"
        assert holder_pid(db) is None  # the writer lock never taken
    assert _digest(db) == before


async def test_an_ssh_viewer_writes_no_export_file(tmp_path: Path, monkeypatch: object) -> None:
    db = tmp_path / "cache.db"
    store_sample(db)
    app = _viewer(tmp_path, "ssh")
    written: list[object] = []
    app._write_export = lambda table: written.append(table)  # type: ignore[method-assign,assignment,return-value]
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")  # Rankings: a table to export
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        toasts = [n.message for n in app._notifications]
    assert not written
    assert any("writes no file" in t for t in toasts), toasts


async def test_a_browser_viewer_outside_a_browser_downloads_nothing(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    store_sample(db)
    app = _viewer(tmp_path, "browser")
    delivered: list[object] = []
    app.deliver_text = lambda *a, **k: delivered.append(a)  # type: ignore[method-assign,assignment,return-value]
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")  # Rankings: a table to export
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        toasts = [n.message for n in app._notifications]
    assert not delivered  # a terminal driver would have saved it on this machine
    assert any("only in a browser" in t for t in toasts), toasts
