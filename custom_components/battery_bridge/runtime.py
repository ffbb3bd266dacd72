"""The runtime data of a config entry: the backend and, per battery, coordinator, controller, plan."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry

from .api import Backend
from .control import BatteryController
from .coordinator import BatteryCoordinator
from .plan_runner import PlanRunner


@dataclass(kw_only=True, slots=True)
class BatteryRuntime:
    """The runtime objects of one battery (one config subentry)."""

    subentry_id: str
    coordinator: BatteryCoordinator
    controller: BatteryController
    planner: PlanRunner
    """The battery's charge plan (the plan_charge action)."""


@dataclass(kw_only=True, slots=True)
class BatteryBridgeData:
    """``ConfigEntry.runtime_data``: the backend client and, per battery subentry id, its runtime."""

    kind: str
    """The backend kind (api/registry.py)."""
    backend: Backend
    batteries: dict[str, BatteryRuntime]


type BatteryBridgeConfigEntry = ConfigEntry[BatteryBridgeData]
