"""The Plan and Plan next start sensors of a controllable battery (the plan_charge action)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorEntityDescription
from homeassistant.helpers.typing import StateType

from .api import BatterySnapshot
from .control import settable_modes
from .entity import BatteryBridgeEntity, BatteryBridgeEntityDescription
from .plan import PlanStatus
from .plan_runner import PlanRunner
from .runtime import BatteryRuntime


def _controllable(snapshot: BatterySnapshot) -> bool:
    return bool(settable_modes(snapshot.capabilities))


@dataclass(frozen=True, kw_only=True)
class PlanSensorEntityDescription(SensorEntityDescription, BatteryBridgeEntityDescription):
    """A sensor read from the battery's plan runner."""

    plan_fn: Callable[[PlanRunner], StateType | datetime]
    with_attributes: bool = False
    """Whether the sensor carries the plan's attributes (target, deadline, slots...)."""


PLAN_SENSORS: tuple[PlanSensorEntityDescription, ...] = (
    PlanSensorEntityDescription(
        key="plan",
        translation_key="plan",
        device_class=SensorDeviceClass.ENUM,
        options=[status.value for status in PlanStatus],
        exists_fn=_controllable,
        plan_fn=lambda runner: runner.status().value,
        with_attributes=True,
    ),
    PlanSensorEntityDescription(
        key="plan_next_start",
        translation_key="plan_next_start",
        device_class=SensorDeviceClass.TIMESTAMP,
        exists_fn=_controllable,
        plan_fn=lambda runner: runner.next_start(),
    ),
)


class PlanSensor(BatteryBridgeEntity, SensorEntity):
    """A sensor of a battery's charge plan; re-rendered at every poll and every step."""

    entity_description: PlanSensorEntityDescription
    # The plan's slots (one entry per charging run, with its times, power and price) are bulky:
    # shown, not recorded at every state write (the other attributes are a few scalars).
    _unrecorded_attributes = frozenset({"slots"})

    def __init__(self, battery: BatteryRuntime, description: PlanSensorEntityDescription) -> None:
        """Attach the sensor to the battery's plan runner."""
        super().__init__(battery, description)
        self._runner = battery.planner

    @property
    def native_value(self) -> StateType | datetime:
        """Return the plan's state or next start."""
        return self.entity_description.plan_fn(self._runner)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return the plan's target, deadline, slots, energy, cost and issues."""
        if not self.entity_description.with_attributes:
            return None
        return self._runner.attributes()
