"""Reading a moment typed by the user: "2026-11-20 14:00" (local), ISO 8601, "-3h", "now".

Shared by the History screen's "from" field, time travel (``t``) and ``--at``. Times without a
zone are the user's local time, converted with ``datetime.astimezone()``, which asks the C
library for the offset of that very date: correct on both sides of a DST change. A wall time
that happens twice (autumn) is the first of the two; one that does not exist (skipped in
spring) is refused with a message saying so.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

EXAMPLES = '"2026-11-20 14:00", "14:00", "-3h", "-90m", "-2d" or "now"'

_UNITS = {
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "hr": 3600,
    "d": 86400,
    "w": 7 * 86400,
}
_PART = r"(\d+(?:\.\d+)?)\s*(sec|min|hr|s|m|h|d|w)"  # longest unit names first
_RELATIVE = re.compile(rf"^-\s*((?:{_PART}\s*)+)$|^((?:{_PART}\s*)+)\s*ago$")
_LOCAL_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_SHOWN = 40  # how much of a bad input an error message repeats


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _bad(text: str, why: str = "") -> ValueError:
    shown = _shown(text)
    reason = f" ({why})" if why else ""
    return ValueError(f'cannot read "{shown}" as a time{reason}: use {EXAMPLES}')


def _local(naive: datetime) -> datetime:
    # astimezone() on a naive datetime treats it as local time, with that date's DST offset
    try:
        moment = naive.astimezone()
    except (ValueError, OSError) as exc:  # year 1 or 9999 shifted out of range
        raise OverflowError(str(exc)) from exc
    if moment.replace(tzinfo=None) != naive:  # a wall time skipped when clocks went forward
        shown = naive.strftime("%Y-%m-%d %H:%M")
        raise ValueError(f"{shown} does not exist in local time (the clocks went forward)")
    return moment.astimezone(UTC)


def _relative(text: str, now: datetime) -> datetime | None:
    match = _RELATIVE.match(text)
    if match is None:
        return None
    body = match.group(1) or match.group(4)
    seconds = sum(
        float(number) * _UNITS[unit] for number, unit in re.findall(_PART, body, re.IGNORECASE)
    )
    try:
        return now - timedelta(seconds=seconds)
    except OverflowError:
        raise _bad(text, "too far back") from None


def parse_moment(text: str, now: datetime, *, allow_future: bool = False) -> datetime:
    """The UTC moment ``text`` names, relative offsets counted back from ``now``.

    Accepts "now"; "-3h", "-90m", "-2d", "-1d12h", "-1w", "3h ago"; "YYYY-MM-DD HH:MM[:SS]" or
    "YYYY-MM-DD" (local); "HH:MM" (local, today, or yesterday when that is still to come); and
    ISO 8601 ("2026-11-20T14:00:00Z", "+01:00"; local when it has no zone). Raises ValueError
    with a message fit for the user; a moment after ``now`` is refused unless ``allow_future``.
    """
    if now.tzinfo is None:
        raise TypeError("now must be timezone-aware")
    cleaned = " ".join(text.strip().split()).lower()
    if not cleaned:
        raise ValueError(f"no time given: use {EXAMPLES}")
    try:
        moment = _parse(cleaned, text.strip(), now)
    except (OverflowError, OSError):  # years the C library cannot convert
        raise _bad(text.strip(), "out of range") from None
    if not allow_future and moment > now:
        shown = _shown(text.strip())
        raise ValueError(f'"{shown}" is in the future: pick a time up to now, e.g. {EXAMPLES}')
    return moment.astimezone(UTC)


def _parse(cleaned: str, original: str, now: datetime) -> datetime:
    if cleaned == "now":
        return now
    relative = _relative(cleaned, now)
    if relative is not None:
        return relative
    if clock := _CLOCK.match(cleaned):
        hour, minute = int(clock.group(1)), int(clock.group(2))
        if hour > 23 or minute > 59:
            raise _bad(original, "no such time of day")
        today = now.astimezone().replace(tzinfo=None, hour=hour, minute=minute)
        moment = _local(today.replace(second=0, microsecond=0))
        if moment > now:  # "14:00" at 09:00 means yesterday's 14:00
            moment = _local((today - timedelta(days=1)).replace(second=0, microsecond=0))
        return moment
    for fmt in _LOCAL_FORMATS:
        try:
            naive = datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
        return _local(naive)
    try:
        parsed = datetime.fromisoformat(cleaned.upper().replace(" ", "T", 1))
    except ValueError:
        raise _bad(original) from None
    return _local(parsed) if parsed.tzinfo is None else parsed.astimezone(UTC)
