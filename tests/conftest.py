"""Shared test setup: local time is UTC, platform dirs and keys are isolated per test."""

from __future__ import annotations

import ipaddress
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["TZ"] = "UTC"
time.tzset()


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    base = tmp_path_factory.mktemp("xdg")
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(name, str(base / name.lower()))
    for name in ("DEPIN_EXPLORER_CONFIG", "COINGECKO_API_KEY", "COINGECKO_API_PLAN", "IONET_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    # tests talk to 127.0.0.1 only; a proxy from the environment must not carry them elsewhere
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Tests never reach the internet: a name that is not loopback does not resolve."""
    name = host.decode() if isinstance(host, bytes) else host
    if name in (None, "localhost"):
        return _real_getaddrinfo(host, *args, **kwargs)
    try:
        if ipaddress.ip_address(name).is_loopback:
            return _real_getaddrinfo(host, *args, **kwargs)
    except ValueError:
        pass
    raise socket.gaierror(socket.EAI_NONAME, f"tests resolve loopback only, not {name}")


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only)


# The cache file and its writer, for the unit and reliability tests.
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
