"""Timed overrides: charge, discharge or hold a battery until a time or a state of charge.

An override is written and ended by the battery's controller (control.py); this module holds
what an override is and the store that keeps running overrides across restarts of Home
Assistant (``battery_bridge.overrides``: per config entry id, per battery subentry id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .api import (
    ControlCommand,
    ControlMode,
    OverrideMode as OverrideMode,  # noqa: PLC0414 - re-exported; it lives with ControlPolicy
)
from .const import DOMAIN, LOGGER

STORAGE_KEY: Final = f"{DOMAIN}.overrides"
STORAGE_VERSION: Final = 1
DATA_OVERRIDE_STORE: HassKey[OverrideStore] = HassKey(f"{DOMAIN}_override_store")

NO_OVERRIDE: Final = "none"
"""The state of the override sensor while no override runs."""


# The sign of the setpoint an override writes where the battery takes one (+ = discharge).
SETPOINT_SIGN: Final = {OverrideMode.CHARGE: -1, OverrideMode.DISCHARGE: 1, OverrideMode.HOLD: 0}


def target_reached(mode: OverrideMode, soc: float, until_soc: float) -> bool:
    """Return True when ``soc`` is at or beyond the target: up for charge, down for discharge."""
    return soc >= until_soc if mode is OverrideMode.CHARGE else soc <= until_soc


def _command_to_dict(command: ControlCommand) -> dict[str, Any]:
    data: dict[str, Any] = {"mode": command.mode.value, "setpoint_w": command.setpoint_w}
    # Limits only where set: the store stays readable by versions without them.
    if command.charge_limit_w is not None:
        data["charge_limit_w"] = command.charge_limit_w
    if command.discharge_limit_w is not None:
        data["discharge_limit_w"] = command.discharge_limit_w
    return data


def _optional_int(data: dict[str, Any], key: str) -> int | None:
    """Return an integer field or None; the limits are missing in overrides stored before them."""
    value = data.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{key} {value!r}")
    return value


def _command_from_dict(data: dict[str, Any]) -> ControlCommand:
    if "setpoint_w" not in data:
        raise KeyError("setpoint_w")
    return ControlCommand(
        mode=ControlMode(data["mode"]),
        setpoint_w=_optional_int(data, "setpoint_w"),
        charge_limit_w=_optional_int(data, "charge_limit_w"),
        discharge_limit_w=_optional_int(data, "discharge_limit_w"),
    )


def _time_from_str(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = dt_util.parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(f"time {value!r}")
    return parsed


@dataclass(frozen=True, slots=True, kw_only=True)
class Override:
    """A running override: what it wrote, when it ends, and the command to return to."""

    mode: OverrideMode
    power_w: int | None
    """The magnitude asked for, W (``None`` for hold and where the battery takes no setpoint)."""
    command: ControlCommand
    fallback: ControlCommand
    started_at: datetime
    ends_at: datetime | None = None
    until_soc: float | None = None

    @classmethod
    def start(
        cls,
        mode: OverrideMode,
        command: ControlCommand,
        *,
        fallback: ControlCommand,
        duration: timedelta | None,
        until_soc: float | None,
        ends_at: datetime | None = None,
    ) -> Override:
        """Return an override starting now that writes ``command`` (a zero duration is none).

        ``ends_at``: an absolute end, taken as it is (instead of ``now + duration``).
        """
        now = dt_util.utcnow()
        if ends_at is None and duration:
            ends_at = now + duration
        return cls(
            mode=mode,
            power_w=None if command.setpoint_w is None else abs(command.setpoint_w),
            command=command,
            fallback=fallback,
            started_at=now,
            ends_at=ends_at,
            until_soc=until_soc,
        )

    def soc_reached(self, soc: float | None) -> bool:
        """Return True when ``soc`` is at or beyond the target (up for charge, down for discharge)."""
        if self.until_soc is None or soc is None:
            return False
        return target_reached(self.mode, soc, self.until_soc)

    def ended(self, now: datetime, soc: float | None) -> bool:
        """Return True when the end time has passed or the target state of charge is reached."""
        return (self.ends_at is not None and now >= self.ends_at) or self.soc_reached(soc)

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form for the store."""
        return {
            "mode": self.mode.value,
            "power_w": self.power_w,
            "command": _command_to_dict(self.command),
            "fallback": _command_to_dict(self.fallback),
            "started_at": self.started_at.isoformat(),
            "ends_at": None if self.ends_at is None else self.ends_at.isoformat(),
            "until_soc": self.until_soc,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Override:
        """Read the JSON form; raise ``KeyError``, ``TypeError`` or ``ValueError`` when malformed."""
        started_at = _time_from_str(data["started_at"])
        if started_at is None:
            raise ValueError("no start time")
        until_soc = data["until_soc"]
        if until_soc is not None and not isinstance(until_soc, int | float):
            raise TypeError(f"until_soc {until_soc!r}")
        power = data["power_w"]
        if power is not None and not isinstance(power, int):
            raise TypeError(f"power_w {power!r}")
        return cls(
            mode=OverrideMode(data["mode"]),
            power_w=power,
            command=_command_from_dict(data["command"]),
            fallback=_command_from_dict(data["fallback"]),
            started_at=started_at,
            ends_at=_time_from_str(data["ends_at"]),
            until_soc=None if until_soc is None else float(until_soc),
        )


class OverrideStore:
    """The running overrides of every entry, kept across restarts of Home Assistant."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Set up the store; it is read at the first use."""
        self._store: Store[dict[str, dict[str, dict[str, Any]]]] = Store(
            hass, STORAGE_VERSION, STORAGE_KEY
        )
        self._data: dict[str, dict[str, dict[str, Any]]] | None = None

    async def _async_data(self) -> dict[str, dict[str, dict[str, Any]]]:
        if self._data is None:
            self._data = await self._store.async_load() or {}
        return self._data

    async def async_entry_overrides(self, entry_id: str) -> dict[str, Override]:
        """Return the stored overrides of an entry by subentry id; malformed ones are dropped."""
        stored = (await self._async_data()).get(entry_id, {})
        overrides: dict[str, Override] = {}
        for subentry_id, data in list(stored.items()):
            try:
                overrides[subentry_id] = Override.from_dict(data)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                LOGGER.warning("Dropping a stored override that cannot be read (%s): %s", err, data)
                await self.async_delete(entry_id, subentry_id)
        return overrides

    async def async_set(self, entry_id: str, subentry_id: str, override: Override) -> None:
        """Store the running override of a battery."""
        data = await self._async_data()
        data.setdefault(entry_id, {})[subentry_id] = override.as_dict()
        await self._store.async_save(data)

    async def async_delete(self, entry_id: str, subentry_id: str) -> None:
        """Forget the override of a battery (ended, replaced by the user, battery removed)."""
        data = await self._async_data()
        entry = data.get(entry_id, {})
        entry.pop(subentry_id, None)
        if not entry:
            data.pop(entry_id, None)
        await self._store.async_save(data)

    async def async_keep_only(self, entry_id: str, subentry_ids: set[str]) -> None:
        """Forget the overrides of an entry's batteries that are gone (subentry removed)."""
        for subentry_id in set((await self._async_data()).get(entry_id, {})) - subentry_ids:
            await self.async_delete(entry_id, subentry_id)


def override_store(hass: HomeAssistant) -> OverrideStore:
    """Return the override store of this Home Assistant instance."""
    if (store := hass.data.get(DATA_OVERRIDE_STORE)) is None:
        store = hass.data[DATA_OVERRIDE_STORE] = OverrideStore(hass)
    return store
