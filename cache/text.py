"""The sanitiser the cache applies on the way in, offered to screens for the way out.

Screens depend on cache/ only (docs/architecture.md): they sanitise rendered text with the same
function the store used, without importing anything from sources/.
"""

from sources.text import one_line, safe_text

__all__ = ["one_line", "safe_text"]
