"""Shared fixtures for the cache, config and CLI unit tests.

Every test gets its own platform dirs (config, data, state) under its tmp_path and no CoinGecko
key or config path from the caller's environment, so nothing is read from or written to the
real home directory.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_platform_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    dirs = {
        "config": tmp_path / "xdg-config",
        "data": tmp_path / "xdg-data",
        "state": tmp_path / "xdg-state",
    }
    monkeypatch.setenv("XDG_CONFIG_HOME", str(dirs["config"]))
    monkeypatch.setenv("XDG_DATA_HOME", str(dirs["data"]))
    monkeypatch.setenv("XDG_STATE_HOME", str(dirs["state"]))
    for name in ("DEPIN_EXPLORER_CONFIG", "COINGECKO_API_KEY", "COINGECKO_API_PLAN", "IONET_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return dirs


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """The CLI installs a rotating file handler on the root logger: close it after each test."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    level = root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def depin_page() -> list[dict[str, Any]]:
    """The written CoinGecko /coins/markets page (six DePIN coins, helium without 24h)."""
    return json.loads((FIXTURES / "coingecko_markets_depin.written.json").read_text())


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def reader(writer: sqlite3.Connection, db_path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection as screens and exports use, opened after the writer migrated."""
    from cache.db import open_reader

    conn = open_reader(db_path)
    try:
        yield conn
    finally:
        conn.close()
