"""The user's own state (watchlist, when they last looked), kept out of the history database.

Keyed by the database's resolved path, so read-only viewers and copied databases work the same.
Private mode is the person's, not the database's: it sits at the top of the file (an SSH key's
own file under ``ssh-serve`` keeps it from one login to the next).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from cache.db import iso, parse_iso
from explorer.paths import private_write

log = logging.getLogger(__name__)


def _read(path: Path) -> dict[str, Any]:
    """The file's object; missing, unreadable or not an object: empty (a fresh start)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable state file %s: %s", path, type(exc).__name__)
        return {}
    return data if isinstance(data, dict) else {}


class UserState:
    """A small JSON file: ``{"private": true, "databases": {"/a.db": {"watchlist": [...]}}}``."""

    def __init__(self, path: Path, db_path: Path) -> None:
        self.path = path
        self.key = str(db_path.expanduser().resolve())
        self._data: dict[str, Any] = _read(path)

    @staticmethod
    def stored_private(path: Path) -> bool:
        """Whether the last session on ``path`` left private mode on (no database needed yet)."""
        return _read(path).get("private") is True

    @property
    def private(self) -> bool:
        """Private mode as last left; False in a file written before it was kept."""
        return self._data.get("private") is True

    def set_private(self, on: bool) -> None:
        """Record private mode, and save."""
        self._data["private"] = on
        self.save()

    def _mine(self) -> dict[str, Any]:
        databases = self._data.setdefault("databases", {})
        return databases.setdefault(self.key, {})

    @property
    def watchlist(self) -> set[str]:
        """Coin ids the user starred."""
        return {str(x) for x in self._mine().get("watchlist", [])}

    def set_watchlist(self, coin_ids: set[str]) -> None:
        """Replace the watchlist and save."""
        self._mine()["watchlist"] = sorted(coin_ids)
        self.save()

    @property
    def last_looked(self) -> datetime | None:
        """When the app last closed on this database."""
        value = self._mine().get("last_looked")
        try:
            return parse_iso(value) if isinstance(value, str) else None
        except ValueError:
            return None

    def set_last_looked(self, moment: datetime) -> None:
        """Record when the user stopped looking, and save."""
        self._mine()["last_looked"] = iso(moment)
        self.save()

    def save(self) -> None:
        """Write atomically; a failure is logged, never fatal (the UI keeps working)."""
        try:
            private_write(self.path, json.dumps(self._data, indent=1, sort_keys=True))
        except OSError as exc:
            log.warning("cannot save state to %s: %s", self.path, exc)
