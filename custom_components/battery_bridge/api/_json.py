"""JSON helpers shared by the backend modules."""

from __future__ import annotations

import json


def type_name(value: object) -> str:
    """Return the JSON-ish name of a value's type, for error messages ("null" for None)."""
    return "null" if value is None else type(value).__name__


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-standard JSON constant {name}")


def loads_strict(data: str | bytes) -> object:
    """Decode JSON; ``NaN`` / ``Infinity`` (not JSON) raise ``ValueError`` like any bad input."""
    return json.loads(data, parse_constant=_reject_constant)
