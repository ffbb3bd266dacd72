"""The registry of backends: kind -> spec. A new backend adds its module's ``SPEC`` here."""

from __future__ import annotations

from typing import Final

from . import enode, fems, flexconnect
from .backend import BackendSpec

BACKENDS: Final[dict[str, BackendSpec]] = {
    spec.kind: spec for spec in (flexconnect.SPEC, fems.SPEC, enode.SPEC)
}
"""The backends by kind, in the order the config flow offers them."""


def backend_spec(kind: str) -> BackendSpec:
    """Return the spec of the backend ``kind`` (``KeyError`` for a kind not registered)."""
    return BACKENDS[kind]
