"""The footer rebuilds when the keys it shows change, and only then (issue 8's first paint)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets._footer import FooterKey

from screens.widgets.keys_footer import KeysFooter
from tests.ui.appkit import make_app, store_sample


def shown(footer: KeysFooter) -> list[tuple[str, str]]:
    return [(key.key, key.description) for key in footer.query(FooterKey)]


async def test_the_same_keys_are_not_rebuilt_but_new_keys_are(tmp_path: Path) -> None:
    store_sample(tmp_path / "cache.db")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        footer = app.screen.query_one(KeysFooter)
        before = list(footer.query(FooterKey))
        assert ("r", "Refresh") in shown(footer)
        for _ in range(3):  # what a focus change or a screen resume signals
            app.screen.refresh_bindings()
            await pilot.pause()
        assert list(footer.query(FooterKey)) == before  # the very same widgets: no rebuild

        app.set_keymap({"poll.refresh": "R"})  # e.g. the config's [keys], applied after start
        app.screen.refresh_bindings()
        await pilot.pause()
        await pilot.pause()
        assert ("R", "Refresh") in shown(footer) and ("r", "Refresh") not in shown(footer)

        await pilot.press("2")  # another screen: its own footer with its own keys
        await pilot.pause()
        other = app.screen.query_one(KeysFooter)
        assert other is not footer and ("slash", "Filter") in shown(other)
