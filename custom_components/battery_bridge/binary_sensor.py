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

from .api import BatterySnapshot, ChargeStatus, Feature
from .entity import BatteryBridgeEntity, BatteryBridgeEntityDescription, async_add_battery_entities
from .runtime import BatteryBridgeConfigEntry

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
        feature=Feature.COMMAND_STATUS,
        is_on_fn=lambda s: s.control.pending,
    ),
    BatteryBridgeBinarySensorEntityDescription(
        key="reachable",
        translation_key="reachable",
        feature=Feature.REACHABILITY,
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
    """Add the binary sensors of every battery."""
    async_add_battery_entities(entry, async_add_entities, BINARY_SENSORS, BatteryBridgeBinarySensor)


class BatteryBridgeBinarySensor(BatteryBridgeEntity, BinarySensorEntity):
    """A binary sensor of one battery."""

    entity_description: BatteryBridgeBinarySensorEntityDescription

    @property
    def is_on(self) -> bool | None:
        """Return the state from the latest snapshot."""
        return self.entity_description.is_on_fn(self.snapshot)
