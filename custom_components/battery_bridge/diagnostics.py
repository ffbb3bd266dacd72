"""Diagnostics of Battery Bridge: entry settings and, per battery, the latest raw and normalised data."""

from __future__ import annotations

from dataclasses import asdict
from enum import Enum
from typing import Any, Final

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .api import BackendSpec
from .api.registry import backend_spec
from .runtime import BatteryBridgeConfigEntry

# Every backend's tokens; each spec adds its own keys (``BackendSpec.redact``) and its secret.
TO_REDACT: Final = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "authorization",
        "Authorization",
    }
)


def _redact_keys(spec: BackendSpec) -> set[str]:
    """Return the keys diagnostics of an entry of ``spec`` must not show."""
    secrets = {item.key for item in spec.fields if item.secret}
    return set(TO_REDACT | spec.redact | secrets)


def _jsonable(value: Any) -> Any:
    """Turn a dataclass dict into JSON types (sets become sorted lists, enums their values)."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(item) for item in value)
    if isinstance(value, Enum):
        return value.value
    return value


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: BatteryBridgeConfigEntry
) -> dict[str, Any]:
    """Return the entry's settings and each battery's latest data, with secrets removed."""
    data = entry.runtime_data
    batteries: dict[str, Any] = {}
    for subentry_id, battery in data.batteries.items():
        coordinator = battery.coordinator
        snapshot = coordinator.data
        active = battery.controller.active
        batteries[subentry_id] = {
            "title": coordinator.subentry.title,
            "battery_id": coordinator.battery_id,
            "last_update_success": coordinator.last_update_success,
            "update_interval_s": (
                None
                if coordinator.update_interval is None
                else coordinator.update_interval.total_seconds()
            ),
            "keepalive_active": battery.controller.keepalive_active,
            "active_intent": None if active is None else _jsonable(asdict(active)),
            "snapshot": _jsonable({k: v for k, v in asdict(snapshot).items() if k != "raw"}),
            "raw": snapshot.raw,
        }
    return async_redact_data(
        {
            "backend": str(data.kind),
            "entry": {"data": dict(entry.data), "options": dict(entry.options)},
            "batteries": batteries,
        },
        _redact_keys(backend_spec(data.kind)),
    )
