"""Select entities of Battery Bridge: control mode (FlexConnect, FEMS), operation mode (Enode)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import BackendKind, BatterySnapshot
from .control import BatteryController, settable_modes
from .coordinator import BatteryBridgeConfigEntry, BatteryRuntime
from .entity import BatteryBridgeEntity, BatteryBridgeEntityDescription, supported

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


def _has_modes(snapshot: BatterySnapshot) -> bool:
    return bool(settable_modes(snapshot.capabilities))


SELECTS: tuple[BatteryBridgeSelectEntityDescription, ...] = (
    BatteryBridgeSelectEntityDescription(
        key="control_mode",
        translation_key="control_mode",
        backends=frozenset({BackendKind.FLEXCONNECT, BackendKind.FEMS}),
        exists_fn=_has_modes,
        options_fn=_mode_options,
        select_fn=lambda controller, option: controller.async_set_mode(option),
    ),
    BatteryBridgeSelectEntityDescription(
        key="operation_mode",
        translation_key="operation_mode",
        backends=frozenset({BackendKind.ENODE}),
        exists_fn=_has_modes,
        options_fn=_mode_options,
        select_fn=lambda controller, option: controller.async_set_mode(option),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BatteryBridgeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the selects of every battery, each under its battery subentry."""
    for subentry_id, battery in entry.runtime_data.batteries.items():
        async_add_entities(
            (
                BatteryBridgeSelect(battery, description)
                for description in supported(battery, SELECTS)
            ),
            config_subentry_id=subentry_id,
        )


class BatteryBridgeSelect(BatteryBridgeEntity, SelectEntity):
    """A select of one battery; selecting is an intent for the battery's controller."""

    entity_description: BatteryBridgeSelectEntityDescription

    def __init__(
        self, battery: BatteryRuntime, description: BatteryBridgeSelectEntityDescription
    ) -> None:
        """Set up the select."""
        super().__init__(battery, description)

    @property
    def options(self) -> list[str]:
        """Return the modes the battery can be set to."""
        return self.entity_description.options_fn(self.snapshot)

    @property
    def current_option(self) -> str | None:
        """Return the mode the battery is in (confirmed, not merely requested), if an option."""
        mode = self.controller.displayed_mode()
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
