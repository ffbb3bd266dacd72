"""Tests of the binary sensor platform."""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_OFF, STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.battery_bridge.api import BackendKind, ChargeStatus, CommandStatus

from .conftest import ENODE_ID_2, FLEX_ID_2, FakeBackend

pytestmark = pytest.mark.parametrize("platforms", [[Platform.BINARY_SENSOR]])


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT, BackendKind.ENODE])
async def test_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    init_integration: MockConfigEntry,
) -> None:
    """FlexConnect batteries get command pending; Enode also charging and reachable."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_binary_sensors(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """A FEMS reports neither a pending command nor reachability: only charging (from power)."""
    entries = er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)
    assert [entry.entity_id for entry in entries] == ["binary_sensor.fems_ess0_charging"]


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_command_pending_follows_device(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Command pending turns off once the device applied the command."""
    entity_id = "binary_sensor.cellar_battery_command_pending"
    assert hass.states.get(entity_id).state == STATE_ON
    mock_backend.set_control(FLEX_ID_2, command_status=CommandStatus.CONFIRMED)
    freezer.tick(timedelta(seconds=15))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(entity_id).state == STATE_OFF


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
@pytest.mark.parametrize(
    "status", [CommandStatus.CONFIRMED, CommandStatus.FAILED, CommandStatus.CANCELLED]
)
async def test_command_pending_enode_action(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    status: CommandStatus,
) -> None:
    """Command pending is on while the Enode Action is pending, off once it ended in any way."""
    entity_id = "binary_sensor.enphase_iq_command_pending"
    assert hass.states.get(entity_id).state == STATE_ON
    mock_backend.set_control(ENODE_ID_2, desired=None, command_status=status)
    freezer.tick(timedelta(seconds=60))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(entity_id).state == STATE_OFF


@pytest.mark.parametrize(
    ("backend_kind", "entity_id", "changes", "expected"),
    [
        # FEMS: from the measured power (+ = discharging); a few watts either way are rest.
        (BackendKind.FEMS, "binary_sensor.fems_ess0_charging", {"power_w": -1500.0}, STATE_ON),
        (BackendKind.FEMS, "binary_sensor.fems_ess0_charging", {"power_w": -10.0}, STATE_OFF),
        (BackendKind.FEMS, "binary_sensor.fems_ess0_charging", {"power_w": 800.0}, STATE_OFF),
        (BackendKind.FEMS, "binary_sensor.fems_ess0_charging", {"power_w": None}, "unknown"),
        # Enode: its reported charge status wins over the power.
        (
            BackendKind.ENODE,
            "binary_sensor.powerwall_home_charging",
            {"charge_status": ChargeStatus.CHARGING, "power_w": 0.0},
            STATE_ON,
        ),
        (
            BackendKind.ENODE,
            "binary_sensor.powerwall_home_charging",
            {"charge_status": ChargeStatus.IDLE, "power_w": -3000.0},
            STATE_OFF,
        ),
        (
            BackendKind.ENODE,
            "binary_sensor.powerwall_home_charging",
            {"charge_status": ChargeStatus.UNKNOWN, "power_w": -3000.0},
            STATE_ON,
        ),
    ],
)
async def test_charging(
    hass: HomeAssistant,
    *,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    entity_id: str,
    changes: dict[str, object],
    expected: str,
) -> None:
    """Charging (device class battery_charging) follows the charge status, else the power."""
    state = hass.states.get(entity_id)
    assert state is not None
    assert state.attributes["device_class"] == "battery_charging"
    battery_id = next(iter(mock_backend.snapshots))
    mock_backend.set_state(battery_id, **changes)
    freezer.tick(timedelta(seconds=60))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(entity_id).state == expected


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_no_charging_without_power(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """FlexConnect reports neither power nor a charge status: no charging sensor."""
    entities = er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)
    assert entities
    assert not [entry for entry in entities if entry.unique_id.endswith("_charging")]
