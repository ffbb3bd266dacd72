"""Tests of the select platform (control mode, operation mode)."""

from __future__ import annotations

from homeassistant.components.select import (
    ATTR_OPTION,
    ATTR_OPTIONS,
    DOMAIN as SELECT_DOMAIN,
    SERVICE_SELECT_OPTION,
)
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNKNOWN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.battery_bridge.api import (
    BackendKind,
    BatterySnapshot,
    ControlCommand,
    ControlInstruction,
    ControlMode,
    ControlStatus,
)

from .conftest import ENODE_ID_1, FEMS_ID, FakeBackend, enode_snapshots, fems_snapshots

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
    await _select(hass, "select.powerwall_home_operation_mode", "export_focus")
    assert mock_backend.applied == [(ENODE_ID_1, ControlCommand(mode=ControlMode.EXPORT_FOCUS))]


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_enode_shows_reported_mode_while_pending(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """While an Enode action is pending the select shows the mode the battery reports."""
    assert hass.states.get("select.enphase_iq_operation_mode").state == "self_reliance"
    await _select(hass, "select.powerwall_home_operation_mode", "time_of_use")
    assert hass.states.get("select.powerwall_home_operation_mode").state == "import_focus"
