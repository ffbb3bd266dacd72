"""Binary sensors of Battery Bridge: command pending, reachable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import BinarySensorEntity, BinarySensorEntityDescription
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import BackendKind, BatterySnapshot
from .coordinator import BatteryBridgeConfigEntry, BatteryRuntime
from .entity import BatteryBridgeEntity, BatteryBridgeEntityDescription, supported

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class BatteryBridgeBinarySensorEntityDescription(
    BinarySensorEntityDescription, BatteryBridgeEntityDescription
):
    """A binary sensor: how to read its state from a snapshot."""

    is_on_fn: Callable[[BatterySnapshot], bool | None]


BINARY_SENSORS: tuple[BatteryBridgeBinarySensorEntityDescription, ...] = (
    BatteryBridgeBinarySensorEntityDescription(
        # A command was sent but the battery has not applied it yet (FlexConnect: desired and
        # current instructions differ; Enode: the Action is PENDING).
        key="command_pending",
        translation_key="command_pending",
        backends=frozenset({BackendKind.FLEXCONNECT, BackendKind.ENODE}),
        is_on_fn=lambda s: s.control.pending,
    ),
    BatteryBridgeBinarySensorEntityDescription(
        key="reachable",
        translation_key="reachable",
        backends=frozenset({BackendKind.ENODE}),
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        is_on_fn=lambda s: s.state.reachable,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BatteryBridgeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the binary sensors of every battery, each under its battery subentry."""
    for subentry_id, battery in entry.runtime_data.batteries.items():
        async_add_entities(
            (
                BatteryBridgeBinarySensor(battery, description)
                for description in supported(battery, BINARY_SENSORS)
            ),
            config_subentry_id=subentry_id,
        )


class BatteryBridgeBinarySensor(BatteryBridgeEntity, BinarySensorEntity):
    """A binary sensor of one battery."""

    entity_description: BatteryBridgeBinarySensorEntityDescription

    def __init__(
        self, battery: BatteryRuntime, description: BatteryBridgeBinarySensorEntityDescription
    ) -> None:
        """Set up the binary sensor."""
        super().__init__(battery, description)

    @property
    def is_on(self) -> bool | None:
        """Return the state from the latest snapshot."""
        return self.entity_description.is_on_fn(self.snapshot)
