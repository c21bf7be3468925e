"""Fixtures of the reliability tests: a cache path, a writer, an unprivileged user."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.privdrop import unprivileged  # noqa: F401 - a fixture, used by name


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "history.db"


@pytest.fixture
def writer(db_path: Path) -> Iterator[sqlite3.Connection]:
    from cache.db import open_writer

    conn = open_writer(db_path)
    try:
        yield conn
    finally:
        conn.close()
