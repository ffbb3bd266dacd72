"""Select entities of Battery Bridge: the control mode or the operation mode of a battery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import BatterySnapshot
from .control import BatteryController, settable_modes
from .entity import BatteryBridgeEntity, BatteryBridgeEntityDescription, async_add_battery_entities
from .runtime import BatteryBridgeConfigEntry

PARALLEL_UPDATES = 1

# State attributes while the backend reports where the last command stands (FlexConnect, Enode).
ATTR_REQUESTED_OPTION: Final = "requested_option"
ATTR_COMMAND_STATE: Final = "command_state"


@dataclass(frozen=True, kw_only=True)
class BatteryBridgeSelectEntityDescription(SelectEntityDescription, BatteryBridgeEntityDescription):
    """A select: its options and which intent selecting expresses."""

    options_fn: Callable[[BatterySnapshot], list[str]]
    select_fn: Callable[[BatteryController, str], Awaitable[None]]


def _mode_options(snapshot: BatterySnapshot) -> list[str]:
    return [mode.value for mode in settable_modes(snapshot.capabilities)]


def _has_control_modes(snapshot: BatterySnapshot) -> bool:
    """Return True for settable modes that say how a setpoint applies (power, pcc, auto)."""
    capabilities = snapshot.capabilities
    return bool(settable_modes(capabilities)) and bool(capabilities.setpoint_modes)


def _has_operation_modes(snapshot: BatterySnapshot) -> bool:
    """Return True for settable modes without setpoints: strategies of the battery's own control."""
    capabilities = snapshot.capabilities
    return bool(settable_modes(capabilities)) and not capabilities.setpoint_modes


def _mode_select(
    key: str, exists_fn: Callable[[BatterySnapshot], bool]
) -> BatteryBridgeSelectEntityDescription:
    """Describe a select of the battery's settable modes; selecting one sets it."""
    return BatteryBridgeSelectEntityDescription(
        key=key,
        translation_key=key,
        exists_fn=exists_fn,
        options_fn=_mode_options,
        select_fn=lambda controller, option: controller.async_set_mode(option),
    )


SELECTS: tuple[BatteryBridgeSelectEntityDescription, ...] = (
    _mode_select("control_mode", _has_control_modes),
    _mode_select("operation_mode", _has_operation_modes),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BatteryBridgeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the selects of every battery."""
    async_add_battery_entities(entry, async_add_entities, SELECTS, BatteryBridgeSelect)


class BatteryBridgeSelect(BatteryBridgeEntity, SelectEntity):
    """A select of one battery; selecting is an intent for the battery's controller."""

    entity_description: BatteryBridgeSelectEntityDescription

    @property
    def options(self) -> list[str]:
        """Return the modes the battery can be set to."""
        return self.entity_description.options_fn(self.snapshot)

    @property
    def current_option(self) -> str | None:
        """Return the mode the battery is in (confirmed, not merely requested), if an option."""
        mode = self.controller.reported().mode
        return mode.value if mode is not None and mode.value in self.options else None

    @property
    def extra_state_attributes(self) -> dict[str, str | None] | None:
        """Return the requested mode (while pending) and the state of the last command."""
        control = self.snapshot.control
        if control.command_status is None:
            return None
        requested = control.desired.mode if control.pending and control.desired else None
        return {
            ATTR_REQUESTED_OPTION: None if requested is None else requested.value,
            ATTR_COMMAND_STATE: control.command_status.value,
        }

    async def async_select_option(self, option: str) -> None:
        """Hand the selected mode to the controller."""
        await self.entity_description.select_fn(self.controller, option)
