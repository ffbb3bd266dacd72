"""JSON value helpers shared by the backend modules: type names, strict decoding, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
import json
import re
from typing import Final

# RFC 3339 date-time (section 5.6): "T" or "t" (or a space, section 5.6 NOTE) between date and
# time, any number of fraction digits, "Z", "z" or a numeric offset. Without an offset: UTC.
_RFC3339: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?"
)


def type_name(value: object) -> str:
    """Return the JSON-ish name of a value's type, for error messages ("null" for None)."""
    return "null" if value is None else type(value).__name__


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-standard JSON constant {name}")


def loads_strict(data: str | bytes) -> object:
    """Decode JSON; ``NaN`` / ``Infinity`` (not JSON) raise ``ValueError`` like any bad input."""
    return json.loads(data, parse_constant=_reject_constant)


def parse_rfc3339(text: str) -> datetime:
    """Return an RFC 3339 date-time as an aware datetime.

    Accepts ``T``/``t``/space, ``Z``/``z`` or ``±hh:mm``, and fractions of any length (cut to
    microseconds). A leap second (``:60``) reads as ``:59.999999``. A time without an offset is
    read as UTC (the APIs we talk to write UTC).

    Raises:
        ValueError: Not an RFC 3339 date-time, or a field out of range.
    """
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError("not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, zulu, sign, offset_h, offset_m = match.groups()[6:]
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if second == 60:
        second, micro = 59, 999999
    tz: timezone = UTC
    if sign is not None and not zulu:
        hours, minutes = int(offset_h), int(offset_m)
        if hours > 23 or minutes > 59:
            raise ValueError("UTC offset out of range")
        delta = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-delta if sign == "-" else delta)
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
