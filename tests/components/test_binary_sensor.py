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

from custom_components.battery_bridge.api import BackendKind, CommandStatus

from .conftest import ENODE_ID_2, FLEX_ID_2, FakeBackend

pytestmark = pytest.mark.parametrize("platforms", [[Platform.BINARY_SENSOR]])


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT, BackendKind.ENODE])
async def test_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    init_integration: MockConfigEntry,
) -> None:
    """FlexConnect and Enode batteries get command pending (Enode also reachable)."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_no_binary_sensors_for_fems(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """A FEMS reports neither a pending command nor reachability: no binary sensors."""
    assert not er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)


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
