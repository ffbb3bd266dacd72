"""The base entity and entity description of Battery Bridge."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .api import BackendKind, BatterySnapshot
from .const import DOMAIN
from .control import BatteryController
from .coordinator import BatteryCoordinator, BatteryRuntime

ALL_BACKENDS: Final = frozenset(BackendKind)

# Backends whose battery ids are unique only within one config entry (see ``battery_uid``).
ENTRY_SCOPED_BATTERY_IDS: Final = frozenset({BackendKind.FEMS})


def battery_uid(coordinator: BatteryCoordinator) -> str:
    """Return the id that identifies a battery across Home Assistant (device and unique ids).

    A FlexConnect battery id (the 40-hex SKI) and an Enode battery id (a UUID) are globally
    unique, so they are used as they are. A FEMS battery id is its ESS component id, ``ess0`` on
    nearly every system, so it is prefixed by the config entry id: ``<entry_id>_ess0``. The entry id
    is stable for the life of the entry, unlike the entry's unique id (the host), which a
    reconfiguration to a new IP address would change. Removing and re-adding a FEMS therefore
    creates new entities, which is the price of a FEMS having no serial number we could read.
    """
    if coordinator.kind in ENTRY_SCOPED_BATTERY_IDS:
        return f"{coordinator.config_entry.entry_id}_{coordinator.battery_id}"
    return coordinator.battery_id


@dataclass(frozen=True, kw_only=True)
class BatteryBridgeEntityDescription(EntityDescription):
    """Which batteries get an entity: ``backends`` that provide the field, and ``exists_fn``.

    ``exists_fn`` is called with the battery's first snapshot (for capabilities such as
    "can take a setpoint"); ``backends`` lists the backends that provide the field at all.
    """

    backends: frozenset[BackendKind] = ALL_BACKENDS
    exists_fn: Callable[[BatterySnapshot], bool] = lambda _: True


def supported[DescriptionT: BatteryBridgeEntityDescription](
    battery: BatteryRuntime, descriptions: Iterable[DescriptionT]
) -> Iterator[DescriptionT]:
    """Yield the descriptions of the entities this battery gets."""
    coordinator = battery.coordinator
    for description in descriptions:
        if coordinator.kind in description.backends and description.exists_fn(coordinator.data):
            yield description


class BatteryBridgeEntity(CoordinatorEntity[BatteryCoordinator]):
    """An entity of one battery: device info, unique id, availability from the coordinator."""

    _attr_has_entity_name = True

    def __init__(self, battery: BatteryRuntime, description: EntityDescription) -> None:
        """Attach the entity to its battery's coordinator and controller."""
        super().__init__(battery.coordinator)
        self.controller: BatteryController = battery.controller
        self.entity_description = description
        coordinator = battery.coordinator
        uid = f"{coordinator.kind}_{battery_uid(coordinator)}"
        info = coordinator.data.info
        self._attr_unique_id = f"{uid}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, uid)},
            manufacturer=info.manufacturer,
            model=info.model,
            serial_number=info.serial_number,
            sw_version=info.sw_version,
            name=coordinator.subentry.title or info.name,
        )

    @property
    def snapshot(self) -> BatterySnapshot:
        """Return the battery's latest snapshot."""
        return self.coordinator.data
