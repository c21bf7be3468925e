"""Sanitising untrusted text before it is stored, rendered or exported.

Every string that comes from outside the operator's own config (project names, symbols, node
labels, API error messages) passes through :func:`safe_text` on ingest and again on render.
Control characters are made visible rather than dropped (the kubectl and git approach), so a
hostile name is shown for what it is instead of silently changing meaning.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["safe_text", "one_line"]

ELLIPSIS = "…"

# Format and invisible characters that reorder or hide text (bidi overrides, zero-width, BOM).
_INVISIBLE = (
    "\u00ad\u061c\u180e\u200b\u200c\u200d\u200e\u200f"
    "\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2065\u2066\u2067\u2068\u2069"
    "\ufeff\ufff9\ufffa\ufffb"
)


def _build_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for code in range(0x20):
        table[code] = chr(0x2400 + code)  # Control Pictures: ESC -> ␛, LF -> ␊, NUL -> ␀
    table[0x09] = " "
    table[0x7F] = "\u2421"  # ␡
    for code in range(0x80, 0xA0):
        table[code] = "\ufffd"
    for char in _INVISIBLE:
        table[ord(char)] = None
    return table


_TABLE = _build_table()
_SURROGATES = re.compile("[\ud800-\udfff]")


def safe_text(value: Any, max_len: int = 256) -> str:
    """Return ``value`` as text that is safe to store and to put on a terminal.

    Truncates first (so a 1 MB input costs about as much as a short one), then maps C0, DEL and
    C1 controls to visible stand-ins, lone surrogates to U+FFFD, and removes bidi and zero-width
    format characters. Idempotent: ``safe_text(safe_text(x)) == safe_text(x)``.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > max_len:
        text = text[:max_len] + ELLIPSIS
    elif text.isascii() and text.isprintable():
        return text  # nothing to map (C1, bidi and surrogates are not ASCII): the common case
    text = text.translate(_TABLE)
    if _SURROGATES.search(text):
        text = _SURROGATES.sub("\ufffd", text)
    return text


def one_line(value: Any, max_len: int = 200) -> str:
    """Sanitise and squeeze whitespace, for error messages shown on one line."""
    text = value if isinstance(value, str) else str(value)
    text = " ".join(text[: max_len * 2].split())
    return safe_text(text, max_len)
