"""A fourth backend that lives only in the tests: a bank of batteries held in memory.

It proves the seam of issue 8: its module is a spec and a client, like api/fems.py, plus the thin
step methods of its forms, like those config_flow.py has for each built-in backend; registered
with one line (``register``: the registry entry and those methods), it gets the config flow,
entities and control through the generic code of the integration, which knows nothing about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import aiohttp
from homeassistant.config_entries import ConfigFlowResult, SubentryFlowResult

from custom_components.battery_bridge.api import (
    BackendSpec,
    BatteryInfo,
    BatterySnapshot,
    BatteryState,
    CannotConnectError,
    Capabilities,
    ConfigField,
    ControlCommand,
    ControlInstruction,
    ControlMode,
    ControlPolicy,
    ControlStatus,
    Feature,
    UnknownBatteryError,
)
from custom_components.battery_bridge.api.backend import SETPOINT_OVERRIDES
from custom_components.battery_bridge.api.registry import BACKENDS
from custom_components.battery_bridge.config_flow import (
    BatteryBridgeConfigFlow,
    BatterySubentryFlow,
)

KIND: Final = "memory"
SETTING_BANK: Final = "bank"
MAX_POWER_W: Final = 3000
CAPABILITIES: Final = Capabilities(
    modes=(ControlMode.AUTO, ControlMode.POWER),
    setpoint_modes=frozenset({ControlMode.POWER}),
    min_power_w=-MAX_POWER_W,
    max_power_w=MAX_POWER_W,
    features=frozenset({Feature.MEASURES_POWER}),
)


@dataclass
class MemoryBattery:
    """One battery of a bank: its state of charge and the command last written to it."""

    name: str
    soc: float = 50.0
    commands: list[ControlCommand] = field(default_factory=list)

    def control(self) -> ControlInstruction:
        """Return what the battery runs now (auto until a command is written)."""
        if not self.commands:
            return ControlInstruction(ControlMode.AUTO)
        last = self.commands[-1]
        return ControlInstruction(last.mode, last.setpoint_w)


BANKS: dict[str, dict[str, MemoryBattery]] = {}
"""The banks by name ("the devices"): the tests fill them, the backend reads and writes them."""


class MemoryBackend:
    """The client of one bank (no I/O: the session is taken and not used, like a real client)."""

    kind = KIND

    def __init__(self, session: aiohttp.ClientSession, bank: str) -> None:
        """Store the settings."""
        self._session = session
        self._bank = bank

    def _batteries(self) -> dict[str, MemoryBattery]:
        if (batteries := BANKS.get(self._bank)) is None:
            raise CannotConnectError(f"no bank {self._bank!r}")
        return batteries

    async def async_validate(self) -> None:
        """Check that the bank exists."""
        self._batteries()

    async def async_list_batteries(self) -> list[BatteryInfo]:
        """Return the bank's batteries."""
        return [self._info(b_id, b) for b_id, b in self._batteries().items()]

    async def async_get_snapshot(self, battery_id: str) -> BatterySnapshot:
        """Return one battery's state and control."""
        battery = self._battery(battery_id)
        control = battery.control()
        return BatterySnapshot(
            info=self._info(battery_id, battery),
            state=BatteryState(state_of_charge=battery.soc, power_w=float(control.setpoint_w or 0)),
            control=ControlStatus(current=control, desired=control),
            capabilities=CAPABILITIES,
        )

    async def async_apply(self, battery_id: str, command: ControlCommand) -> None:
        """Record the command."""
        self._battery(battery_id).commands.append(command)

    def _battery(self, battery_id: str) -> MemoryBattery:
        if (battery := self._batteries().get(battery_id)) is None:
            raise UnknownBatteryError(battery_id)
        return battery

    @staticmethod
    def _info(battery_id: str, battery: MemoryBattery) -> BatteryInfo:
        return BatteryInfo(battery_id=battery_id, name=battery.name, manufacturer="Memory")


def create_backend(settings: Any, session: aiohttp.ClientSession) -> MemoryBackend:
    """Build the client for config entry settings."""
    return MemoryBackend(session, settings[SETTING_BANK])


SPEC: Final = BackendSpec(
    kind=KIND,
    create=create_backend,
    fields=(ConfigField(SETTING_BANK),),
    unique_id=lambda settings: f"memory:{settings[SETTING_BANK]}",
    title=lambda settings: f"Memory bank {settings[SETTING_BANK]}",
    poll_interval=timedelta(seconds=30),
    min_poll_interval=timedelta(seconds=5),
    control_policy=ControlPolicy(
        setpoint_mode=ControlMode.POWER,
        mode_keeps_setpoint=False,
        override_modes=SETPOINT_OVERRIDES,
        release_mode=ControlMode.AUTO,
    ),
    lists_batteries=True,
)


# The steps its spec can show (the bank, the battery choice, reconfiguration; adding a battery):
# thin methods like a built-in backend's in config_flow.py. No write probe: no read-only step.


async def async_step_memory(
    self: BatteryBridgeConfigFlow, user_input: dict[str, Any] | None = None
) -> ConfigFlowResult:
    """Set up a bank."""
    return await self._async_step_setup(SPEC, user_input)


async def async_step_memory_batteries(
    self: BatteryBridgeConfigFlow, user_input: dict[str, Any] | None = None
) -> ConfigFlowResult:
    """Choose the bank's batteries to add."""
    return await self._async_step_choose(SPEC, user_input)


async def async_step_reconfigure_memory(
    self: BatteryBridgeConfigFlow, user_input: dict[str, Any] | None = None
) -> ConfigFlowResult:
    """Reconfigure a bank."""
    return await self._async_step_reconfigure(SPEC, user_input)


async def async_step_add_memory(
    self: BatterySubentryFlow, user_input: dict[str, Any] | None = None
) -> SubentryFlowResult:
    """Add a battery of the bank."""
    return await self._async_step_add(SPEC, user_input)


def register(monkeypatch: Any) -> None:
    """Add the backend until the test ends (``pytest.MonkeyPatch``): its spec and its steps.

    A built-in backend has its registry line in api/registry.py and its step methods written out
    in the flow classes; this one, not part of the integration, sets them for the test only.
    """
    monkeypatch.setitem(BACKENDS, KIND, SPEC)
    for name, step in (
        (f"async_step_{KIND}", async_step_memory),
        (f"async_step_{KIND}_batteries", async_step_memory_batteries),
        (f"async_step_reconfigure_{KIND}", async_step_reconfigure_memory),
    ):
        monkeypatch.setattr(BatteryBridgeConfigFlow, name, step, raising=False)
    monkeypatch.setattr(
        BatterySubentryFlow, f"async_step_{KIND}", async_step_add_memory, raising=False
    )
