"""Where things live: config dir (TOML), data dir (SQLite history), state dir (UI state, log)."""

from __future__ import annotations

import os
from pathlib import Path

# platformdirs is imported by the functions that ask it (about 20 ms with the tempfile and
# shutil it brings, on a 2-core machine): --help, --version and completion need no path.

APP_NAME = "depin-explorer"
CONFIG_ENV = "DEPIN_EXPLORER_CONFIG"


def config_dir() -> Path:
    """The platform config dir (not created here)."""
    import platformdirs

    return platformdirs.user_config_path(APP_NAME)


def default_config_path() -> Path:
    """``--config`` beats ``DEPIN_EXPLORER_CONFIG``, which beats this."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env).expanduser() if env else config_dir() / "config.toml"


def data_dir() -> Path:
    """The platform data dir: the cache is history, not a disposable cache."""
    import platformdirs

    return platformdirs.user_data_path(APP_NAME)


def default_db_path() -> Path:
    """The SQLite file used when neither ``--db`` nor ``[cache] path`` is given."""
    return data_dir() / "depin-explorer.db"


def state_dir() -> Path:
    """The platform state dir: the user's watchlist and the debug log."""
    import platformdirs

    return platformdirs.user_state_path(APP_NAME)


def default_log_path() -> Path:
    """The debug log used when ``--log-file`` is not given."""
    return state_dir() / "depin-explorer.log"


def state_file_path() -> Path:
    """The user's UI state (watchlist, when they last looked), keyed by database."""
    return state_dir() / "state.json"


def private_write(path: Path, text: str) -> None:
    """Write ``text`` atomically to a file created 0600 in a 0700 directory."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # O_EXCL below: never reuse a file whose mode we did not set
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
