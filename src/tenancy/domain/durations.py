"""Durations as operators type them: `250ms`, `30s`, `90m`, `24h`, `7d`, `2w`, and sums like `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

from tenancy.errors import InvalidInputError

__all__ = ["parse_duration"]

_WHOLE = re.compile(r"(?:\d{1,12}(?:ms|s|m|h|d|w))+")
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(text: str, *, what: str = "duration", bare_unit: str | None = None) -> timedelta:
    """The duration `text` names (case-insensitive). With `bare_unit`, a plain number counts in
    that unit. Raises InvalidInputError, in one line naming `what`, for anything else or zero."""
    cleaned = text.strip().lower()
    if bare_unit is not None and cleaned.isdigit():
        cleaned += bare_unit
    if not _WHOLE.fullmatch(cleaned):
        raise InvalidInputError(f"{what} must look like 30s, 5m, 1h or 7d, not {text.strip()[:20]!r}")
    try:
        duration = sum((int(amount) * _UNITS[unit] for amount, unit in _PART.findall(cleaned)), timedelta())
    except OverflowError:
        raise InvalidInputError(f"{what} {text.strip()[:20]} is too long") from None
    if duration <= timedelta():
        raise InvalidInputError(f"{what} must be longer than zero")
    return duration
