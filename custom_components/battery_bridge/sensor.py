"""Sensors of Battery Bridge: measurements and states of each battery."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, EntityCategory, UnitOfEnergy, UnitOfPower
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import ExtraStoredData, RestoreEntity
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .api import (
    BatterySnapshot,
    ChargeStatus,
    CommandStatus,
    ControlState,
    Feature,
    GridMode,
    OperationState,
    OverrideMode,
    SystemState,
)
from .const import LOGGER
from .control import BatteryController, settable_modes
from .entity import BatteryBridgeEntity, BatteryBridgeEntityDescription, async_add_battery_entities
from .overrides import NO_OVERRIDE
from .plan_sensor import PLAN_SENSORS, PlanSensor
from .runtime import BatteryBridgeConfigEntry, BatteryRuntime

PARALLEL_UPDATES = 0

# A cumulative energy total that drops by more than this is a glitch (a FEMS reports near-zero
# totals for a while after it restarts) and is not passed on, unless it stays lower for
# COUNTER_RESET_ACCEPT_AFTER: then the meter really was reset and the new total is accepted.
COUNTER_DECREASE_TOLERANCE_WH = 10.0
COUNTER_RESET_ACCEPT_AFTER = timedelta(hours=1)


class MonotonicTotal:
    """Keep a cumulative energy total from going backwards because of a glitch.

    A value lower than the last good one is replaced by the last good value. If the total has
    stayed lower by more than ``COUNTER_DECREASE_TOLERANCE_WH`` for ``COUNTER_RESET_ACCEPT_AFTER``,
    the meter really was reset and the reading is accepted (the sensor's ``total_increasing``
    state class then starts a new cycle). Readings are only filtered when they change, so a reset
    is accepted with the first new total after that time.
    """

    def __init__(self) -> None:
        """Start without a last good value."""
        self.last: float | None = None
        self._lower_since: datetime | None = None

    def seed(self, value: float) -> None:
        """Start from the value reported before a restart of Home Assistant."""
        self.last = value

    def filter(self, value: float | None) -> float | None:
        """Return the value to report for a new reading."""
        if value is None:
            return None
        if self.last is None or value >= self.last:
            self.last = value
            self._lower_since = None
            return value
        if value >= self.last - COUNTER_DECREASE_TOLERANCE_WH:  # rounding: hold, it grows back
            self._lower_since = None
            return self.last
        now = dt_util.utcnow()
        if self._lower_since is None:
            self._lower_since = now
        elif now - self._lower_since >= COUNTER_RESET_ACCEPT_AFTER:
            LOGGER.info("Energy total reset from %s Wh to %s Wh accepted", self.last, value)
            self.last = value
            self._lower_since = None
            return value
        LOGGER.debug("Ignoring energy total %s Wh, lower than %s Wh", value, self.last)
        return self.last


class StoredEnergyCounter:
    """Count the energy put into (``direction`` +1) or taken out of (-1) a battery.

    For batteries without energy meters (FlexConnect, Enode) the Energy dashboard's battery totals
    are derived from changes of the stored energy: each rise adds to "charged", each fall to
    "discharged". This is the energy the battery stored or gave up, so conversion losses and the
    battery's own consumption are not in it, and changes smaller than the backend's resolution
    (Enode: 1 % of the capacity) show late. A reading after a gap (unavailable, a restart of Home
    Assistant) counts the whole change since the last known one. A change of the usable capacity,
    or a step larger than the capacity, is no energy flow: it only rebases the count.
    """

    def __init__(self, direction: int) -> None:
        """Start at zero; ``direction`` is +1 (charged) or -1 (discharged)."""
        self.direction = direction
        self.total_wh = 0.0
        self.stored_wh: float | None = None
        self.capacity_wh: float | None = None

    def update(self, stored_wh: float | None, capacity_wh: float | None) -> None:
        """Take a new reading of the stored energy and the usable capacity (Wh)."""
        if stored_wh is None:
            return  # unknown now: the next known reading counts from the last one
        last, last_capacity = self.stored_wh, self.capacity_wh
        self.stored_wh, self.capacity_wh = stored_wh, capacity_wh
        if last is None or capacity_wh != last_capacity:
            return
        delta = (stored_wh - last) * self.direction
        if delta > 0 and (capacity_wh is None or delta <= capacity_wh):
            self.total_wh += delta

    def as_dict(self) -> dict[str, Any]:
        """Return what a restart of Home Assistant must keep."""
        return {
            "total_wh": self.total_wh,
            "stored_wh": self.stored_wh,
            "capacity_wh": self.capacity_wh,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Continue from ``as_dict`` of before a restart; malformed data is ignored."""

        def number(key: str) -> float | None:
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return float(value)

        total = number("total_wh")
        if total is None or total < 0:
            return
        self.total_wh = total
        self.stored_wh = number("stored_wh")
        self.capacity_wh = number("capacity_wh")


@dataclass(slots=True)
class StoredEnergyCounterData(ExtraStoredData):
    """The restore data of a derived energy sensor."""

    counter: StoredEnergyCounter

    def as_dict(self) -> dict[str, Any]:
        """Return the counter's state."""
        return self.counter.as_dict()


@dataclass(frozen=True, kw_only=True)
class BatteryBridgeSensorEntityDescription(SensorEntityDescription, BatteryBridgeEntityDescription):
    """A sensor: how to read its value from a snapshot, or from the battery's controller.

    A ``total_increasing`` sensor is protected against glitches (see ``MonotonicTotal``).
    """

    value_fn: Callable[[BatterySnapshot], StateType] = lambda _: None
    controller_fn: Callable[[BatteryController], StateType | datetime] | None = None
    """Read the value from the controller (the running override) instead of the snapshot."""
    stored_energy_direction: int | None = None
    """+1 / -1: a total derived from rises / falls of the stored energy (``StoredEnergyCounter``)."""


def _enum_value(value: StrEnum | None) -> str | None:
    return None if value is None else value.value


def _controllable(snapshot: BatterySnapshot) -> bool:
    return bool(settable_modes(snapshot.capabilities))


# Short names for the table below.
_OPERATION: Final = Feature.OPERATION_STATE
_SYSTEM: Final = Feature.SYSTEM_STATE
_COMMANDS: Final = Feature.COMMAND_STATUS
_METERED: Final = Feature.ENERGY_COUNTERS
_SITE: Final = Feature.SITE_METERS
_ALLOWED: Final = Feature.ALLOWED_POWER
_DIAGNOSTIC: Final = EntityCategory.DIAGNOSTIC


def _derived(snapshot: BatterySnapshot) -> bool:
    """Return True where the energy totals are derived from the stored energy (no meters)."""
    return Feature.ENERGY_COUNTERS not in snapshot.capabilities.features


def _override_mode(controller: BatteryController) -> str:
    override = controller.override
    return NO_OVERRIDE if override is None else override.mode.value


def _override_end(controller: BatteryController) -> datetime | None:
    override = controller.override
    return None if override is None else override.ends_at


def _applied_setpoint(snapshot: BatterySnapshot) -> int | None:
    """Return the setpoint the battery reports it applies (FEMS: what its control sets now)."""
    current = snapshot.control.current
    return None if current is None else current.setpoint_w


def _power(
    key: str,
    value_fn: Callable[[BatterySnapshot], StateType],
    feature: Feature | None,
    *,
    exists_fn: Callable[[BatterySnapshot], bool] = lambda _: True,
    diagnostic: bool = False,
) -> BatteryBridgeSensorEntityDescription:
    """Describe a power sensor in W; a diagnostic one is disabled by default."""
    return BatteryBridgeSensorEntityDescription(
        key=key,
        translation_key=key,
        feature=feature,
        exists_fn=exists_fn,
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC if diagnostic else None,
        entity_registry_enabled_default=not diagnostic,
        value_fn=value_fn,
    )


def _enum(
    key: str,
    states: type[StrEnum],
    read: Callable[[BatterySnapshot], StrEnum | None],
    feature: Feature,
    category: EntityCategory | None = None,
) -> BatteryBridgeSensorEntityDescription:
    """Describe a sensor whose states are the values of ``states``."""
    return BatteryBridgeSensorEntityDescription(
        key=key,
        translation_key=key,
        feature=feature,
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in states],
        entity_category=category,
        value_fn=lambda s: _enum_value(read(s)),
    )


def _energy_total(
    key: str,
    value_fn: Callable[[BatterySnapshot], StateType],
    feature: Feature | None,
) -> BatteryBridgeSensorEntityDescription:
    """Describe a cumulative energy total in Wh (for the Energy dashboard)."""
    return BatteryBridgeSensorEntityDescription(
        key=key,
        translation_key=key,
        feature=feature,
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        value_fn=value_fn,
    )


def _derived_total(key: str, direction: int) -> BatteryBridgeSensorEntityDescription:
    """Describe an energy total derived from rises (+1) or falls (-1) of the stored energy."""
    total = _energy_total(key, lambda _: None, None)
    return replace(total, exists_fn=_derived, stored_energy_direction=direction)


# No state class on the stored energy and the usable capacity: no long-term statistics, so the
# Energy dashboard's energy pickers do not offer them (they are not meters).
_STORED: Final = BatteryBridgeSensorEntityDescription(
    key="stored_energy",
    translation_key="stored_energy",
    device_class=SensorDeviceClass.ENERGY_STORAGE,
    native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
    suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
    suggested_display_precision=2,
    value_fn=lambda s: s.state.stored_energy_wh,
)

SENSORS: tuple[BatteryBridgeSensorEntityDescription, ...] = (
    BatteryBridgeSensorEntityDescription(
        key="state_of_charge",
        translation_key="state_of_charge",
        device_class=SensorDeviceClass.BATTERY,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        value_fn=lambda s: s.state.state_of_charge,
    ),
    BatteryBridgeSensorEntityDescription(
        key="state_of_health",
        translation_key="state_of_health",
        feature=Feature.STATE_OF_HEALTH,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.state.state_of_health,
    ),
    _STORED,
    replace(
        _STORED,
        key="usable_capacity",
        translation_key="usable_capacity",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.state.usable_capacity_wh,
    ),
    _power("battery_power", lambda s: s.state.power_w, Feature.MEASURES_POWER),
    _enum("operation_state", OperationState, lambda s: s.state.operation_state, _OPERATION),
    _enum("control_state", ControlState, lambda s: s.control.control_state, _OPERATION),
    _enum("charge_status", ChargeStatus, lambda s: s.state.charge_status, Feature.CHARGE_STATUS),
    _enum("system_state", SystemState, lambda s: s.state.system_state, _SYSTEM, _DIAGNOSTIC),
    _enum("grid_mode", GridMode, lambda s: s.state.grid_mode, _SYSTEM, _DIAGNOSTIC),
    BatteryBridgeSensorEntityDescription(
        key="reserve",
        translation_key="reserve",
        feature=Feature.RESERVE,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.state.reserve_pct,
    ),
    _enum("command_status", CommandStatus, lambda s: s.control.command_status, _COMMANDS),
    _power("grid_power", lambda s: s.state.grid_power_w, Feature.SITE_METERS),
    _power("pv_power", lambda s: s.state.pv_power_w, Feature.SITE_METERS),
    _power("house_power", lambda s: s.state.house_power_w, Feature.SITE_METERS),
    # The device's energy meters where it has them, else derived from the stored energy.
    _energy_total("energy_charged", lambda s: s.state.energy_charged_wh, _METERED),
    _energy_total("energy_discharged", lambda s: s.state.energy_discharged_wh, _METERED),
    _derived_total("energy_charged", 1),
    _derived_total("energy_discharged", -1),
    # Site meters for the Energy dashboard's grid and solar panels.
    _energy_total("grid_import_energy", lambda s: s.state.grid_import_energy_wh, _SITE),
    _energy_total("grid_export_energy", lambda s: s.state.grid_export_energy_wh, _SITE),
    _energy_total("pv_energy", lambda s: s.state.pv_energy_wh, _SITE),
    # How fast the battery may charge / discharge now (not the setpoint bounds, not our limits).
    _power("max_charge_power", lambda s: s.state.max_charge_power_w, _ALLOWED, diagnostic=True),
    _power(
        "max_discharge_power", lambda s: s.state.max_discharge_power_w, _ALLOWED, diagnostic=True
    ),
    # Where the battery reports the setpoint it applies: it may change every poll (FEMS in auto),
    # so it is here and not on the setpoint number, which shows the commanded setpoint.
    _power(
        "applied_setpoint",
        _applied_setpoint,
        None,
        exists_fn=lambda s: _applied_setpoint(s) is not None,
        diagnostic=True,
    ),
    # A timed override (the start_override action) of a battery that can be controlled.
    BatteryBridgeSensorEntityDescription(
        key="override",
        translation_key="override",
        device_class=SensorDeviceClass.ENUM,
        options=[NO_OVERRIDE, *(mode.value for mode in OverrideMode)],
        exists_fn=_controllable,
        controller_fn=_override_mode,
    ),
    BatteryBridgeSensorEntityDescription(
        key="override_end",
        translation_key="override_end",
        device_class=SensorDeviceClass.TIMESTAMP,
        exists_fn=_controllable,
        controller_fn=_override_end,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BatteryBridgeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of every battery."""
    async_add_battery_entities(entry, async_add_entities, SENSORS, _sensor)
    async_add_battery_entities(entry, async_add_entities, PLAN_SENSORS, PlanSensor)


def _sensor(
    battery: BatteryRuntime, description: BatteryBridgeSensorEntityDescription
) -> BatteryBridgeSensor:
    """Return the sensor of the entity class a description needs."""
    if description.stored_energy_direction is not None:
        return BatteryBridgeStoredEnergySensor(battery, description)
    if description.state_class is SensorStateClass.TOTAL_INCREASING:
        return BatteryBridgeTotalSensor(battery, description)
    return BatteryBridgeSensor(battery, description)


class BatteryBridgeSensor(BatteryBridgeEntity, SensorEntity):
    """A sensor of one battery."""

    entity_description: BatteryBridgeSensorEntityDescription

    @property
    def native_value(self) -> StateType | datetime:
        """Return the value from the latest snapshot (or from the controller)."""
        if (controller_fn := self.entity_description.controller_fn) is not None:
            return controller_fn(self.controller)
        return self.entity_description.value_fn(self.snapshot)


class _RestoredSensor(BatteryBridgeSensor, RestoreEntity):
    """A sensor that keeps state of its own, restored at start and fed each new snapshot."""

    async def async_added_to_hass(self) -> None:
        """Restore the state from before the restart, then take the current snapshot."""
        await super().async_added_to_hass()
        await self._async_restore()
        self._read()

    @callback
    def _handle_coordinator_update(self) -> None:
        """Take the new snapshot, then write the state."""
        self._read()
        super()._handle_coordinator_update()

    async def _async_restore(self) -> None:
        """Take up what was restored (subclasses)."""
        raise NotImplementedError

    def _read(self) -> None:
        """Take the latest snapshot into the sensor's own state (subclasses)."""
        raise NotImplementedError


class BatteryBridgeTotalSensor(_RestoredSensor, RestoreSensor):
    """A cumulative total that a glitch cannot send backwards, also across restarts.

    A FEMS reports near-zero energy totals for a while after it restarts; passed on, Home
    Assistant would count the jump back to the real total as energy. The last good value is
    kept instead (``MonotonicTotal``), starting from the value restored after a restart of Home
    Assistant. The coordinator's snapshot stays as received (diagnostics show the raw total).
    """

    def __init__(
        self, battery: BatteryRuntime, description: BatteryBridgeSensorEntityDescription
    ) -> None:
        """Set up the sensor with an empty filter."""
        super().__init__(battery, description)
        self._total = MonotonicTotal()
        self._value: float | None = None

    async def _async_restore(self) -> None:
        """Seed the filter with the value from before the restart."""
        last = await self.async_get_last_sensor_data()
        if last is not None and isinstance(last.native_value, int | float | Decimal):
            self._total.seed(float(last.native_value))

    def _read(self) -> None:
        value = self.entity_description.value_fn(self.snapshot)
        self._value = self._total.filter(None if value is None else float(value))

    @property
    def native_value(self) -> float | None:
        """Return the filtered total."""
        return self._value


class BatteryBridgeStoredEnergySensor(_RestoredSensor):
    """An energy total derived from the stored energy (see ``StoredEnergyCounter``).

    The count and the last reading survive restarts of Home Assistant (restore data), so the
    total keeps growing and a change while Home Assistant was off is counted once.
    """

    def __init__(
        self, battery: BatteryRuntime, description: BatteryBridgeSensorEntityDescription
    ) -> None:
        """Set up the sensor with a counter at zero."""
        super().__init__(battery, description)
        # _sensor picks this class only for descriptions with a direction.
        self._counter = StoredEnergyCounter(description.stored_energy_direction or 1)

    async def _async_restore(self) -> None:
        """Continue the count from before the restart."""
        if (last := await self.async_get_last_extra_data()) is not None:
            self._counter.restore(last.as_dict())

    def _read(self) -> None:
        state = self.snapshot.state
        self._counter.update(state.stored_energy_wh, state.usable_capacity_wh)

    @property
    def native_value(self) -> float:
        """Return the energy counted so far (Wh)."""
        return round(self._counter.total_wh, 3)

    @property
    def extra_restore_state_data(self) -> StoredEnergyCounterData:
        """Return the counter for the next start."""
        return StoredEnergyCounterData(self._counter)
