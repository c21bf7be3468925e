"""The explorer's own exceptions, in a leaf module: it imports nothing of the project.

The loader (explorer.setup) and the validated models (explorer.config) both raise these, so
neither has to import the other for them.
"""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, the key and the problem."""
