"""Number entities of Battery Bridge: the power setpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.number import (
    NumberDeviceClass,
    NumberEntity,
    NumberEntityDescription,
    NumberMode,
)
from homeassistant.const import UnitOfPower
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import BatterySnapshot, Capabilities
from .control import BatteryController, power_limits
from .coordinator import BatteryBridgeConfigEntry, BatteryRuntime
from .entity import BatteryBridgeEntity, BatteryBridgeEntityDescription, supported

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class BatteryBridgeNumberEntityDescription(NumberEntityDescription, BatteryBridgeEntityDescription):
    """A number: its bounds, how to read it, and which intent setting it expresses."""

    limits_fn: Callable[[Capabilities], tuple[int, int]]
    value_fn: Callable[[BatterySnapshot, BatteryController], float | None]
    set_fn: Callable[[BatteryController, float], Awaitable[None]]


def _setpoint(snapshot: BatterySnapshot, controller: BatteryController) -> float | None:
    """Return the setpoint the device reports, else the requested one, else the one we wrote."""
    control = snapshot.control
    for instruction in (control.current, control.desired):
        if instruction is not None and instruction.setpoint_w is not None:
            return instruction.setpoint_w
    active = controller.active
    return None if active is None else active.command.setpoint_w


NUMBERS: tuple[BatteryBridgeNumberEntityDescription, ...] = (
    BatteryBridgeNumberEntityDescription(
        # W, + = discharge, - = charge; created where the battery takes a setpoint.
        key="power_setpoint",
        translation_key="power_setpoint",
        device_class=NumberDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        native_step=50,
        mode=NumberMode.BOX,
        exists_fn=lambda s: bool(s.capabilities.setpoint_modes),
        limits_fn=power_limits,
        value_fn=_setpoint,
        set_fn=lambda controller, value: controller.async_set_power(value),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BatteryBridgeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the numbers of every battery, each under its battery subentry."""
    for subentry_id, battery in entry.runtime_data.batteries.items():
        async_add_entities(
            (
                BatteryBridgeNumber(battery, description)
                for description in supported(battery, NUMBERS)
            ),
            config_subentry_id=subentry_id,
        )


class BatteryBridgeNumber(BatteryBridgeEntity, NumberEntity):
    """A number of one battery; setting it is an intent for the battery's controller."""

    entity_description: BatteryBridgeNumberEntityDescription

    def __init__(
        self, battery: BatteryRuntime, description: BatteryBridgeNumberEntityDescription
    ) -> None:
        """Set up the number."""
        super().__init__(battery, description)

    @property
    def native_min_value(self) -> float:
        """Return the lowest value the battery accepts."""
        return self.entity_description.limits_fn(self.snapshot.capabilities)[0]

    @property
    def native_max_value(self) -> float:
        """Return the highest value the battery accepts."""
        return self.entity_description.limits_fn(self.snapshot.capabilities)[1]

    @property
    def native_value(self) -> float | None:
        """Return the value the device reports, else the requested one."""
        return self.entity_description.value_fn(self.snapshot, self.controller)

    async def async_set_native_value(self, value: float) -> None:
        """Hand the new value to the controller."""
        await self.entity_description.set_fn(self.controller, value)
