"""explorer/setup.py: the TUI's setup, loaded in a thread after the first frame."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from explorer.config import Config, Secrets
from explorer.setup import (
    ConfigError,
    PendingSetup,
    Setup,
    load_setup,
    read_toml,
    start_screen,
)


def a_setup(db: str = "cache.db") -> Setup:
    return Setup(Path("config.toml"), Config(), Secrets(), Path(db))


def test_a_given_setup_is_ready_at_once() -> None:
    setup = a_setup()
    pending = PendingSetup(setup)
    assert not pending.pending and pending.ok and pending.get() is setup


def test_readers_wait_for_the_loader() -> None:
    release = threading.Event()
    setup = a_setup()

    def load() -> Setup:
        assert release.wait(10)
        return setup

    pending = PendingSetup(loader=load)
    got: list[Setup] = []
    reader = threading.Thread(target=lambda: got.append(pending.get()))
    reader.start()
    reader.join(0.2)
    assert reader.is_alive() and pending.pending  # still waiting: nothing loaded yet
    loader = threading.Thread(target=pending.load)
    loader.start()
    release.set()
    loader.join(10)
    reader.join(10)
    assert got == [setup] and pending.ok


def test_a_failed_load_raises_and_readers_get_the_fallback() -> None:
    def load() -> Setup:
        raise ConfigError("config.toml: ui.bogus: Extra inputs are not permitted")

    fallback = a_setup("fallback.db")
    pending = PendingSetup(loader=load, fallback=lambda: fallback)
    with pytest.raises(ConfigError, match="bogus"):
        pending.load()
    assert not pending.pending and not pending.ok
    assert pending.get() is fallback


def test_without_a_fallback_a_failed_load_is_a_config_error_for_readers() -> None:
    def load() -> Setup:
        raise ConfigError("bad")

    pending = PendingSetup(loader=load)
    with pytest.raises(ConfigError):
        pending.load()
    with pytest.raises(ConfigError, match="bad"):
        pending.get()


def test_setup_or_loader_not_both() -> None:
    with pytest.raises(ValueError):
        PendingSetup(a_setup(), loader=a_setup)
    with pytest.raises(ValueError):
        PendingSetup()


@pytest.mark.parametrize(
    ("text", "screen"),
    [
        ('[ui]\nstart_screen = "rankings"\n', "rankings"),
        ('[ui]\nstart_screen = "overview"\n', "overview"),
        ('[ui]\nstart_screen = "fleet"\n', "overview"),  # not allowed: validation will say so
        ("[ui]\nstart_screen = 3\n", "overview"),
        ("ui = 3\n", "overview"),
        ("", "overview"),
    ],
)
def test_start_screen_is_read_without_validation(tmp_path: Path, text: str, screen: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert start_screen(read_toml(path, required=True)) == screen


def test_no_file_is_the_defaults_unless_one_was_asked_for(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert read_toml(missing, required=False) is None and start_screen(None) == "overview"
    with pytest.raises(ConfigError, match="missing.toml: no such file"):
        read_toml(missing, required=True)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"[ui\n", "not valid TOML"), (b"\xff\xfe", "cannot read")],
)
def test_a_malformed_file_is_a_config_error_before_any_pydantic(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=problem):
        read_toml(path, required=False)


def test_load_setup_reads_config_and_cache_path(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[cache]\npath = "{tmp_path / "fleet.db"}"\n')
    setup = load_setup(path, required=True, log_file=tmp_path / "log" / "x.log")
    assert setup.db_path == tmp_path / "fleet.db" and setup.log_problem is None
    override = load_setup(path, required=True, db=tmp_path / "o.db", log_file=tmp_path / "x.log")
    assert override.db_path == tmp_path / "o.db"


def test_load_setup_says_why_the_log_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    setup = load_setup(tmp_path / "none.toml", required=False, log_file=blocker / "x.log")
    assert setup.log_problem and "cannot write the log" in setup.log_problem


def test_load_setup_validates_the_toml_already_read(tmp_path: Path) -> None:
    # the TUI reads the file before it starts; the thread validates that, not a second read
    path = tmp_path / "config.toml"
    path.write_text('[ui]\nstart_screen = "overview"\n')
    data = read_toml(path, required=True)
    path.write_text("[ui\n")  # edited meanwhile: not read again
    setup = load_setup(path, required=True, log_file=tmp_path / "x.log", data=data)
    assert setup.config.ui.start_screen == "overview"


def test_an_unexpected_failure_is_a_config_error_and_never_ok() -> None:
    def load() -> Setup:
        raise KeyError("bug")

    pending = PendingSetup(loader=load, fallback=a_setup)
    with pytest.raises(ConfigError, match="cannot load the setup: KeyError"):
        pending.load()
    assert not pending.ok and pending.get().db_path == Path("cache.db")  # the fallback
    assert not pending.ok  # a fallback handed to readers does not make it ok


def test_a_loader_past_the_wait_gives_every_reader_the_fallback_and_is_not_taken_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("explorer.setup.SETUP_WAIT", 0.05)
    release = threading.Event()
    fallback = a_setup("fallback.db")

    def load() -> Setup:
        assert release.wait(10)
        return a_setup()

    pending = PendingSetup(loader=load, fallback=lambda: fallback)
    loader = threading.Thread(target=lambda: pytest.raises(ConfigError, pending.load))
    loader.start()
    assert pending.get() is fallback  # after 0.05 s
    assert pending.get() is fallback and not pending.pending  # no second wait
    release.set()
    loader.join(10)
    assert not loader.is_alive()
    assert pending.get() is fallback and not pending.ok  # the late result was not taken
    assert pending.error is not None and "did not load" in str(pending.error)
