"""Time handling: everything is stored and shown in UTC with a ``Z`` suffix.

Sources disagree on time formats (CloudTrail ``2024-01-02T03:04:05Z``, Vault RFC 3339
with nanoseconds and offsets, OTLP unix nanoseconds as numbers or strings, console
exports with local offsets). These helpers are the one place that converts them, so
the raw string can always be kept beside the normalised value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_FRACTION = re.compile(r"(\.\d+)")


def to_utc(value: str | float | datetime | None) -> datetime | None:
    """Parse a timestamp into a naive UTC datetime (DuckDB ``TIMESTAMP`` semantics).

    Accepts ISO 8601 / RFC 3339 strings (any offset, ``Z``, up to nanoseconds, which are
    truncated to microseconds), unix seconds/milliseconds/nanoseconds as numbers or
    digit strings, and datetimes. Returns ``None`` for empty or unparseable input:
    callers decide whether that is a reject.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)) or (
        isinstance(value, str) and value.strip().isascii() and value.strip().isdigit()
    ):
        # isascii: str.isdigit() is also true for "²" or "٣", which float() refuses.
        num = float(value)
        if num <= 0:
            return None
        # Pick the unit by magnitude: seconds (1e9), ms (1e12), us (1e15), ns (1e18).
        if num > 1e17:
            num /= 1e9
        elif num > 1e14:
            num /= 1e6
        elif num > 1e11:
            num /= 1e3
        try:
            dt = datetime.fromtimestamp(num, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str):
        text = value.strip().replace(" ", "T", 1) if "T" not in value else value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # Python's parser takes at most 6 fractional digits.
        text = _FRACTION.sub(lambda m: m.group(1)[:7], text, count=1)
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


#: RFC 3339 in UTC with ``Z`` and any number of fraction digits (what Vault and most agent logs
#: write): the fast path of :func:`utc_z_time`.
_Z_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z", re.ASCII)
_fromiso = datetime.fromisoformat


def utc_z_time(value: str) -> datetime | None:
    """:func:`to_utc` of a time string, fast for the form Vault (and most agent logs) write.

    ``2026-03-02T00:00:00.004Z``: Python 3.11 reads the ``Z`` and truncates fraction digits
    beyond six, exactly as ``to_utc`` does; every other form (offsets, garbage) goes to ``to_utc``.
    """
    if _Z_TIME.fullmatch(value):
        try:
            return _fromiso(value).replace(tzinfo=None)
        except ValueError:
            pass
    return to_utc(value)


def format_utc(dt: datetime | None) -> str | None:
    """Render a (naive UTC or aware) datetime as ``YYYY-MM-DDTHH:MM:SSZ`` (microseconds kept if set)."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text + "Z"
