"""Akash account addresses: the only text that may go into an Akash console request path.

Kept in a module of its own, with nothing but ``re``, so the config can validate addresses
without importing the HTTP client.
"""

from __future__ import annotations

import re

_ADDRESS = re.compile(r"akash1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{38}")
"""``akash1`` and 38 characters of the bech32 alphabet."""


def is_provider_address(text: str) -> bool:
    """An Akash account address (``akash1`` and 38 bech32 characters)."""
    return _ADDRESS.fullmatch(text) is not None
