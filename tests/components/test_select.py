"""Tests of the select platform (control mode, operation mode)."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.select import (
    ATTR_OPTION,
    ATTR_OPTIONS,
    DOMAIN as SELECT_DOMAIN,
    SERVICE_SELECT_OPTION,
)
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON, STATE_UNKNOWN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.battery_bridge.api import (
    BackendKind,
    BatterySnapshot,
    CommandStatus,
    ControlCommand,
    ControlInstruction,
    ControlMode,
    ControlStatus,
)
from custom_components.battery_bridge.select import ATTR_COMMAND_STATE, ATTR_REQUESTED_OPTION

from .conftest import (
    ENODE_ID_1,
    ENODE_ID_2,
    FEMS_ID,
    FLEX_ID_2,
    FakeBackend,
    enode_snapshots,
    fems_snapshots,
)

pytestmark = pytest.mark.parametrize("platforms", [[Platform.SELECT]])

FEMS_MODE = "select.fems_ess0_control_mode"


async def _select(hass: HomeAssistant, entity_id: str, option: str) -> None:
    await hass.services.async_call(
        SELECT_DOMAIN,
        SERVICE_SELECT_OPTION,
        {ATTR_ENTITY_ID: entity_id, ATTR_OPTION: option},
        blocking=True,
    )


@pytest.mark.parametrize("backend_kind", list(BackendKind))
async def test_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    init_integration: MockConfigEntry,
) -> None:
    """Control mode (FlexConnect, FEMS) and operation mode (Enode) with the battery's modes."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize("fake_snapshots", [fems_snapshots(can_write=False)])
async def test_no_select_for_read_only_fems(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """A FEMS entry without write access gets no mode select."""
    assert not er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_mode(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A FEMS is in auto until asked; power starts at 0 W (hold), not at the power the FEMS's own
    control applies right now (1200 W here); auto releases."""
    state = hass.states.get(FEMS_MODE)
    assert state.state == "auto"
    assert state.attributes[ATTR_OPTIONS] == ["auto", "power"]

    await _select(hass, FEMS_MODE, "power")
    assert hass.states.get(FEMS_MODE).state == "power"
    await _select(hass, FEMS_MODE, "auto")
    assert hass.states.get(FEMS_MODE).state == "auto"
    assert mock_backend.applied == [
        (FEMS_ID, ControlCommand(mode=ControlMode.POWER, setpoint_w=0)),
        (FEMS_ID, ControlCommand(mode=ControlMode.AUTO)),
    ]


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_invalid_option(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """An option the battery does not offer is refused; nothing is written."""
    with pytest.raises(ServiceValidationError):
        await _select(hass, FEMS_MODE, "pcc")
    assert mock_backend.applied == []


def _enode_unknown_mode() -> dict[str, BatterySnapshot]:
    snapshots = enode_snapshots()
    snapshot = snapshots[ENODE_ID_1]
    snapshots[ENODE_ID_1] = BatterySnapshot(
        info=snapshot.info,
        state=snapshot.state,
        control=ControlStatus(current=ControlInstruction(mode=ControlMode.UNKNOWN)),
        capabilities=snapshot.capabilities,
    )
    return snapshots


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
@pytest.mark.parametrize("fake_snapshots", [_enode_unknown_mode()])
async def test_enode_unknown_mode(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Enode's UNKNOWN operation mode is no option: the select's state is unknown."""
    state = hass.states.get("select.powerwall_home_operation_mode")
    assert state.state == STATE_UNKNOWN
    assert "unknown" not in state.attributes[ATTR_OPTIONS]
    await _select(hass, POWERWALL_MODE, "export_focus")
    assert mock_backend.applied == [(ENODE_ID_1, ControlCommand(mode=ControlMode.EXPORT_FOCUS))]


POWERWALL_MODE = "select.powerwall_home_operation_mode"
ENPHASE_MODE = "select.enphase_iq_operation_mode"


async def _poll(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float = 60) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


def _shown(hass: HomeAssistant, entity_id: str) -> tuple[str, str | None, str | None]:
    state = hass.states.get(entity_id)
    assert state is not None
    attributes = state.attributes
    return state.state, attributes.get(ATTR_REQUESTED_OPTION), attributes.get(ATTR_COMMAND_STATE)


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_enode_pending_then_confirmed(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """While the Action is pending the select keeps the confirmed mode and shows the request."""
    assert _shown(hass, ENPHASE_MODE) == ("self_reliance", "export_focus", "pending")
    assert _shown(hass, POWERWALL_MODE) == ("import_focus", None, "confirmed")
    changed = hass.states.get(POWERWALL_MODE).last_changed

    await _select(hass, POWERWALL_MODE, "time_of_use")
    assert mock_backend.applied == [(ENODE_ID_1, ControlCommand(mode=ControlMode.TIME_OF_USE))]
    assert _shown(hass, POWERWALL_MODE) == ("import_focus", "time_of_use", "pending")
    await _poll(hass, freezer)  # still pending: nothing moves
    assert _shown(hass, POWERWALL_MODE) == ("import_focus", "time_of_use", "pending")
    assert hass.states.get(POWERWALL_MODE).last_changed == changed

    mock_backend.set_control(
        ENODE_ID_1,
        current=ControlInstruction(mode=ControlMode.TIME_OF_USE),
        desired=None,
        command_status=CommandStatus.CONFIRMED,
    )
    await _poll(hass, freezer)
    assert _shown(hass, POWERWALL_MODE) == ("time_of_use", None, "confirmed")
    assert hass.states.get(POWERWALL_MODE).last_changed > changed


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
@pytest.mark.parametrize("status", [CommandStatus.FAILED, CommandStatus.CANCELLED])
async def test_enode_failed_or_cancelled(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    status: CommandStatus,
) -> None:
    """A failed or cancelled Action leaves the confirmed mode; the request is no longer shown."""
    changed = hass.states.get(ENPHASE_MODE).last_changed
    mock_backend.set_control(ENODE_ID_2, desired=None, command_status=status)
    await _poll(hass, freezer)
    assert _shown(hass, ENPHASE_MODE) == ("self_reliance", None, status.value)
    assert hass.states.get(ENPHASE_MODE).last_changed == changed


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_enode_consistent_with_command_status(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    mock_config_entry: MockConfigEntry,
    platforms: list[Platform],
) -> None:
    """The select's command state is the Command status sensor's state, pending the binary sensor."""
    mock_config_entry.add_to_hass(hass)
    with_status = [*platforms, Platform.SENSOR, Platform.BINARY_SENSOR]
    with patch("custom_components.battery_bridge.PLATFORMS", with_status):
        assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
        await hass.async_block_till_done()
        await _select(hass, POWERWALL_MODE, "export_focus")
        for name in ("powerwall_home", "enphase_iq"):
            command_state = hass.states.get(f"select.{name}_operation_mode").attributes[
                ATTR_COMMAND_STATE
            ]
            assert hass.states.get(f"sensor.{name}_command_status").state == command_state
            pending = hass.states.get(f"binary_sensor.{name}_command_pending").state
            assert pending == (STATE_ON if command_state == "pending" else STATE_OFF)
        assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_flexconnect_pending(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """FlexConnect: the applied mode is shown, the requested one while the device has not applied it."""
    cellar = "select.cellar_battery_control_mode"
    assert _shown(hass, cellar) == ("auto", "pcc", "pending")
    mock_backend.set_control(
        FLEX_ID_2,
        current=ControlInstruction(mode=ControlMode.PCC, setpoint_w=500),
        command_status=CommandStatus.CONFIRMED,
    )
    await _poll(hass, freezer, 15)
    assert _shown(hass, cellar) == ("pcc", None, "confirmed")


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_no_command_attributes(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A FEMS reports no command state: the select has no such attributes."""
    attributes = hass.states.get(FEMS_MODE).attributes
    assert ATTR_REQUESTED_OPTION not in attributes
    assert ATTR_COMMAND_STATE not in attributes


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_mode_after_timeout(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """When the FEMS client reports our power mode expired, the select shows auto."""
    await _select(hass, FEMS_MODE, "power")
    assert hass.states.get(FEMS_MODE).state == "power"
    mock_backend.set_control(FEMS_ID, desired=ControlInstruction(mode=ControlMode.AUTO))
    await _poll(hass, freezer, 10)
    assert hass.states.get(FEMS_MODE).state == "auto"
