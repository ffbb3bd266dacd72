"""Tests of the number platform (power setpoint, charge / discharge power limits)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.number import (
    ATTR_MAX,
    ATTR_MIN,
    ATTR_STEP,
    ATTR_VALUE,
    DOMAIN as NUMBER_DOMAIN,
    SERVICE_SET_VALUE,
)
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNKNOWN, Platform
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

from .conftest import FEMS_ID, FLEX_ID_1, FakeBackend, fems_snapshots, flexconnect_snapshots

pytestmark = pytest.mark.parametrize("platforms", [[Platform.NUMBER]])

FEMS_SETPOINT = "number.fems_ess0_power_setpoint"
FLEX_SETPOINT = "number.garage_battery_power_setpoint"
FLEX_CELLAR_SETPOINT = "number.cellar_battery_power_setpoint"


async def _poll(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


async def _set(hass: HomeAssistant, entity_id: str, value: float) -> None:
    await hass.services.async_call(
        NUMBER_DOMAIN,
        SERVICE_SET_VALUE,
        {ATTR_ENTITY_ID: entity_id, ATTR_VALUE: value},
        blocking=True,
    )


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT, BackendKind.FEMS])
async def test_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    init_integration: MockConfigEntry,
) -> None:
    """Batteries that take a setpoint get a power setpoint number."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_no_number_for_enode(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """Enode operation modes take no setpoint: no number entity."""
    assert not er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)
    assert hass.states.async_entity_ids(NUMBER_DOMAIN) == []


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize("fake_snapshots", [fems_snapshots(can_write=False)])
async def test_no_number_for_read_only_fems(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """A FEMS entry without write access gets no setpoint."""
    assert not er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_fallback_bounds(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Without reported limits (FlexConnect) the setpoint is bounded by +-10 kW."""
    state = hass.states.get(FLEX_SETPOINT)
    assert state is not None
    assert state.attributes[ATTR_MIN] == -10000
    assert state.attributes[ATTR_MAX] == 10000
    assert state.state == "-2000"


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_set_value(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Setting the number asks the controller for a setpoint (FEMS: mode power)."""
    state = hass.states.get(FEMS_SETPOINT)
    assert state is not None
    assert state.attributes[ATTR_MIN] == -5000
    assert state.attributes[ATTR_MAX] == 5000
    # In auto nothing is commanded: unknown, not the 1200 W the FEMS's own control applies.
    assert state.state == STATE_UNKNOWN

    await _set(hass, FEMS_SETPOINT, -2500)
    assert mock_backend.applied == [
        (FEMS_ID, ControlCommand(mode=ControlMode.POWER, setpoint_w=-2500))
    ]
    assert hass.states.get(FEMS_SETPOINT).state == "-2500"


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_set_value_out_of_range(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A value outside the battery's limits is refused before anything is written."""
    with pytest.raises(ServiceValidationError):
        await _set(hass, FEMS_SETPOINT, 6000)
    assert mock_backend.applied == []


def _flex_without_desired() -> dict[str, BatterySnapshot]:
    snapshots = flexconnect_snapshots()
    snapshot = snapshots[FLEX_ID_1]
    snapshots[FLEX_ID_1] = replace(
        snapshot, control=replace(snapshot.control, desired=None, command_status=None)
    )
    return snapshots


def _without_readback() -> dict[str, BatterySnapshot]:
    snapshots = fems_snapshots()
    snapshots[FEMS_ID] = BatterySnapshot(
        info=snapshots[FEMS_ID].info,
        state=snapshots[FEMS_ID].state,
        control=ControlStatus(),
        capabilities=snapshots[FEMS_ID].capabilities,
    )
    return snapshots


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize("fake_snapshots", [_without_readback()])
async def test_value_without_readback(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Without anything reported the number shows what was written, unknown before that."""
    assert hass.states.get(FEMS_SETPOINT).state == STATE_UNKNOWN
    await _set(hass, FEMS_SETPOINT, 1500)
    assert hass.states.get(FEMS_SETPOINT).state == "1500"


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_flexconnect_shows_commanded_setpoint(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """FlexConnect: the number shows the desired setpoint, pending or applied, not the current one."""
    # Cellar: auto (current, 0 W) -> pcc at 500 W pending: the requested 500 W is shown.
    assert hass.states.get(FLEX_CELLAR_SETPOINT).state == "500"
    await _set(hass, FLEX_SETPOINT, 3000)
    assert mock_backend.applied == [
        (FLEX_ID_1, ControlCommand(mode=ControlMode.POWER, setpoint_w=3000))
    ]
    # Pending (the device still applies -2000 W): the commanded setpoint is shown.
    assert hass.states.get(FLEX_SETPOINT).state == "3000"
    changed = hass.states.get(FLEX_SETPOINT).last_changed
    # Applied: nothing changes.
    applied = ControlInstruction(mode=ControlMode.POWER, setpoint_w=3000)
    mock_backend.set_control(FLEX_ID_1, current=applied, command_status=CommandStatus.CONFIRMED)
    await _poll(hass, freezer, 15)
    state = hass.states.get(FLEX_SETPOINT)
    assert (state.state, state.last_changed) == ("3000", changed)
    # Another app requests a new setpoint: that is what is in force now.
    mock_backend.set_control(FLEX_ID_1, desired=replace(applied, setpoint_w=-700))
    await _poll(hass, freezer, 15)
    assert hass.states.get(FLEX_SETPOINT).state == "-700"


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
@pytest.mark.parametrize("fake_snapshots", [_flex_without_desired()])
async def test_flexconnect_current_instruction_is_a_command(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Without a desired instruction the current one (a command too) is shown."""
    assert hass.states.get(FLEX_SETPOINT).state == "-2000"


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_flexconnect_mode_without_setpoint(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """In a mode that takes no setpoint (auto here) the number is unknown."""
    auto = ControlInstruction(mode=ControlMode.AUTO, setpoint_w=0)
    mock_backend.set_control(FLEX_ID_1, current=auto, desired=auto)
    await _poll(hass, freezer, 15)
    assert hass.states.get(FLEX_SETPOINT).state == STATE_UNKNOWN


DRIFT = (-5000, -4818, -1986, -1970, 1234)


async def _drift(
    hass: HomeAssistant, mock_backend: FakeBackend, freezer: FrozenDateTimeFactory
) -> None:
    """Poll a FEMS whose applied setpoint (DebugSetActivePower) changes at every poll."""
    for applied in DRIFT:
        mock_backend.set_control(FEMS_ID, current=ControlInstruction(setpoint_w=applied))
        mock_backend.set_state(FEMS_ID, power_w=float(applied))
        await _poll(hass, freezer, 10)
        assert mock_backend.snapshots[FEMS_ID].control.current.setpoint_w == applied


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_auto_does_not_follow_applied_power(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """In auto the number stays unknown while the applied power drifts: no state change."""
    before = hass.states.get(FEMS_SETPOINT)
    calls = mock_backend.snapshot_calls
    await _drift(hass, mock_backend, freezer)
    assert mock_backend.snapshot_calls == calls + len(DRIFT)
    after = hass.states.get(FEMS_SETPOINT)
    assert after.state == STATE_UNKNOWN
    assert after.last_changed == before.last_changed
    assert after.last_updated == before.last_updated  # no attribute changed either


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_power_shows_commanded_setpoint(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """In power mode the number shows our setpoint, constant while the applied power drifts."""
    await _set(hass, FEMS_SETPOINT, -2000)
    before = hass.states.get(FEMS_SETPOINT)
    assert before.state == "-2000"
    await _drift(hass, mock_backend, freezer)
    after = hass.states.get(FEMS_SETPOINT)
    assert after.state == "-2000"
    assert after.last_changed == before.last_changed
    assert after.last_updated == before.last_updated


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_setpoint_rounded_to_step(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A setpoint off the number's step (from an action) is written as is, shown on the step."""
    assert hass.states.get(FEMS_SETPOINT).attributes[ATTR_STEP] == 50
    await _set(hass, FEMS_SETPOINT, -1234)
    assert mock_backend.applied[-1] == (
        FEMS_ID,
        ControlCommand(mode=ControlMode.POWER, setpoint_w=-1234),
    )
    assert hass.states.get(FEMS_SETPOINT).state == "-1250"


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_setpoint_dropped_by_timeout(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """When the FEMS client reports our setpoint expired (auto), the number shows unknown."""
    await _set(hass, FEMS_SETPOINT, 1500)
    assert hass.states.get(FEMS_SETPOINT).state == "1500"
    mock_backend.set_control(FEMS_ID, desired=ControlInstruction(mode=ControlMode.AUTO))
    await _poll(hass, freezer, 10)
    assert hass.states.get(FEMS_SETPOINT).state == STATE_UNKNOWN


FEMS_CHARGE_LIMIT = "number.fems_ess0_charge_limit"
FEMS_DISCHARGE_LIMIT = "number.fems_ess0_discharge_limit"


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_limits_set_and_release(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """The limits show the maximum while none is set; a value sets one; the maximum releases it."""
    for entity_id in (FEMS_CHARGE_LIMIT, FEMS_DISCHARGE_LIMIT):
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.attributes[ATTR_MIN] == 0
        assert state.attributes[ATTR_MAX] == 5000
        assert state.state == "5000"

    await _set(hass, FEMS_CHARGE_LIMIT, 1200)
    await _set(hass, FEMS_DISCHARGE_LIMIT, 0)
    assert hass.states.get(FEMS_CHARGE_LIMIT).state == "1200"
    assert hass.states.get(FEMS_DISCHARGE_LIMIT).state == "0"
    await _set(hass, FEMS_CHARGE_LIMIT, 5000)
    await _set(hass, FEMS_DISCHARGE_LIMIT, 5000)
    assert hass.states.get(FEMS_CHARGE_LIMIT).state == "5000"
    assert hass.states.get(FEMS_DISCHARGE_LIMIT).state == "5000"
    auto = ControlMode.AUTO
    assert [command for _, command in mock_backend.applied] == [
        ControlCommand(mode=auto, charge_limit_w=1200),
        ControlCommand(mode=auto, charge_limit_w=1200, discharge_limit_w=0),
        ControlCommand(mode=auto, discharge_limit_w=0),
        ControlCommand(mode=auto),
    ]


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_limit_out_of_range(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A limit above the battery's largest power is refused before anything is written."""
    with pytest.raises(ServiceValidationError):
        await _set(hass, FEMS_CHARGE_LIMIT, 6000)
    assert mock_backend.applied == []


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_no_limits_without_capability(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Batteries without power limits get no limit numbers."""
    assert hass.states.async_entity_ids(NUMBER_DOMAIN) == [
        FLEX_SETPOINT,
        "number.cellar_battery_power_setpoint",
    ]
