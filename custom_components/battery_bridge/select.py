"""Select entities of Battery Bridge: control mode (FlexConnect, FEMS), operation mode (Enode)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import BackendKind, BatterySnapshot, ControlMode
from .control import BatteryController, settable_modes
from .coordinator import BatteryBridgeConfigEntry, BatteryRuntime
from .entity import BatteryBridgeEntity, BatteryBridgeEntityDescription, supported

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class BatteryBridgeSelectEntityDescription(SelectEntityDescription, BatteryBridgeEntityDescription):
    """A select: its options, how to read the current one, which intent selecting expresses."""

    options_fn: Callable[[BatterySnapshot], list[str]]
    current_fn: Callable[[BatterySnapshot, BatteryController], str | None]
    select_fn: Callable[[BatteryController, str], Awaitable[None]]


def _mode_options(snapshot: BatterySnapshot) -> list[str]:
    return [mode.value for mode in settable_modes(snapshot.capabilities)]


def _current_mode(snapshot: BatterySnapshot, controller: BatteryController) -> str | None:
    """Return the mode the device reports, else the requested one, else the one we wrote.

    A battery that forgets commands (FEMS: ``command_timeout_s``) is in ``auto`` unless we asked
    for something else, as nothing of ours is in force after its timeout.
    """
    control = snapshot.control
    for instruction in (control.current, control.desired):
        if instruction is not None and instruction.mode is not None:
            return instruction.mode.value
    active = controller.active
    if active is not None:
        return active.command.mode.value
    capabilities = snapshot.capabilities
    if capabilities.command_timeout_s is not None and ControlMode.AUTO in capabilities.modes:
        return ControlMode.AUTO.value
    return None


def _has_modes(snapshot: BatterySnapshot) -> bool:
    return bool(settable_modes(snapshot.capabilities))


SELECTS: tuple[BatteryBridgeSelectEntityDescription, ...] = (
    BatteryBridgeSelectEntityDescription(
        key="control_mode",
        translation_key="control_mode",
        backends=frozenset({BackendKind.FLEXCONNECT, BackendKind.FEMS}),
        exists_fn=_has_modes,
        options_fn=_mode_options,
        current_fn=_current_mode,
        select_fn=lambda controller, option: controller.async_set_mode(option),
    ),
    BatteryBridgeSelectEntityDescription(
        key="operation_mode",
        translation_key="operation_mode",
        backends=frozenset({BackendKind.ENODE}),
        exists_fn=_has_modes,
        options_fn=_mode_options,
        current_fn=_current_mode,
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
        """Return the mode in force, if it is one of the options."""
        option = self.entity_description.current_fn(self.snapshot, self.controller)
        return option if option in self.options else None

    async def async_select_option(self, option: str) -> None:
        """Hand the selected mode to the controller."""
        await self.entity_description.select_fn(self.controller, option)
