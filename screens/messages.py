"""Messages the app sends down to screens."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class PollStored(Message):
    """A poll (good or failed) was committed to the cache: visible screens re-read it."""

    source: str
    poll_id: int
