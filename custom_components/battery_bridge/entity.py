"""The base entity and entity description of Battery Bridge."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .api import BatterySnapshot, Feature
from .api.registry import backend_spec
from .const import DOMAIN
from .control import BatteryController
from .coordinator import BatteryCoordinator
from .runtime import BatteryBridgeConfigEntry, BatteryRuntime


def battery_uid(coordinator: BatteryCoordinator) -> str:
    """Return the id that identifies a battery across Home Assistant (device and unique ids).

    Globally unique battery ids (a FlexConnect SKI, an Enode UUID) are used as they are. Ids
    unique only within their entry (``BackendSpec.battery_ids_unique`` false: a FEMS ESS id,
    ``ess0`` on nearly every system) are prefixed by the config entry id: ``<entry_id>_ess0``.
    The entry id is stable for the life of the entry, unlike its unique id (a FEMS's host), which
    a reconfiguration would change; removing and re-adding such an entry creates new entities.
    """
    if not backend_spec(coordinator.kind).battery_ids_unique:
        return f"{coordinator.config_entry.entry_id}_{coordinator.battery_id}"
    return coordinator.battery_id


@dataclass(frozen=True, kw_only=True)
class BatteryBridgeEntityDescription(EntityDescription):
    """Which batteries get an entity, from their first snapshot (never from the backend kind).

    ``feature``: the field must be reported (``Capabilities.features``); ``exists_fn``: any
    further condition on the snapshot (such as "can take a setpoint").
    """

    feature: Feature | None = None
    exists_fn: Callable[[BatterySnapshot], bool] = lambda _: True

    def exists(self, snapshot: BatterySnapshot) -> bool:
        """Return True when a battery with this first snapshot gets the entity."""
        features = snapshot.capabilities.features
        return (self.feature is None or self.feature in features) and self.exists_fn(snapshot)


@callback
def async_add_battery_entities[DescriptionT: BatteryBridgeEntityDescription](
    entry: BatteryBridgeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    descriptions: Iterable[DescriptionT],
    entity_fn: Callable[[BatteryRuntime, DescriptionT], Entity],
) -> None:
    """Add the entities each battery gets (``exists``), each under its battery subentry."""
    for subentry_id, battery in entry.runtime_data.batteries.items():
        async_add_entities(
            (
                entity_fn(battery, description)
                for description in descriptions
                if description.exists(battery.coordinator.data)
            ),
            config_subentry_id=subentry_id,
        )


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
