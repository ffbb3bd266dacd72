"""Sensors of Battery Bridge: measurements and states of each battery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, EntityCategory, UnitOfEnergy, UnitOfPower
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .api import (
    BackendKind,
    BatterySnapshot,
    ChargeStatus,
    CommandStatus,
    ControlState,
    GridMode,
    OperationState,
    SystemState,
)
from .coordinator import BatteryBridgeConfigEntry, BatteryRuntime
from .entity import BatteryBridgeEntity, BatteryBridgeEntityDescription, supported

PARALLEL_UPDATES = 0

FLEXCONNECT = frozenset({BackendKind.FLEXCONNECT})
FEMS = frozenset({BackendKind.FEMS})
ENODE = frozenset({BackendKind.ENODE})


@dataclass(frozen=True, kw_only=True)
class BatteryBridgeSensorEntityDescription(SensorEntityDescription, BatteryBridgeEntityDescription):
    """A sensor: how to read its value from a snapshot."""

    value_fn: Callable[[BatterySnapshot], StateType]


def _enum_value(value: StrEnum | None) -> str | None:
    return None if value is None else value.value


def _power(
    key: str,
    value_fn: Callable[[BatterySnapshot], StateType],
    *,
    backends: frozenset[BackendKind],
    diagnostic: bool = False,
) -> BatteryBridgeSensorEntityDescription:
    """Describe a power sensor in W; a diagnostic one is disabled by default."""
    return BatteryBridgeSensorEntityDescription(
        key=key,
        translation_key=key,
        backends=backends,
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC if diagnostic else None,
        entity_registry_enabled_default=not diagnostic,
        value_fn=value_fn,
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
        backends=FLEXCONNECT | FEMS,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.state.state_of_health,
    ),
    BatteryBridgeSensorEntityDescription(
        key="stored_energy",
        translation_key="stored_energy",
        device_class=SensorDeviceClass.ENERGY_STORAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        value_fn=lambda s: s.state.stored_energy_wh,
    ),
    BatteryBridgeSensorEntityDescription(
        key="usable_capacity",
        translation_key="usable_capacity",
        device_class=SensorDeviceClass.ENERGY_STORAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.state.usable_capacity_wh,
    ),
    _power("battery_power", lambda s: s.state.power_w, backends=FEMS | ENODE),
    BatteryBridgeSensorEntityDescription(
        key="operation_state",
        translation_key="operation_state",
        backends=FLEXCONNECT,
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in OperationState],
        value_fn=lambda s: _enum_value(s.state.operation_state),
    ),
    BatteryBridgeSensorEntityDescription(
        key="control_state",
        translation_key="control_state",
        backends=FLEXCONNECT,
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in ControlState],
        value_fn=lambda s: _enum_value(s.control.control_state),
    ),
    BatteryBridgeSensorEntityDescription(
        key="charge_status",
        translation_key="charge_status",
        backends=ENODE,
        device_class=SensorDeviceClass.ENUM,
        options=[status.value for status in ChargeStatus],
        value_fn=lambda s: _enum_value(s.state.charge_status),
    ),
    BatteryBridgeSensorEntityDescription(
        key="system_state",
        translation_key="system_state",
        backends=FEMS,
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in SystemState],
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: _enum_value(s.state.system_state),
    ),
    BatteryBridgeSensorEntityDescription(
        key="grid_mode",
        translation_key="grid_mode",
        backends=FEMS,
        device_class=SensorDeviceClass.ENUM,
        options=[mode.value for mode in GridMode],
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: _enum_value(s.state.grid_mode),
    ),
    BatteryBridgeSensorEntityDescription(
        key="reserve",
        translation_key="reserve",
        backends=ENODE,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.state.reserve_pct,
    ),
    BatteryBridgeSensorEntityDescription(
        key="command_status",
        translation_key="command_status",
        backends=FLEXCONNECT | ENODE,
        device_class=SensorDeviceClass.ENUM,
        options=[status.value for status in CommandStatus],
        value_fn=lambda s: _enum_value(s.control.command_status),
    ),
    _power("grid_power", lambda s: s.state.grid_power_w, backends=FEMS),
    _power("pv_power", lambda s: s.state.pv_power_w, backends=FEMS),
    _power("house_power", lambda s: s.state.house_power_w, backends=FEMS),
    BatteryBridgeSensorEntityDescription(
        key="energy_charged",
        translation_key="energy_charged",
        backends=FEMS,
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        value_fn=lambda s: s.state.energy_charged_wh,
    ),
    BatteryBridgeSensorEntityDescription(
        key="energy_discharged",
        translation_key="energy_discharged",
        backends=FEMS,
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        value_fn=lambda s: s.state.energy_discharged_wh,
    ),
    _power(
        "max_charge_power",
        lambda s: s.state.max_charge_power_w,
        backends=FEMS,
        diagnostic=True,
    ),
    _power(
        "max_discharge_power",
        lambda s: s.state.max_discharge_power_w,
        backends=FEMS,
        diagnostic=True,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BatteryBridgeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of every battery, each under its battery subentry."""
    for subentry_id, battery in entry.runtime_data.batteries.items():
        async_add_entities(
            (
                BatteryBridgeSensor(battery, description)
                for description in supported(battery, SENSORS)
            ),
            config_subentry_id=subentry_id,
        )


class BatteryBridgeSensor(BatteryBridgeEntity, SensorEntity):
    """A sensor of one battery."""

    entity_description: BatteryBridgeSensorEntityDescription

    def __init__(
        self, battery: BatteryRuntime, description: BatteryBridgeSensorEntityDescription
    ) -> None:
        """Set up the sensor."""
        super().__init__(battery, description)

    @property
    def native_value(self) -> StateType:
        """Return the value from the latest snapshot."""
        return self.entity_description.value_fn(self.snapshot)
