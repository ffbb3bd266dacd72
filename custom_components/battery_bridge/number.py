"""Number entities of Battery Bridge: the power setpoint and the charge / discharge limits."""

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
from .control import BatteryController, limit_maxima, setpoint_bounds
from .entity import BatteryBridgeEntity, BatteryBridgeEntityDescription, async_add_battery_entities
from .runtime import BatteryBridgeConfigEntry

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class BatteryBridgeNumberEntityDescription(NumberEntityDescription, BatteryBridgeEntityDescription):
    """A number: its bounds, how to read it, and which intent setting it expresses."""

    bounds_fn: Callable[[Capabilities], tuple[int, int]]
    value_fn: Callable[[BatterySnapshot, BatteryController], float | None]
    set_fn: Callable[[BatteryController, float], Awaitable[None]]


def _setpoint(_snapshot: BatterySnapshot, controller: BatteryController) -> float | None:
    """Return the commanded setpoint (never the power the device applies now, which drifts)."""
    return controller.reported().setpoint_w


def _charge_bounds(capabilities: Capabilities) -> tuple[int, int]:
    return 0, limit_maxima(capabilities)[0]


def _discharge_bounds(capabilities: Capabilities) -> tuple[int, int]:
    return 0, limit_maxima(capabilities)[1]


def _charge_limit(snapshot: BatterySnapshot, controller: BatteryController) -> float:
    """Return the charge limit in force; the maximum stands for "no limit"."""
    limit = controller.charge_discharge_limits()[0]
    return _charge_bounds(snapshot.capabilities)[1] if limit is None else limit


def _discharge_limit(snapshot: BatterySnapshot, controller: BatteryController) -> float:
    """Return the discharge limit in force; the maximum stands for "no limit"."""
    limit = controller.charge_discharge_limits()[1]
    return _discharge_bounds(snapshot.capabilities)[1] if limit is None else limit


async def _set_charge_limit(controller: BatteryController, value: float) -> None:
    """Set the charge limit; the maximum releases it."""
    high = _charge_bounds(controller.coordinator.data.capabilities)[1]
    await controller.async_set_charge_limit(None if value >= high else value)


async def _set_discharge_limit(controller: BatteryController, value: float) -> None:
    """Set the discharge limit; the maximum releases it."""
    high = _discharge_bounds(controller.coordinator.data.capabilities)[1]
    await controller.async_set_discharge_limit(None if value >= high else value)


def _limit_number(
    key: str,
    bounds_fn: Callable[[Capabilities], tuple[int, int]],
    value_fn: Callable[[BatterySnapshot, BatteryController], float | None],
    set_fn: Callable[[BatteryController, float], Awaitable[None]],
) -> BatteryBridgeNumberEntityDescription:
    """Describe a charge or discharge limit: W, 0 ... the battery's largest power (= no limit)."""
    return BatteryBridgeNumberEntityDescription(
        key=key,
        translation_key=key,
        device_class=NumberDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        native_step=1,
        mode=NumberMode.BOX,
        exists_fn=lambda s: s.capabilities.charge_discharge_limits,
        bounds_fn=bounds_fn,
        value_fn=value_fn,
        set_fn=set_fn,
    )


NUMBERS: tuple[BatteryBridgeNumberEntityDescription, ...] = (
    BatteryBridgeNumberEntityDescription(
        # W, + = discharge, - = charge; created where the battery takes a setpoint. It shows our
        # command (unknown in a mode without one); sensor "applied_setpoint" shows what is applied.
        key="power_setpoint",
        translation_key="power_setpoint",
        device_class=NumberDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        native_step=50,
        mode=NumberMode.BOX,
        exists_fn=lambda s: bool(s.capabilities.setpoint_modes),
        bounds_fn=setpoint_bounds,
        value_fn=_setpoint,
        set_fn=lambda controller, value: controller.async_set_power(value),
    ),
    # Created where the battery takes limits (FEMS with write access); they apply in every mode.
    _limit_number("charge_power_limit", _charge_bounds, _charge_limit, _set_charge_limit),
    _limit_number(
        "discharge_power_limit", _discharge_bounds, _discharge_limit, _set_discharge_limit
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BatteryBridgeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the numbers of every battery."""
    async_add_battery_entities(entry, async_add_entities, NUMBERS, BatteryBridgeNumber)


class BatteryBridgeNumber(BatteryBridgeEntity, NumberEntity):
    """A number of one battery; setting it is an intent for the battery's controller."""

    entity_description: BatteryBridgeNumberEntityDescription

    @property
    def native_min_value(self) -> float:
        """Return the lowest value the battery accepts."""
        return self.entity_description.bounds_fn(self.snapshot.capabilities)[0]

    @property
    def native_max_value(self) -> float:
        """Return the highest value the battery accepts."""
        return self.entity_description.bounds_fn(self.snapshot.capabilities)[1]

    @property
    def native_value(self) -> float | None:
        """Return the value in force, rounded to the step (the state changes only with it)."""
        value = self.entity_description.value_fn(self.snapshot, self.controller)
        step = self.entity_description.native_step
        if value is None or not step:
            return value
        return round(value / step) * step

    async def async_set_native_value(self, value: float) -> None:
        """Hand the new value to the controller."""
        await self.entity_description.set_fn(self.controller, value)
