"""Tests of the battery controller: composing commands, errors, serialised writes, keepalive."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
import logging

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.number import ATTR_VALUE, DOMAIN as NUMBER_DOMAIN, SERVICE_SET_VALUE
from homeassistant.components.select import (
    ATTR_OPTION,
    DOMAIN as SELECT_DOMAIN,
    SERVICE_SELECT_OPTION,
)
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import ATTR_ENTITY_ID, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.battery_bridge.api import (
    AuthError,
    BackendError,
    BackendKind,
    CannotConnectError,
    Capabilities,
    CommandRejectedError,
    ControlCommand,
    ControlMode,
    NotSupportedError,
    OverrideMode,
    ProtocolError,
)
from custom_components.battery_bridge.const import CONF_KEEPALIVE_INTERVAL
from custom_components.battery_bridge.control import BatteryController
from custom_components.battery_bridge.keepalive import retry_delay

from .conftest import ENODE_ID_1, FEMS_ID, FLEX_ID_1, FLEX_ID_2, FakeBackend

FEMS_SETPOINT = "number.fems_ess0_power_setpoint"
FEMS_MODE = "select.fems_ess0_control_mode"

POWER_2000 = (FEMS_ID, ControlCommand(mode=ControlMode.POWER, setpoint_w=2000))


def _controller(entry: MockConfigEntry, battery_index: int = 0) -> BatteryController:
    return list(entry.runtime_data.batteries.values())[battery_index].controller


async def _set_power(hass: HomeAssistant, entity_id: str, value: float) -> None:
    await hass.services.async_call(
        NUMBER_DOMAIN,
        SERVICE_SET_VALUE,
        {ATTR_ENTITY_ID: entity_id, ATTR_VALUE: value},
        blocking=True,
    )


async def _select(hass: HomeAssistant, entity_id: str, option: str) -> None:
    await hass.services.async_call(
        SELECT_DOMAIN,
        SERVICE_SELECT_OPTION,
        {ATTR_ENTITY_ID: entity_id, ATTR_OPTION: option},
        blocking=True,
    )


async def _tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


# Composing commands


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_flexconnect_setpoint_keeps_mode(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """FlexConnect: a setpoint is written with the mode in force (requested, else reported)."""
    await _set_power(hass, "number.garage_battery_power_setpoint", -1500)
    # The cellar battery was asked for pcc (pending): the setpoint goes with pcc.
    await _set_power(hass, "number.cellar_battery_power_setpoint", 800)
    assert mock_backend.applied == [
        (FLEX_ID_1, ControlCommand(mode=ControlMode.POWER, setpoint_w=-1500)),
        (FLEX_ID_2, ControlCommand(mode=ControlMode.PCC, setpoint_w=800)),
    ]


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_flexconnect_mode_keeps_setpoint(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """FlexConnect: a mode change carries the setpoint in force, also to auto."""
    await _select(hass, "select.garage_battery_control_mode", "pcc")
    await _select(hass, "select.garage_battery_control_mode", "auto")
    # Auto, then a setpoint: the setpoint is stored with auto (applied when a power mode is chosen).
    await _set_power(hass, "number.garage_battery_power_setpoint", 1000)
    assert mock_backend.applied == [
        (FLEX_ID_1, ControlCommand(mode=ControlMode.PCC, setpoint_w=-2000)),
        (FLEX_ID_1, ControlCommand(mode=ControlMode.AUTO, setpoint_w=-2000)),
        (FLEX_ID_1, ControlCommand(mode=ControlMode.AUTO, setpoint_w=1000)),
    ]


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_own_intent_newer_than_poll(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A write that the latest poll cannot show yet is what the next command builds on."""
    controller = _controller(init_integration)
    # Pretend the refresh after the write has not happened (the poll started before the write).
    await controller.async_set_mode("pcc")
    controller.coordinator.fetch_started_at = None
    mock_backend.set_control(FLEX_ID_1, desired=None)
    assert controller.basis().mode is ControlMode.PCC
    assert controller.basis().setpoint_w == -2000


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_setpoint_with_no_mode_known(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Nothing known about the mode: the first setpoint mode the battery offers is used."""
    mock_backend.set_control(FLEX_ID_1, current=None, desired=None)
    controller = _controller(init_integration)
    await controller.coordinator.async_refresh()
    await controller.async_set_power(100)
    assert mock_backend.applied[-1] == (
        FLEX_ID_1,
        ControlCommand(mode=ControlMode.POWER, setpoint_w=100),
    )


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_setpoint_implies_power_and_auto_releases(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """FEMS: a setpoint means mode power; power keeps our setpoint; auto releases (no setpoint)."""
    await _set_power(hass, FEMS_SETPOINT, 2000.4)
    assert hass.states.get(FEMS_MODE).state == "power"
    await _select(hass, FEMS_MODE, "power")
    await _select(hass, FEMS_MODE, "auto")
    assert mock_backend.applied == [
        POWER_2000,
        POWER_2000,
        (FEMS_ID, ControlCommand(mode=ControlMode.AUTO)),
    ]
    assert hass.states.get(FEMS_MODE).state == "auto"


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_power_without_any_setpoint(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """FEMS: power mode with no setpoint known at all holds 0 W."""
    mock_backend.set_control(FEMS_ID, current=None)
    controller = _controller(init_integration)
    await controller.coordinator.async_refresh()
    await controller.async_set_mode("power")
    assert mock_backend.applied == [(FEMS_ID, ControlCommand(mode=ControlMode.POWER, setpoint_w=0))]
    controller.async_stop()


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_enode_mode(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Enode: an operation mode is written without a setpoint."""
    await _select(hass, "select.powerwall_home_operation_mode", "export_focus")
    assert mock_backend.applied == [(ENODE_ID_1, ControlCommand(mode=ControlMode.EXPORT_FOCUS))]


# Validation and errors


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize("watts", [-5001, 5001])
async def test_setpoint_out_of_range(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    watts: int,
) -> None:
    """The controller refuses a setpoint outside the battery's limits, translated."""
    with pytest.raises(ServiceValidationError) as excinfo:
        await _controller(init_integration).async_set_power(watts)
    assert excinfo.value.translation_key == "setpoint_out_of_range"
    assert excinfo.value.translation_placeholders == {
        "value": str(watts),
        "min": "-5000",
        "max": "5000",
    }
    assert mock_backend.applied == []


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_mode_not_offered(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """The controller refuses a mode the battery does not offer, translated."""
    with pytest.raises(ServiceValidationError) as excinfo:
        await _controller(init_integration).async_set_mode("pcc")
    assert excinfo.value.translation_key == "mode_not_supported"
    assert excinfo.value.translation_placeholders == {"mode": "pcc", "modes": "auto, power"}
    assert mock_backend.applied == []


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_setpoint_not_supported(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A battery without setpoint modes refuses a setpoint, translated."""
    with pytest.raises(ServiceValidationError) as excinfo:
        await _controller(init_integration).async_set_power(1000)
    assert excinfo.value.translation_key == "setpoint_not_supported"
    with pytest.raises(ServiceValidationError) as excinfo:
        await _controller(init_integration).async_set_mode("unknown")
    assert excinfo.value.translation_key == "mode_not_supported"
    assert mock_backend.applied == []


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize(
    ("error", "translation_key"),
    [
        (CommandRejectedError("read-only access"), "command_rejected"),
        (NotSupportedError("no such channel"), "command_not_supported"),
        (CannotConnectError("timed out"), "communication_error"),
        (ProtocolError("HTML instead of JSON"), "communication_error"),
    ],
)
async def test_backend_errors_translated(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    error: BackendError,
    translation_key: str,
) -> None:
    """A backend that refuses or cannot be reached raises a translated HomeAssistantError."""
    mock_backend.apply_error = error
    with pytest.raises(HomeAssistantError) as excinfo:
        await _set_power(hass, FEMS_SETPOINT, 1000)
    assert excinfo.value.translation_key == translation_key
    assert excinfo.value.translation_placeholders == {"battery": "FEMS ess0", "error": str(error)}
    assert str(error) in str(excinfo.value)
    # A failed write is no active intent: nothing is kept alive.
    assert _controller(init_integration).active is None
    assert not _controller(init_integration).keepalive_active


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_auth_error_on_write_starts_reauth(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Rejected credentials on a write raise a translated error and start re-authentication."""
    mock_backend.apply_error = AuthError("invalid client secret")
    with pytest.raises(HomeAssistantError) as excinfo:
        await _select(hass, "select.powerwall_home_operation_mode", "export_focus")
    assert excinfo.value.translation_key == "authentication_failed"
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress()
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert flows[0]["context"]["entry_id"] == init_integration.entry_id


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_writes_serialised(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Two writes to one battery never overlap."""
    running = 0
    overlaps = 0
    original = mock_backend.async_apply

    async def slow_apply(battery_id: str, command: ControlCommand) -> None:
        nonlocal running, overlaps
        running += 1
        overlaps += running > 1
        await asyncio.sleep(0.01)
        await original(battery_id, command)
        running -= 1

    mock_backend.async_apply = slow_apply  # type: ignore[method-assign]
    controller = _controller(init_integration)
    await asyncio.gather(
        controller.async_set_power(100),
        controller.async_set_power(200),
        controller.async_set_mode("auto"),
    )
    assert overlaps == 0
    assert len(mock_backend.applied) == 3


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_command_builds_on_previous_write(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Concurrent intents: each command is composed after the write before it."""
    controller = _controller(init_integration)
    await asyncio.gather(controller.async_set_mode("pcc"), controller.async_set_power(500))
    assert mock_backend.applied == [
        (FLEX_ID_1, ControlCommand(mode=ControlMode.PCC, setpoint_w=-2000)),
        (FLEX_ID_1, ControlCommand(mode=ControlMode.PCC, setpoint_w=500)),
    ]


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_write_refreshes(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """After a write the coordinator polls, so the UI follows at once."""
    calls = mock_backend.snapshot_calls
    assert hass.states.get("binary_sensor.garage_battery_command_pending") is not None
    await _select(hass, "select.garage_battery_control_mode", "pcc")
    await hass.async_block_till_done()
    assert mock_backend.snapshot_calls == calls + 1
    assert hass.states.get("binary_sensor.garage_battery_command_pending").state == "on"


# Keepalive


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_keepalive(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Nothing at start-up; a setpoint is rewritten every timeout / 2 until auto."""
    await _tick(hass, freezer, 300)
    assert mock_backend.applied == []
    controller = _controller(init_integration)
    assert controller.keepalive_interval() == timedelta(seconds=30)

    await _set_power(hass, FEMS_SETPOINT, 2000)
    assert mock_backend.applied == [POWER_2000]
    await _tick(hass, freezer, 29)
    assert len(mock_backend.applied) == 1
    await _tick(hass, freezer, 1)
    assert mock_backend.applied == [POWER_2000, POWER_2000]
    await _tick(hass, freezer, 30)
    assert mock_backend.applied == [POWER_2000] * 3

    # A new setpoint restarts the interval from now and is the one kept alive.
    await _tick(hass, freezer, 20)
    await _set_power(hass, FEMS_SETPOINT, -1000)
    await _tick(hass, freezer, 10)
    assert len(mock_backend.applied) == 4
    await _tick(hass, freezer, 20)
    assert mock_backend.applied[-1] == (
        FEMS_ID,
        ControlCommand(mode=ControlMode.POWER, setpoint_w=-1000),
    )
    assert len(mock_backend.applied) == 5

    await _select(hass, FEMS_MODE, "auto")
    assert mock_backend.applied[-1] == (FEMS_ID, ControlCommand(mode=ControlMode.AUTO))
    assert not controller.keepalive_active
    await _tick(hass, freezer, 120)
    assert len(mock_backend.applied) == 6


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_keepalive_starts_with_power_mode(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Selecting power mode starts the keepalive too (at 0 W until a setpoint is set)."""
    await _select(hass, FEMS_MODE, "power")
    await _tick(hass, freezer, 30)
    assert len(mock_backend.applied) == 2
    assert mock_backend.applied[-1] == (
        FEMS_ID,
        ControlCommand(mode=ControlMode.POWER, setpoint_w=0),
    )


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_power_mode_keeps_our_setpoint(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Re-selecting power keeps the setpoint we wrote; after auto it starts at 0 W again."""
    await _set_power(hass, FEMS_SETPOINT, -2500)
    await _select(hass, FEMS_MODE, "power")
    await _select(hass, FEMS_MODE, "auto")
    await _select(hass, FEMS_MODE, "power")
    assert [command.setpoint_w for _, command in mock_backend.applied] == [-2500, -2500, None, 0]


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_keepalive_failure_retried_and_logged_once(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed rewrite is retried a quarter interval later (7.5 s), not only at the next tick.

    One log line when it fails, one when it works again; after a retry that works, the rewrites
    go on at the interval, so one failure never uses up the FEMS's 60 s timeout.
    """
    await _set_power(hass, FEMS_SETPOINT, 2000)
    mock_backend.apply_error = CannotConnectError("FEMS busy")
    caplog.clear()
    await _tick(hass, freezer, 30)  # t=30: the tick fails
    assert len(mock_backend.applied) == 2
    await _tick(hass, freezer, 7.5)  # t=37.5: the retry fails too
    assert len(mock_backend.applied) == 3
    ours = [r for r in caplog.records if r.name == "custom_components.battery_bridge"]
    failed = [r for r in ours if "Keepalive of" in r.message and "failed" in r.message]
    assert len(failed) == 1
    assert failed[0].levelno == logging.WARNING
    assert "FEMS busy" in failed[0].message
    assert "0:00:07.500000" in failed[0].message

    mock_backend.apply_error = None
    await _tick(hass, freezer, 7.5)  # t=45: the second retry works: 15 s after the tick
    assert len(mock_backend.applied) == 4
    await _tick(hass, freezer, 7.5)  # t=52.5: no more retries
    assert len(mock_backend.applied) == 4
    await _tick(hass, freezer, 7.5)  # t=60: the regular tick
    assert len(mock_backend.applied) == 5
    assert mock_backend.applied[-1] == POWER_2000
    ours = [r for r in caplog.records if r.name == "custom_components.battery_bridge"]
    again = [r for r in ours if "works again" in r.message]
    assert len(again) == 1
    assert len([r for r in ours if "Keepalive of" in r.message]) == 2


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_keepalive_retry_ends_with_the_setpoint(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Back to auto while a retry is pending: the retry is dropped, nothing more is written."""
    await _set_power(hass, FEMS_SETPOINT, 2000)
    mock_backend.apply_error = CannotConnectError("FEMS busy")
    await _tick(hass, freezer, 30)
    mock_backend.apply_error = None
    await _select(hass, FEMS_MODE, "auto")
    written = len(mock_backend.applied)
    await _tick(hass, freezer, 7.5)
    await _tick(hass, freezer, 60)
    assert len(mock_backend.applied) == written
    assert mock_backend.applied[-1] == (FEMS_ID, ControlCommand(mode=ControlMode.AUTO))


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_keepalive_stops_on_unload(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Unloading the entry stops the rewrites."""
    await _set_power(hass, FEMS_SETPOINT, 2000)
    await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    await _tick(hass, freezer, 120)
    assert mock_backend.applied == [POWER_2000]


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_keepalive_stops_on_remove(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Removing the entry stops the rewrites."""
    await _set_power(hass, FEMS_SETPOINT, 2000)
    await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()
    await _tick(hass, freezer, 120)
    assert mock_backend.applied == [POWER_2000]


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_keepalive_stops_on_ha_stop(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """When Home Assistant stops, the rewrites stop (nothing else is written)."""
    await _set_power(hass, FEMS_SETPOINT, 2000)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert not _controller(init_integration).keepalive_active
    await _tick(hass, freezer, 120)
    assert mock_backend.applied == [POWER_2000]


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_no_keepalive_after_ha_stop(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A setpoint written while Home Assistant stops is written once, not kept alive."""
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    await _controller(init_integration).async_set_power(2000)
    assert not _controller(init_integration).keepalive_active
    await _tick(hass, freezer, 120)
    assert mock_backend.applied == [POWER_2000]


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_keepalive_stops_when_setpoints_go_away(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A battery that stops taking setpoints (write access lost) is not rewritten any more."""
    await _set_power(hass, FEMS_SETPOINT, 2000)
    snapshot = mock_backend.snapshots[FEMS_ID]
    mock_backend.snapshots[FEMS_ID] = replace(snapshot, capabilities=Capabilities())
    await _tick(hass, freezer, 10)  # the poll sees it
    await _tick(hass, freezer, 20)  # the keepalive tick finds nothing to keep alive
    assert not _controller(init_integration).keepalive_active
    await _tick(hass, freezer, 60)
    assert mock_backend.applied == [POWER_2000]


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize(
    ("entry_options", "expected"),
    [
        ({CONF_KEEPALIVE_INTERVAL: 45}, 30),
        ({CONF_KEEPALIVE_INTERVAL: 10}, 10),
        ({CONF_KEEPALIVE_INTERVAL: 0}, 1),
    ],
)
async def test_keepalive_interval_clamped(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    expected: int,
) -> None:
    """The option may shorten the interval, never beyond half the FEMS timeout."""
    assert _controller(init_integration).keepalive_interval() == timedelta(seconds=expected)
    await _set_power(hass, FEMS_SETPOINT, 2000)
    await _tick(hass, freezer, expected - 0.9)
    assert len(mock_backend.applied) == 1
    await _tick(hass, freezer, 1)
    assert len(mock_backend.applied) == 2


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize("entry_options", [{}, {CONF_KEEPALIVE_INTERVAL: 0}])
async def test_keepalive_within_a_very_short_timeout(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A FEMS with a 1 s API timeout is rewritten every 0.5 s, not at the 1 s floor."""
    mock_backend.snapshots[FEMS_ID] = replace(
        mock_backend.snapshots[FEMS_ID],
        capabilities=replace(mock_backend.snapshots[FEMS_ID].capabilities, command_timeout_s=1.0),
    )
    await _controller(init_integration).coordinator.async_refresh()
    assert _controller(init_integration).keepalive_interval() == timedelta(seconds=0.5)


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT, BackendKind.ENODE])
async def test_no_keepalive_without_timeout(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """FlexConnect and Enode keep commands: nothing is rewritten."""
    controller = _controller(init_integration)
    assert controller.keepalive_interval() is None
    if mock_backend.kind is BackendKind.FLEXCONNECT:
        await controller.async_set_power(1000)
    else:
        await controller.async_set_mode("time_of_use")
    assert not controller.keepalive_active
    await _tick(hass, freezer, 600)
    assert len(mock_backend.applied) == 1


# Charge / discharge power limits

FEMS_CHARGE_LIMIT = "number.fems_ess0_charge_limit"
FEMS_DISCHARGE_LIMIT = "number.fems_ess0_discharge_limit"


def _fems(
    mode: ControlMode,
    setpoint: int | None = None,
    charge: int | None = None,
    discharge: int | None = None,
) -> tuple[str, ControlCommand]:
    return (
        FEMS_ID,
        ControlCommand(
            mode=mode, setpoint_w=setpoint, charge_limit_w=charge, discharge_limit_w=discharge
        ),
    )


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_limits_are_carried_along(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A limit joins the mode in force; setpoints and modes keep it; clearing one writes None."""
    controller = _controller(init_integration)
    assert controller.charge_discharge_limits() == (None, None)
    await controller.async_set_charge_limit(1000.4)
    await _set_power(hass, FEMS_SETPOINT, 2000)
    await controller.async_set_discharge_limit(500)
    await _select(hass, FEMS_MODE, "auto")
    await controller.async_set_charge_limit(None)
    assert controller.charge_discharge_limits() == (None, 500)
    assert mock_backend.applied == [
        _fems(ControlMode.AUTO, charge=1000),
        _fems(ControlMode.POWER, 2000, charge=1000),
        _fems(ControlMode.POWER, 2000, charge=1000, discharge=500),
        _fems(ControlMode.AUTO, charge=1000, discharge=500),
        _fems(ControlMode.AUTO, discharge=500),
    ]
    assert hass.states.get(FEMS_MODE).state == "auto"


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize(("charge", "watts"), [(True, -1), (True, 5001), (False, 6000)])
async def test_fems_limit_out_of_range(
    hass: HomeAssistant,
    *,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    charge: bool,
    watts: int,
) -> None:
    """A limit below 0 or above the battery's largest power is refused, translated."""
    controller = _controller(init_integration)
    setter = controller.async_set_charge_limit if charge else controller.async_set_discharge_limit
    with pytest.raises(ServiceValidationError) as excinfo:
        await setter(watts)
    assert excinfo.value.translation_key == "power_limit_out_of_range"
    assert excinfo.value.translation_placeholders == {"value": str(watts), "max": "5000"}
    assert mock_backend.applied == []


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_limits_not_supported(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A battery without power limits refuses them, translated, naming the battery."""
    controller = _controller(init_integration)
    for setter in (controller.async_set_charge_limit, controller.async_set_discharge_limit):
        with pytest.raises(ServiceValidationError) as excinfo:
            await setter(100)
        assert excinfo.value.translation_key == "power_limits_not_supported"
        assert excinfo.value.translation_placeholders == {"battery": "Garage battery"}
    assert mock_backend.applied == []


async def test_keepalive_for_a_limit_in_auto(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A limit in mode auto is rewritten at the interval; releasing it stops the keepalive.

    The backend is the default one, a FEMS.
    """
    controller = _controller(init_integration)
    await _select(hass, FEMS_MODE, "auto")
    assert not controller.keepalive_active
    await controller.async_set_discharge_limit(0)
    assert controller.keepalive_active
    limit = _fems(ControlMode.AUTO, discharge=0)
    await _tick(hass, freezer, 29)
    assert mock_backend.applied == [_fems(ControlMode.AUTO), limit]
    await _tick(hass, freezer, 1)
    await _tick(hass, freezer, 30)
    assert mock_backend.applied == [_fems(ControlMode.AUTO), limit, limit, limit]
    await controller.async_set_discharge_limit(None)
    assert not controller.keepalive_active
    released = [_fems(ControlMode.AUTO), limit, limit, limit, _fems(ControlMode.AUTO)]
    assert mock_backend.applied == released
    await _tick(hass, freezer, 120)
    assert mock_backend.applied == released


async def test_fake_backend_validate(mock_backend: FakeBackend) -> None:
    """The fake backend validates until an error is injected (keeps conftest.py covered)."""
    await mock_backend.async_validate()
    mock_backend.get_error = CannotConnectError("down")
    with pytest.raises(CannotConnectError):
        await mock_backend.async_validate()


# What the entities show (one reading of what is in force, shared with composing commands)


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_shown_flexconnect(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """FlexConnect: the reported (applied) mode is shown, the requested setpoint is in force."""
    cellar = _controller(init_integration, 1)  # auto applied, pcc at 500 W requested
    assert cellar.reported().mode is ControlMode.AUTO
    assert cellar.basis().mode is ControlMode.PCC
    assert cellar.reported().setpoint_w == 500


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_shown_fems(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """FEMS: auto (its release mode) and no setpoint until we command one; never the applied one."""
    controller = _controller(init_integration)
    assert controller.reported().mode is ControlMode.AUTO
    assert controller.reported().setpoint_w is None  # it applies 1200 W: not ours
    await controller.async_set_power(-1234)
    assert controller.reported().mode is ControlMode.POWER
    assert controller.reported().setpoint_w == -1234
    await controller.async_set_mode("auto")
    assert controller.reported().setpoint_w is None


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_shown_enode(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Enode: the confirmed mode is shown while the requested one is pending; no setpoint."""
    controller = _controller(init_integration)
    await controller.async_set_mode("export_focus")
    assert controller.reported().mode is ControlMode.IMPORT_FOCUS
    assert controller.basis().mode is ControlMode.EXPORT_FOCUS
    assert controller.reported().setpoint_w is None


def test_keepalive_retry_delay() -> None:
    """A quarter interval, at least 1 s, never more than the interval itself."""
    assert retry_delay(timedelta(seconds=30)) == timedelta(seconds=7.5)
    assert retry_delay(timedelta(seconds=2)) == timedelta(seconds=1)
    assert retry_delay(timedelta(seconds=0.5)) == timedelta(seconds=0.5)


async def test_intent_listener_owner_and_idempotent_unsubscribe(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Listeners get each write's owner; removing a listener twice is no error."""
    controller = _controller(init_integration)
    seen: list[object | None] = []
    owner = object()
    remove = controller.async_add_intent_listener(lambda _prev, _cur, who: seen.append(who))
    await controller.async_start_override(
        OverrideMode.CHARGE, power_w=1000, duration=timedelta(minutes=5), owner=owner
    )
    await controller.async_stop_override(owner=owner)
    await controller.async_set_power(-500)
    assert seen == [owner, owner, None]
    remove()
    remove()
    await controller.async_set_power(-400)
    assert len(seen) == 3
