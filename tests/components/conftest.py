"""Fixtures for the Home Assistant tests: a fake backend per kind, config entries, set-up."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar
from unittest.mock import PropertyMock, patch

from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, Platform
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.battery_bridge import PLATFORMS
from custom_components.battery_bridge.api import (
    BackendError,
    BackendKind,
    BatteryInfo,
    BatterySnapshot,
    BatteryState,
    Capabilities,
    ChargeStatus,
    CommandStatus,
    ControlCommand,
    ControlInstruction,
    ControlMode,
    ControlState,
    ControlStatus,
    Feature,
    GridMode,
    OperationState,
    SystemState,
    UnknownBatteryError,
)
from custom_components.battery_bridge.const import (
    CONF_BACKEND,
    CONF_BATTERY_ID,
    CONF_CAN_WRITE,
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_ENVIRONMENT,
    CONF_ESS_ID,
    DOMAIN,
    SUBENTRY_BATTERY,
)

UPDATED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

FLEX_ID_1 = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
FLEX_ID_2 = "0f1e2d3c4b5a69788796a5b4c3d2e1f012345678"
ENODE_ID_1 = "54d827e1-8355-4fed-97b5-55940d1d09ba"
ENODE_ID_2 = "8a1f0c3e-2b7d-4c59-9e61-3f2d7a9b1c44"
FEMS_ID = "ess0"

FEMS_PASSWORD = "owner-secret-password"  # noqa: S105 - test data
ENODE_CLIENT_ID = "enode-client-id-4711"
ENODE_CLIENT_SECRET = "enode-client-secret-0815"  # noqa: S105 - test data
ENODE_USER_ID = "4f6fecd0-bdae-49be-b6e8-ee442e1e3da9"

ENTRY_IDS = {
    BackendKind.FLEXCONNECT: "01JFLEXCONNECTENTRY0000000",
    BackendKind.FEMS: "01JFEMSENTRY00000000000000",
    BackendKind.ENODE: "01JENODEENTRY0000000000000",
}

# What each backend reports (the features its client sets); modes and bounds are added below.
FLEX_REPORTS = Capabilities(
    features=frozenset({Feature.STATE_OF_HEALTH, Feature.OPERATION_STATE, Feature.COMMAND_STATUS})
)
FEMS_REPORTS = Capabilities(
    features=frozenset(
        {
            Feature.MEASURES_POWER,
            Feature.STATE_OF_HEALTH,
            Feature.SYSTEM_STATE,
            Feature.ALLOWED_POWER,
            Feature.ENERGY_COUNTERS,
            Feature.SITE_METERS,
        }
    )
)
ENODE_REPORTS = Capabilities(
    features=frozenset(
        {
            Feature.MEASURES_POWER,
            Feature.CHARGE_STATUS,
            Feature.COMMAND_STATUS,
            Feature.REACHABILITY,
            Feature.RESERVE,
        }
    )
)


def flexconnect_snapshots() -> dict[str, BatterySnapshot]:
    """Two FlexConnect batteries: one in power mode (applied), one switching auto -> pcc."""
    capabilities = replace(
        FLEX_REPORTS,
        modes=(ControlMode.POWER, ControlMode.PCC, ControlMode.AUTO),
        setpoint_modes=frozenset({ControlMode.POWER, ControlMode.PCC}),
    )
    return {
        FLEX_ID_1: BatterySnapshot(
            info=BatteryInfo(
                battery_id=FLEX_ID_1,
                name="Garage battery",
                manufacturer="FlexHome",
                model="FlexConnect",
                serial_number="FH-0001",
                sw_version="1.4.2",
            ),
            state=BatteryState(
                state_of_charge=56.0,
                state_of_health=98.0,
                stored_energy_wh=5600.0,
                usable_capacity_wh=10000.0,
                operation_state=OperationState.NORMAL,
                last_updated=UPDATED,
            ),
            control=ControlStatus(
                current=ControlInstruction(mode=ControlMode.POWER, setpoint_w=-2000),
                desired=ControlInstruction(mode=ControlMode.POWER, setpoint_w=-2000),
                control_state=ControlState.POWER,
                command_status=CommandStatus.CONFIRMED,
            ),
            capabilities=capabilities,
            raw={"battery_state": {"soc": {"number": 56, "scale": 0}}},
        ),
        FLEX_ID_2: BatterySnapshot(
            info=BatteryInfo(battery_id=FLEX_ID_2, name="Cellar battery", manufacturer="FlexHome"),
            state=BatteryState(
                state_of_charge=12.5,
                state_of_health=91.0,
                stored_energy_wh=1250.0,
                usable_capacity_wh=10000.0,
                operation_state=OperationState.STANDBY,
            ),
            control=ControlStatus(
                current=ControlInstruction(mode=ControlMode.AUTO, setpoint_w=0),
                desired=ControlInstruction(mode=ControlMode.PCC, setpoint_w=500),
                control_state=ControlState.AUTO_CONTROLLED,
                command_status=CommandStatus.PENDING,
            ),
            capabilities=capabilities,
        ),
    }


def fems_snapshots(*, can_write: bool = True) -> dict[str, BatterySnapshot]:
    """One FEMS ESS; read-only without write access (no modes, no setpoint)."""
    capabilities = (
        replace(
            FEMS_REPORTS,
            modes=(ControlMode.AUTO, ControlMode.POWER),
            setpoint_modes=frozenset({ControlMode.POWER}),
            min_power_w=-5000,
            max_power_w=5000,
            command_timeout_s=60.0,
            charge_discharge_limits=True,
        )
        if can_write
        else FEMS_REPORTS
    )
    return {
        FEMS_ID: BatterySnapshot(
            info=BatteryInfo(
                battery_id=FEMS_ID,
                name="FEMS ess0",
                manufacturer="FENECON",
                model="FEMS Home 10",
                sw_version="2024.11.2",
            ),
            state=BatteryState(
                state_of_charge=72.0,
                state_of_health=100.0,
                stored_energy_wh=6336.0,
                usable_capacity_wh=8800.0,
                power_w=1200.0,
                system_state=SystemState.OK,
                grid_mode=GridMode.ON_GRID,
                max_charge_power_w=5000.0,
                max_discharge_power_w=5000.0,
                grid_power_w=-300.0,
                pv_power_w=2500.0,
                house_power_w=3400.0,
                energy_charged_wh=1234567.0,
                energy_discharged_wh=1100000.0,
                grid_import_energy_wh=2200000.0,
                grid_export_energy_wh=5400000.0,
                pv_energy_wh=9800000.0,
            ),
            control=ControlStatus(current=ControlInstruction(setpoint_w=1200)),
            capabilities=capabilities,
            raw={"_sum/EssSoc": 72, "ess0/DebugSetActivePower": 1200},
        )
    }


def enode_snapshots() -> dict[str, BatterySnapshot]:
    """Two Enode batteries: a Powerwall (confirmed), an Enphase with a pending action."""
    raw_location = {
        "id": "8d90101b-3f2f-462a-bbb4-1ed320d33bbe",
        "longitude": 10.7197486,
        "latitude": 59.9173985,
    }
    return {
        ENODE_ID_1: BatterySnapshot(
            info=BatteryInfo(
                battery_id=ENODE_ID_1,
                name="Powerwall Home",
                manufacturer="Tesla",
                model="Powerwall",
            ),
            state=BatteryState(
                state_of_charge=80.0,
                stored_energy_wh=10800.0,
                usable_capacity_wh=13500.0,
                power_w=-4600.0,
                charge_status=ChargeStatus.CHARGING,
                reserve_pct=20.0,
                reachable=True,
            ),
            control=ControlStatus(
                current=ControlInstruction(mode=ControlMode.IMPORT_FOCUS),
                command_status=CommandStatus.CONFIRMED,
                command_id="4eaeb363-296d-4ccc-a973-7805e6f400bd",
            ),
            capabilities=replace(
                ENODE_REPORTS,
                modes=(ControlMode.IMPORT_FOCUS, ControlMode.EXPORT_FOCUS, ControlMode.TIME_OF_USE),
            ),
            raw={
                "battery": {
                    "id": ENODE_ID_1,
                    "userId": ENODE_USER_ID,
                    "vendor": "TESLA",
                    "location": raw_location,
                },
                "action": {"id": "4eaeb363-296d-4ccc-a973-7805e6f400bd", "userId": ENODE_USER_ID},
            },
        ),
        ENODE_ID_2: BatterySnapshot(
            info=BatteryInfo(
                battery_id=ENODE_ID_2, name="Enphase IQ", manufacturer="Enphase", model="IQ 5P"
            ),
            state=BatteryState(
                state_of_charge=35.0,
                stored_energy_wh=1750.0,
                usable_capacity_wh=5000.0,
                power_w=0.0,
                charge_status=ChargeStatus.IDLE,
                reserve_pct=10.0,
                reachable=False,
            ),
            control=ControlStatus(
                current=ControlInstruction(mode=ControlMode.SELF_RELIANCE),
                desired=ControlInstruction(mode=ControlMode.EXPORT_FOCUS),
                command_status=CommandStatus.PENDING,
            ),
            capabilities=replace(
                ENODE_REPORTS,
                modes=(
                    ControlMode.SELF_RELIANCE,
                    ControlMode.TIME_OF_USE,
                    ControlMode.IMPORT_FOCUS,
                    ControlMode.EXPORT_FOCUS,
                ),
            ),
            raw={"battery": {"id": ENODE_ID_2, "userId": ENODE_USER_ID, "location": raw_location}},
        ),
    }


class FakeBackend:
    """A Backend for tests: snapshots tests can change, errors to inject, every write recorded.

    ``async_apply`` records the command; for backends that report what was requested
    (FlexConnect, Enode) it also sets ``control.desired`` and a PENDING command status.
    """

    kind: ClassVar[BackendKind]

    def __init__(self, kind: BackendKind, snapshots: dict[str, BatterySnapshot]) -> None:
        self.kind = kind  # type: ignore[misc]
        self.snapshots = snapshots
        self.applied: list[tuple[str, ControlCommand]] = []
        self.snapshot_calls = 0
        self.get_error: BackendError | None = None
        self.apply_error: BackendError | None = None

    async def async_validate(self) -> None:
        if self.get_error is not None:
            raise self.get_error

    async def async_list_batteries(self) -> list[BatteryInfo]:
        return [snapshot.info for snapshot in self.snapshots.values()]

    async def async_get_snapshot(self, battery_id: str) -> BatterySnapshot:
        self.snapshot_calls += 1
        if self.get_error is not None:
            raise self.get_error
        if battery_id not in self.snapshots:
            raise UnknownBatteryError(battery_id)
        return self.snapshots[battery_id]

    async def async_apply(self, battery_id: str, command: ControlCommand) -> None:
        self.applied.append((battery_id, command))
        if self.apply_error is not None:
            raise self.apply_error
        if self.kind is not BackendKind.FEMS:
            snapshot = self.snapshots[battery_id]
            self.snapshots[battery_id] = replace(
                snapshot,
                control=replace(
                    snapshot.control,
                    desired=ControlInstruction(mode=command.mode, setpoint_w=command.setpoint_w),
                    command_status=CommandStatus.PENDING,
                ),
            )

    def set_state(self, battery_id: str, **changes: Any) -> None:
        """Change measurements of a battery (seen at the next poll)."""
        snapshot = self.snapshots[battery_id]
        self.snapshots[battery_id] = replace(snapshot, state=replace(snapshot.state, **changes))

    def set_control(self, battery_id: str, **changes: Any) -> None:
        """Change the control status of a battery (seen at the next poll)."""
        snapshot = self.snapshots[battery_id]
        self.snapshots[battery_id] = replace(snapshot, control=replace(snapshot.control, **changes))


ENTRY_DATA: dict[BackendKind, dict[str, Any]] = {
    BackendKind.FLEXCONNECT: {
        CONF_BACKEND: BackendKind.FLEXCONNECT.value,
        CONF_HOST: "192.168.1.20",
        CONF_PORT: 8080,
    },
    BackendKind.FEMS: {
        CONF_BACKEND: BackendKind.FEMS.value,
        CONF_HOST: "192.168.1.30",
        CONF_PORT: 80,
        CONF_PASSWORD: FEMS_PASSWORD,
        CONF_ESS_ID: FEMS_ID,
        CONF_CAN_WRITE: True,
    },
    BackendKind.ENODE: {
        CONF_BACKEND: BackendKind.ENODE.value,
        CONF_CLIENT_ID: ENODE_CLIENT_ID,
        CONF_CLIENT_SECRET: ENODE_CLIENT_SECRET,
        CONF_ENVIRONMENT: "sandbox",
    },
}

SNAPSHOTS = {
    BackendKind.FLEXCONNECT: flexconnect_snapshots,
    BackendKind.FEMS: fems_snapshots,
    BackendKind.ENODE: enode_snapshots,
}


@pytest.fixture
def backend_kind() -> BackendKind:
    """The backend of the entry under test (parametrize ``backend_kind`` to change it)."""
    return BackendKind.FEMS


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """The options of the entry under test (parametrize ``entry_options`` to change them)."""
    return {}


@pytest.fixture
def fake_snapshots(backend_kind: BackendKind) -> dict[str, BatterySnapshot]:
    """The snapshots the fake backend serves (override to serve others)."""
    return SNAPSHOTS[backend_kind]()


@pytest.fixture
def mock_backend(
    backend_kind: BackendKind, fake_snapshots: dict[str, BatterySnapshot]
) -> Generator[FakeBackend]:
    """A FakeBackend that ``create_backend`` returns, wherever it is imported."""
    backend = FakeBackend(backend_kind, dict(fake_snapshots))  # tests mutate their copy
    with (
        patch("custom_components.battery_bridge.backends.create_backend", return_value=backend),
        patch("custom_components.battery_bridge.create_backend", return_value=backend),
    ):
        yield backend


@pytest.fixture
def mock_config_entry(
    backend_kind: BackendKind,
    fake_snapshots: dict[str, BatterySnapshot],
    entry_options: dict[str, Any],
) -> MockConfigEntry:
    """An entry of the backend under test with one battery subentry per fake battery."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"{backend_kind} test",
        entry_id=ENTRY_IDS[backend_kind],
        unique_id=f"{backend_kind}-unique",
        data=ENTRY_DATA[backend_kind],
        options=entry_options,
        subentries_data=[
            {
                "data": {CONF_BATTERY_ID: battery_id},
                "subentry_id": f"sub_{index}",
                "subentry_type": SUBENTRY_BATTERY,
                "title": snapshot.info.name,
                "unique_id": battery_id,
            }
            for index, (battery_id, snapshot) in enumerate(fake_snapshots.items(), start=1)
        ],
    )


@pytest.fixture
def platforms() -> list[Platform]:
    """The platforms to set up (parametrize ``platforms`` to limit them)."""
    return PLATFORMS


@pytest.fixture
async def init_integration(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_backend: FakeBackend,
    platforms: list[Platform],
) -> AsyncGenerator[MockConfigEntry]:
    """Set up the entry under test; unload it afterwards so no timer lingers."""
    mock_config_entry.add_to_hass(hass)
    with patch("custom_components.battery_bridge.PLATFORMS", platforms):
        assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
        await hass.async_block_till_done()
        yield mock_config_entry
        if hass.config_entries.async_get_entry(mock_config_entry.entry_id) is not None:
            await hass.config_entries.async_unload(mock_config_entry.entry_id)
            await hass.async_block_till_done()


@pytest.fixture
def entity_registry_enabled_by_default() -> Generator[None]:
    """Enable entities that are disabled by default."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Use Home Assistant's snapshot extension (registry entries, states; files in snapshots/).

    pytest-homeassistant-custom-component defines this fixture too, but syrupy's own plugin can
    win the registration order, so it is pinned here.
    """
    return snapshot.use_extension(HomeAssistantSnapshotExtension)
