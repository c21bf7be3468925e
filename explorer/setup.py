"""Config, secrets, the log and the cache path: loaded once, for a command or for the TUI.

This module imports nothing heavy. Validating the config means importing pydantic and building
the config models, about 70 ms on a 2-core machine (docs/performance.md); the TUI draws its
first frame before paying that, so its setup is a :class:`PendingSetup` loaded in a thread after
the first frame. Anything that needs the setup before then waits for it.
"""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from explorer.errors import ConfigError as ConfigError  # where the loader's callers look
from explorer.paths import default_db_path, default_log_path

if TYPE_CHECKING:
    from explorer.config import Config, Secrets

START_SCREENS = ("overview", "rankings")
"""The screens ``[ui] start_screen`` may name (explorer.config validates the same list)."""
SETUP_WAIT = 30.0
"""Seconds a reader waits for the TUI's setup before it gives up on it (a loader that hangs)."""


@dataclass
class Setup:
    """Everything a command needs, loaded once with clear errors."""

    config_path: Path
    config: Config
    secrets: Secrets
    db_path: Path
    log_problem: str | None = None
    """Why the debug log cannot be written, if it cannot (the command goes on without it)."""


def load_setup(
    config_path: Path,
    *,
    required: bool,
    db: Path | None = None,
    log_file: Path | None = None,
    data: dict[str, Any] | None = None,
) -> Setup:
    """Validate the config and secrets, start the redacting log; raise ConfigError.

    ``data``: the config file's TOML if it was read already (:func:`read_toml`).
    """
    from explorer.config import load_config, load_secrets
    from explorer.logsetup import setup_logging

    config = load_config(config_path, required=required, data=data)
    secrets = load_secrets(secrets_file=config_path.parent / "secrets.toml")
    keys = [secrets.coingecko_api_key.get_secret_value()] if secrets.coingecko_api_key else []
    problem = None
    try:
        setup_logging(log_file or default_log_path(), keys)
    except OSError as exc:
        problem = f"cannot write the log: {exc}"
    db_path = (db or config.cache.path or default_db_path()).expanduser()
    return Setup(config_path, config, secrets, db_path, problem)


def read_toml(path: Path, *, required: bool) -> dict[str, Any] | None:
    """The file's TOML (None when there is no file and none was asked for); raise ConfigError.

    Cheap (no pydantic): the TUI calls it before it starts, so that a missing, unreadable or
    malformed file ends with its one line before anything is drawn.
    """
    if not path.exists():
        if required:
            raise ConfigError(f"{path}: no such file")
        return None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc


def start_screen(data: dict[str, Any] | None) -> str:
    """``[ui] start_screen`` read without validation, to compose the right first screen.

    Anything unexpected gives the default; the validation after the first frame reports it.
    """
    ui = (data or {}).get("ui")
    screen = ui.get("start_screen") if isinstance(ui, dict) else None
    return screen if screen in START_SCREENS else START_SCREENS[0]


class PendingSetup:
    """A setup that is known now, or loaded later by one thread while others wait for it.

    ``get`` blocks until ``load`` has finished. After a failed load it returns ``fallback()``
    (the defaults) so that a reader caught mid-wait finishes harmlessly while the app exits
    with the error; the app never polls or writes on a fallback.
    """

    def __init__(
        self,
        setup: Setup | None = None,
        *,
        loader: Callable[[], Setup] | None = None,
        fallback: Callable[[], Setup] | None = None,
    ) -> None:
        if (setup is None) == (loader is None):
            raise ValueError("a setup or a loader, not both")
        self._setup = setup
        self._loader = loader
        self._fallback = fallback
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._loaded = setup is not None
        self.error: ConfigError | None = None
        if setup is not None:
            self._done.set()

    @property
    def pending(self) -> bool:
        """Whether ``load`` has yet to run."""
        return not self._done.is_set()

    @property
    def ok(self) -> bool:
        """Loaded (or given) without an error; a fallback is not."""
        return self._loaded

    def load(self) -> Setup:
        """Run the loader once (in a worker thread); raise its ConfigError.

        Any other exception is a bug, not bad input; it becomes a ConfigError too, so the app
        ends with one line instead of running on the fallback.
        """
        assert self._loader is not None, "load() on a setup that was given"
        try:
            setup = self._loader()
        except ConfigError as exc:
            self._finish(None, exc)
            raise
        except Exception as exc:
            error = ConfigError(f"cannot load the setup: {type(exc).__name__}: {exc}")
            self._finish(None, error)
            raise error from exc
        self._finish(setup, None)
        return setup

    def _finish(self, setup: Setup | None, error: ConfigError | None) -> None:
        with self._lock:
            if self._done.is_set():  # readers gave up waiting (SETUP_WAIT): they have the fallback
                raise error or self.error or ConfigError("the setup loaded too late")
            self._setup, self._loaded, self.error = setup, setup is not None, error
            self._done.set()

    def get(self) -> Setup:
        """The setup; waits for the loader if it has not finished.

        A loader still running after SETUP_WAIT counts as failed: every reader gets the
        fallback from then on, without waiting again, and a late result is not taken.
        """
        if not self._done.wait(SETUP_WAIT):
            with self._lock:
                if not self._done.is_set():
                    self.error = ConfigError(f"the setup did not load in {SETUP_WAIT:.0f} s")
                    self._done.set()
        if self._setup is None or not self._loaded:
            if self._fallback is None:
                raise ConfigError(str(self.error) if self.error else "the setup did not load")
            with self._lock:
                if self._setup is None:
                    self._setup = self._fallback()
        return self._setup


def default_setup(config_path: Path, db: Path | None) -> Setup:
    """All defaults and no secrets: what a reader gets after a failed load (never polled)."""
    from explorer.config import Config, Secrets

    return Setup(config_path, Config(), Secrets(), (db or default_db_path()).expanduser())
