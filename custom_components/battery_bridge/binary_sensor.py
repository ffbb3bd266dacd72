"""Binary sensors of Battery Bridge: charging, command pending, reachable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from homeassistant.components.binary_sensor import BinarySensorEntity, BinarySensorEntityDescription
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import BackendKind, BatterySnapshot, ChargeStatus
from .coordinator import BatteryBridgeConfigEntry, BatteryRuntime
from .entity import BatteryBridgeEntity, BatteryBridgeEntityDescription, supported

PARALLEL_UPDATES = 0

# Below this charge power (W) a measured battery counts as not charging: a battery at rest reports
# a few watts either way, which must not flip the sensor (and HA's battery triggers) every poll.
CHARGING_THRESHOLD_W: Final = 20.0


@dataclass(frozen=True, kw_only=True)
class BatteryBridgeBinarySensorEntityDescription(
    BinarySensorEntityDescription, BatteryBridgeEntityDescription
):
    """A binary sensor: how to read its state from a snapshot."""

    is_on_fn: Callable[[BatterySnapshot], bool | None]


def _charging(snapshot: BatterySnapshot) -> bool | None:
    """Return whether the battery charges: its reported charge status, else its power."""
    status = snapshot.state.charge_status
    if status is not None and status is not ChargeStatus.UNKNOWN:
        return status is ChargeStatus.CHARGING
    power = snapshot.state.power_w  # + = discharging, - = charging
    return None if power is None else power < -CHARGING_THRESHOLD_W


BINARY_SENSORS: tuple[BatteryBridgeBinarySensorEntityDescription, ...] = (
    BatteryBridgeBinarySensorEntityDescription(
        # Device class battery_charging: HA's battery triggers and conditions (started / stopped
        # charging) work with it. Created where the battery reports its power or charge status.
        key="charging",
        translation_key="charging",
        device_class=BinarySensorDeviceClass.BATTERY_CHARGING,
        exists_fn=lambda s: s.state.charge_status is not None or s.state.power_w is not None,
        is_on_fn=_charging,
    ),
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
