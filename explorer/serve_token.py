"""The access token of ``serve``: random, kept 0600 in the state dir, compared in constant time.

The token is the only thing between the port and the console, so it is never logged, never put
in a child's command line or environment, and a file another user could read is not trusted.
"""

from __future__ import annotations

import hmac
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from explorer.paths import private_write, state_dir

TOKEN_BYTES = 32
"""``secrets.token_urlsafe(32)``: 256 random bits, 43 URL-safe characters."""
MIN_TOKEN_LEN = 32
"""A stored token shorter than this (edited by hand, truncated) is replaced."""


@dataclass(frozen=True)
class Token:
    """The token in use and how it came to be, for the start-up lines."""

    value: str
    created: bool
    """False: read from the file; True: written now (first use, rotated or replaced)."""
    reason: str | None = None
    """Why a new token was written although one was stored (unsafe mode, too short)."""


def token_path() -> Path:
    """Where the token is kept: the platform state dir, next to the UI state."""
    return state_dir() / "serve-token"


def load_token(path: Path | None = None, *, rotate: bool = False) -> Token:
    """The stored token, or a new one written 0600 (first use, ``--new-token``, unsafe file).

    Args:
        path: the token file (default ``token_path()``).
        rotate: write a new token even if one is stored (``serve --new-token``).
    """
    path = path or token_path()
    reason = None
    if not rotate:
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            text, mode = "", 0
        if text and mode & (stat.S_IRWXG | stat.S_IRWXO):
            reason = f"{path} was readable by other users: replaced"
        elif text and len(text) < MIN_TOKEN_LEN:
            reason = f"{path} held a token too short to be safe: replaced"
        elif text:
            return Token(text, created=False)
    value = secrets.token_urlsafe(TOKEN_BYTES)
    private_write(path, value + "\n")
    return Token(value, created=True, reason=reason)


def token_matches(given: str | None, token: str) -> bool:
    """Whether ``given`` is the token; constant time, so timing tells nothing of its prefix."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))
