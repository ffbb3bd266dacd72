"""Tests of the sensor platform."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNKNOWN, EntityCategory, Platform
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.restore_state import async_get
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.battery_bridge.api import (
    BackendKind,
    BatterySnapshot,
    CommandStatus,
    ControlInstruction,
)
from custom_components.battery_bridge.const import DOMAIN
from custom_components.battery_bridge.sensor import COUNTER_RESET_ACCEPT_AFTER, SENSORS

from .conftest import (
    ENODE_ID_1,
    ENODE_ID_2,
    FEMS_ID,
    FLEX_ID_1,
    FLEX_REPORTS,
    FakeBackend,
    fems_snapshots,
)

pytestmark = pytest.mark.parametrize("platforms", [[Platform.SENSOR]])

FEMS_CHARGED = "sensor.fems_ess0_energy_charged"
FEMS_DISCHARGED = "sensor.fems_ess0_energy_discharged"


async def _poll(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize("backend_kind", list(BackendKind))
async def test_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    init_integration: MockConfigEntry,
) -> None:
    """Every backend gets the sensors for the fields it provides, and no others."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_allowed_power_disabled_by_default(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """The allowed charge/discharge power sensors exist but are disabled by default."""
    for key in ("maximum_charge_power", "maximum_discharge_power"):
        entry = entity_registry.async_get(f"sensor.fems_ess0_{key}")
        assert entry is not None
        assert entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert hass.states.get(f"sensor.fems_ess0_{key}") is None


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize(
    "fake_snapshots",
    [
        {
            FEMS_ID: replace(
                fems_snapshots()[FEMS_ID],
                capabilities=replace(
                    fems_snapshots()[FEMS_ID].capabilities, features=FLEX_REPORTS.features
                ),
            )
        }
    ],
)
async def test_entities_follow_features_not_backend(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """A FEMS whose client reported FlexConnect's features gets FlexConnect's sensors."""
    keys = {
        entry.unique_id.removeprefix(f"fems_{init_integration.entry_id}_{FEMS_ID}_")
        for entry in er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)
    }
    assert {"operation_state", "control_state", "command_status", "state_of_health"} <= keys
    assert not keys & {"battery_power", "grid_power", "system_state", "grid_mode", "pv_energy"}
    # No energy meters: the totals are derived from the stored energy.
    assert {"energy_charged", "energy_discharged"} <= keys


def test_every_sensor_key_once_per_battery(platforms: list[Platform]) -> None:
    """Sensors that share a key (metered or derived energy) never exist for the same battery."""
    assert platforms == [Platform.SENSOR]
    metered = fems_snapshots()[FEMS_ID]
    derived = replace(metered, capabilities=FLEX_REPORTS)
    for snapshot in (metered, derived):
        keys = [description.key for description in SENSORS if description.exists(snapshot)]
        assert len(keys) == len(set(keys))


FEMS_APPLIED = "sensor.fems_ess0_applied_setpoint"


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_applied_setpoint_disabled_by_default(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """The applied setpoint is a diagnostic sensor, disabled by default (it changes every poll)."""
    entry = entity_registry.async_get(FEMS_APPLIED)
    assert entry is not None
    assert entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert entry.entity_category is EntityCategory.DIAGNOSTIC
    assert hass.states.get(FEMS_APPLIED) is None


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_applied_setpoint_follows_device(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The applied setpoint shows what the FEMS applies now, poll by poll."""
    state = hass.states.get(FEMS_APPLIED)
    assert state.state == "1200"
    assert state.attributes["unit_of_measurement"] == "W"
    for applied in (-5000, -4818, -1986):
        mock_backend.set_control(FEMS_ID, current=ControlInstruction(setpoint_w=applied))
        await _poll(hass, freezer, 10)
        assert hass.states.get(FEMS_APPLIED).state == str(applied)
    mock_backend.set_control(FEMS_ID, current=None)
    await _poll(hass, freezer, 10)
    assert hass.states.get(FEMS_APPLIED).state == STATE_UNKNOWN


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize("fake_snapshots", [fems_snapshots(can_write=False)])
async def test_applied_setpoint_read_only(
    entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """A read-only FEMS reports its applied setpoint too."""
    assert entity_registry.async_get(FEMS_APPLIED) is not None


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_no_applied_setpoint_without_report(
    entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """Enode reports no setpoint: no applied setpoint sensor."""
    entries = er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)
    assert entries
    assert not [entry for entry in entries if entry.unique_id.endswith("_applied_setpoint")]


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_counter_reset_ignored(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Near-zero totals after a FEMS restart are ignored; a lasting reset is accepted."""
    assert hass.states.get(FEMS_CHARGED).state == "1234.567"
    assert hass.states.get(FEMS_DISCHARGED).state == "1100.0"

    # The FEMS restarted and reports near-zero totals: the last good values stay.
    mock_backend.set_state(FEMS_ID, energy_charged_wh=3.0, energy_discharged_wh=0.0)
    await _poll(hass, freezer, 10)
    assert hass.states.get(FEMS_CHARGED).state == "1234.567"
    assert hass.states.get(FEMS_DISCHARGED).state == "1100.0"

    # It is back with its real totals, which grew meanwhile.
    mock_backend.set_state(FEMS_ID, energy_charged_wh=1234600.0, energy_discharged_wh=1100050.0)
    await _poll(hass, freezer, 10)
    assert hass.states.get(FEMS_CHARGED).state == "1234.6"
    assert hass.states.get(FEMS_DISCHARGED).state == "1100.05"

    # A small dip (rounding) never goes backwards either.
    mock_backend.set_state(FEMS_ID, energy_charged_wh=1234595.0)
    await _poll(hass, freezer, 10)
    assert hass.states.get(FEMS_CHARGED).state == "1234.6"

    # A missing total is unknown, and does not reset what was learnt.
    mock_backend.set_state(FEMS_ID, energy_charged_wh=None)
    await _poll(hass, freezer, 10)
    assert hass.states.get(FEMS_CHARGED).state == STATE_UNKNOWN

    # A reset that lasts (a replaced meter) is accepted with the first new total after a while.
    mock_backend.set_state(FEMS_ID, energy_charged_wh=500.0)
    await _poll(hass, freezer, 10)
    assert hass.states.get(FEMS_CHARGED).state == "1234.6"
    mock_backend.set_state(FEMS_ID, energy_charged_wh=510.0)
    await _poll(hass, freezer, COUNTER_RESET_ACCEPT_AFTER.total_seconds() - 10)
    assert hass.states.get(FEMS_CHARGED).state == "1234.6"
    mock_backend.set_state(FEMS_ID, energy_charged_wh=520.0)
    await _poll(hass, freezer, 10)
    assert hass.states.get(FEMS_CHARGED).state == "0.52"
    mock_backend.set_state(FEMS_ID, energy_charged_wh=600.0)
    await _poll(hass, freezer, 10)
    assert hass.states.get(FEMS_CHARGED).state == "0.6"


def _restarted_fems() -> dict[str, BatterySnapshot]:
    snapshots = fems_snapshots()
    snapshot = snapshots[FEMS_ID]
    snapshots[FEMS_ID] = replace(
        snapshot, state=replace(snapshot.state, energy_charged_wh=2.0, energy_discharged_wh=None)
    )
    return snapshots


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize("fake_snapshots", [_restarted_fems()])
async def test_fems_counter_reset_ignored_across_restart(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    mock_config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    platforms: list[Platform],
) -> None:
    """Home Assistant and the FEMS restarted together: the total before the restart is kept."""
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(FEMS_CHARGED, "1234.567"),
                {"native_value": 1234567.0, "native_unit_of_measurement": "Wh"},
            ),
            (
                State(FEMS_DISCHARGED, "unknown"),
                {"native_value": None, "native_unit_of_measurement": "Wh"},
            ),
        ],
    )
    mock_config_entry.add_to_hass(hass)
    with patch("custom_components.battery_bridge.PLATFORMS", platforms):
        assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
        await hass.async_block_till_done()
        assert hass.states.get(FEMS_CHARGED).state == "1234.567"
        assert hass.states.get(FEMS_DISCHARGED).state == STATE_UNKNOWN
        # The raw total stays in the coordinator's data (diagnostics show what was received).
        coordinator = next(iter(mock_config_entry.runtime_data.batteries.values())).coordinator
        assert coordinator.data.state.energy_charged_wh == 2.0

        mock_backend.set_state(FEMS_ID, energy_charged_wh=1234570.0, energy_discharged_wh=5.0)
        await _poll(hass, freezer, 10)
        assert hass.states.get(FEMS_CHARGED).state == "1234.57"
        assert hass.states.get(FEMS_DISCHARGED).state == "0.005"
        assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
@pytest.mark.parametrize("status", [CommandStatus.FAILED, CommandStatus.CANCELLED])
async def test_command_status_failed_and_cancelled_shown(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    status: CommandStatus,
) -> None:
    """A failed or cancelled command is shown as such, not as an unknown or pending state."""
    assert hass.states.get("sensor.enphase_iq_command_status").state == "pending"
    mock_backend.set_control(ENODE_ID_2, command_status=status)
    mock_backend.set_control(ENODE_ID_1, command_status=status)
    await _poll(hass, freezer, 60)
    assert hass.states.get("sensor.enphase_iq_command_status").state == status.value
    assert hass.states.get("sensor.powerwall_home_command_status").state == status.value


# --- Energy totals derived from the stored energy (FlexConnect, Enode) ----------------------------


def _entity(hass: HomeAssistant, unique_id: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, unique_id)
    assert entity_id is not None
    return entity_id


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_derived_energy_totals(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """FlexConnect has no energy meter: the totals follow the stored energy."""
    charged = _entity(hass, f"flexconnect_{FLEX_ID_1}_energy_charged")
    discharged = _entity(hass, f"flexconnect_{FLEX_ID_1}_energy_discharged")
    assert hass.states.get(charged).state == "0.0"
    assert hass.states.get(charged).attributes["state_class"] == "total_increasing"

    mock_backend.set_state(FLEX_ID_1, stored_energy_wh=6100.0)  # from 5600 Wh
    await _poll(hass, freezer, 15)
    mock_backend.set_state(FLEX_ID_1, stored_energy_wh=5900.0)
    await _poll(hass, freezer, 15)
    assert float(hass.states.get(charged).state) == 0.5  # kWh
    assert float(hass.states.get(discharged).state) == 0.2


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_derived_energy_totals_across_restart(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    mock_config_entry: MockConfigEntry,
    platforms: list[Platform],
) -> None:
    """The count continues after a restart; the change while Home Assistant was off counts once."""
    charged = "sensor.powerwall_home_energy_charged"
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(charged, "2.0"),
                {"total_wh": 2000.0, "stored_wh": 10000.0, "capacity_wh": 13500.0},
            )
        ],
    )
    mock_config_entry.add_to_hass(hass)
    with patch("custom_components.battery_bridge.PLATFORMS", platforms):
        assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
        await hass.async_block_till_done()
        # The Powerwall stores 10800 Wh now: 800 Wh came in while Home Assistant was off.
        assert hass.states.get(charged).state == "2.8"
        stored = {s.state.entity_id: s for s in async_get(hass).async_get_stored_states()}
        assert stored[charged].extra_data.as_dict() == {  # what the next restart continues from
            "total_wh": 2800.0,
            "stored_wh": 10800.0,
            "capacity_wh": 13500.0,
        }
        assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
