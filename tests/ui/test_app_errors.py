"""Start-up problems end the TUI with one clear line and an exit status, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from explorer.config import Config
from tests.support.ui import deferred_app
from tests.ui.appkit import make_app


async def test_unset_credentials_variable_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEET_PASSWORD_UNSET", raising=False)
    config = Config.model_validate(
        {
            "fleet": {
                "local": {"enabled": False},
                "targets": [
                    {
                        "name": "gpu-01",
                        "url": "http://127.0.0.1:9/metrics",
                        "basic_auth": {"username": "ops", "password_env": "FLEET_PASSWORD_UNSET"},
                    }
                ],
            }
        }
    )
    app = make_app(tmp_path, poll=True, offline=False, config=config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
    assert app.return_code == 2
    assert app.fatal_message is not None
    assert (
        app.fatal_message.startswith("config error: ")
        and "FLEET_PASSWORD_UNSET" in app.fatal_message
    )


async def test_a_bad_config_found_after_the_first_frame_ends_the_app_with_status_2(
    tmp_path: Path,
) -> None:
    app = deferred_app(tmp_path, '[ui]\nstart_screen = "rankings"\nbogus = 1\n')
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
    assert app.return_code == 2
    assert app.fatal_message is not None
    assert app.fatal_message.startswith("config error: ") and "ui.bogus" in app.fatal_message
    assert not (tmp_path / "state.json").exists()  # a session that never loaded leaves no state
