"""Start-up problems end the TUI with one clear line and an exit status, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from explorer.config import Config
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
