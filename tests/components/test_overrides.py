"""Tests of timed overrides: the actions, their end by time or state of charge, restarts."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.number import ATTR_VALUE, DOMAIN as NUMBER_DOMAIN, SERVICE_SET_VALUE
from homeassistant.components.select import (
    ATTR_OPTION,
    DOMAIN as SELECT_DOMAIN,
    SERVICE_SELECT_OPTION,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util
import probatio
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.battery_bridge.api import (
    BackendKind,
    CannotConnectError,
    ControlCommand,
    ControlMode,
)
from custom_components.battery_bridge.const import DOMAIN
from custom_components.battery_bridge.overrides import (
    STORAGE_KEY,
    STORAGE_VERSION,
    Override,
    OverrideMode,
)

from .conftest import ENODE_ID_1, FEMS_ID, FLEX_ID_1, FLEX_ID_2, FakeBackend, fems_snapshots

POWER = ControlMode.POWER
AUTO = ControlCommand(mode=ControlMode.AUTO)
FEMS_SETPOINT = "number.fems_ess0_power_setpoint"


def _cmd(mode: ControlMode, setpoint: int | None = None) -> ControlCommand:
    return ControlCommand(mode=mode, setpoint_w=setpoint)


# Per backend: the first battery, its entity id prefix, an override, the command it writes and
# the fallback (FlexConnect: what the battery was asked for; FEMS: auto; Enode: its mode).
CASES: dict[BackendKind, tuple[str, str, dict[str, Any], ControlCommand, ControlCommand]] = {
    BackendKind.FLEXCONNECT: (
        FLEX_ID_1,
        "garage_battery",
        {"mode": "charge", "power": 3000},
        _cmd(POWER, -3000),
        _cmd(POWER, -2000),
    ),
    BackendKind.FEMS: (
        FEMS_ID,
        "fems_ess0",
        {"mode": "discharge", "power": 2000},
        _cmd(POWER, 2000),
        AUTO,
    ),
    BackendKind.ENODE: (
        ENODE_ID_1,
        "powerwall_home",
        {"mode": "discharge", "power": 999_999},  # ignored: Enode takes no setpoint
        _cmd(ControlMode.EXPORT_FOCUS),
        _cmd(ControlMode.IMPORT_FOCUS),
    ),
}
# Per backend: a target state of charge not yet reached, and a reading that reaches it.
SOC_TARGETS = {
    BackendKind.FLEXCONNECT: (60, 60.0),  # charge from 56 %
    BackendKind.FEMS: (70, 69.5),  # discharge from 72 %
    BackendKind.ENODE: (50, 50.0),  # discharge from 80 %
}


async def _tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


def _device_id(hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str = "sub_1") -> str:
    registry = dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        if device.config_subentry_id == subentry_id:
            return device.id
    raise AssertionError(subentry_id)


async def _start(hass: HomeAssistant, device_id: str, **data: Any) -> None:
    await hass.services.async_call(
        DOMAIN, "start_override", {"device_id": device_id, **data}, blocking=True
    )


async def _stop(hass: HomeAssistant, device_id: str) -> None:
    await hass.services.async_call(DOMAIN, "stop_override", {"device_id": device_id}, blocking=True)


def _states(hass: HomeAssistant, prefix: str) -> tuple[str, str]:
    override = hass.states.get(f"sensor.{prefix}_override")
    end = hass.states.get(f"sensor.{prefix}_override_end")
    assert override is not None
    assert end is not None
    return override.state, end.state


def _stored(hass_storage: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = hass_storage.get(STORAGE_KEY, {}).get("data", {})
    return data


def _seed(hass_storage: dict[str, Any], data: dict[str, Any]) -> None:
    hass_storage[STORAGE_KEY] = {
        "version": STORAGE_VERSION,
        "minor_version": 1,
        "key": STORAGE_KEY,
        "data": data,
    }


def _stored_override(
    *,
    mode: str = "discharge",
    ends_at: datetime | None,
    until_soc: float | None = None,
    command: dict[str, Any] | None = None,
    fallback: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "mode": mode,
        "power_w": 2000,
        "command": command or {"mode": "power", "setpoint_w": 2000},
        "fallback": fallback or {"mode": "auto", "setpoint_w": None},
        "started_at": (dt_util.utcnow() - timedelta(minutes=5)).isoformat(),
        "ends_at": None if ends_at is None else ends_at.isoformat(),
        "until_soc": until_soc,
    }


# Start, end by time, end by state of charge, stop


@pytest.mark.parametrize("backend_kind", list(BackendKind))
async def test_override_ends_by_duration(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    backend_kind: BackendKind,
) -> None:
    """Start writes the override's command; after the duration the fallback is written once."""
    battery_id, prefix, data, command, fallback = CASES[backend_kind]
    assert _states(hass, prefix) == ("none", STATE_UNKNOWN)
    ends_at = dt_util.utcnow() + timedelta(hours=1)
    await _start(hass, _device_id(hass, init_integration), duration={"hours": 1}, **data)
    assert mock_backend.applied == [(battery_id, command)]
    state, end = _states(hass, prefix)
    assert state == data["mode"]
    assert dt_util.parse_datetime(end) == ends_at.replace(microsecond=0)
    stored = _stored(hass_storage)[init_integration.entry_id]["sub_1"]
    assert stored["command"] == {"mode": command.mode, "setpoint_w": command.setpoint_w}
    assert stored["fallback"] == {"mode": fallback.mode, "setpoint_w": fallback.setpoint_w}

    await _tick(hass, freezer, 3599)
    assert (battery_id, fallback) not in mock_backend.applied
    await _tick(hass, freezer, 1)
    assert mock_backend.applied[-1] == (battery_id, fallback)
    assert mock_backend.applied.count((battery_id, fallback)) == 1
    assert _states(hass, prefix) == ("none", STATE_UNKNOWN)
    assert _stored(hass_storage) == {}
    written = len(mock_backend.applied)
    await _tick(hass, freezer, 7200)
    assert mock_backend.applied.count((battery_id, fallback)) == 1
    assert all(cmd != command for _, cmd in mock_backend.applied[written:])


@pytest.mark.parametrize("backend_kind", list(BackendKind))
async def test_override_ends_by_state_of_charge(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    backend_kind: BackendKind,
) -> None:
    """A poll that shows the target state of charge ends the override before its end time."""
    battery_id, prefix, data, _, fallback = CASES[backend_kind]
    until_soc, reached = SOC_TARGETS[backend_kind]
    if backend_kind is BackendKind.FLEXCONNECT:
        data = {**data, "mode": "charge"}
    await _start(
        hass,
        _device_id(hass, init_integration),
        until_soc=until_soc,
        duration="02:00:00",
        **data,
    )
    await _tick(hass, freezer, 60)
    assert (battery_id, fallback) not in mock_backend.applied
    assert _states(hass, prefix)[0] == data["mode"]

    mock_backend.set_state(battery_id, state_of_charge=reached)
    await _tick(hass, freezer, 60)
    assert mock_backend.applied[-1] == (battery_id, fallback)
    assert _states(hass, prefix) == ("none", STATE_UNKNOWN)
    # The end time is no second end.
    await _tick(hass, freezer, 7200)
    assert mock_backend.applied.count((battery_id, fallback)) == 1


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_override_until_soc_only(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Without a duration the override runs until the target, however long that takes."""
    await _start(
        hass, _device_id(hass, init_integration), mode="discharge", power=1000, until_soc=20
    )
    assert _states(hass, "garage_battery") == ("discharge", STATE_UNKNOWN)
    await _tick(hass, freezer, 86400)
    assert mock_backend.applied == [(FLEX_ID_1, _cmd(POWER, 1000))]
    mock_backend.set_state(FLEX_ID_1, state_of_charge=19.0)
    await _tick(hass, freezer, 60)
    assert mock_backend.applied[-1] == (FLEX_ID_1, _cmd(POWER, -2000))


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT, BackendKind.FEMS])
async def test_stop_override_reverts(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    backend_kind: BackendKind,
) -> None:
    """Hold writes 0 W; stop_override writes the fallback now; a second stop does nothing."""
    battery_id, prefix, _, _, fallback = CASES[backend_kind]
    device_id = _device_id(hass, init_integration)
    await _start(hass, device_id, mode="hold", duration={"minutes": 30})
    assert mock_backend.applied == [(battery_id, _cmd(POWER, 0))]
    assert _states(hass, prefix)[0] == "hold"
    await _stop(hass, device_id)
    assert mock_backend.applied == [(battery_id, _cmd(POWER, 0)), (battery_id, fallback)]
    assert _states(hass, prefix) == ("none", STATE_UNKNOWN)
    assert _stored(hass_storage) == {}
    await _stop(hass, device_id)
    await _tick(hass, freezer, 3600)
    assert mock_backend.applied == [(battery_id, _cmd(POWER, 0)), (battery_id, fallback)]


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_keepalive_during_override(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """FEMS: the override setpoint is rewritten every 30 s; after the revert to auto, nothing."""
    await _start(
        hass, _device_id(hass, init_integration), mode="charge", power=2500, duration="00:01:40"
    )
    charge = (FEMS_ID, _cmd(POWER, -2500))
    for _ in range(3):
        await _tick(hass, freezer, 30)
    assert mock_backend.applied == [charge] * 4
    await _tick(hass, freezer, 10)
    assert mock_backend.applied == [charge] * 4 + [(FEMS_ID, AUTO)]
    controller = next(iter(init_integration.runtime_data.batteries.values())).controller
    assert not controller.keepalive_active
    await _tick(hass, freezer, 300)
    assert len(mock_backend.applied) == 5


# Fallback and replacement


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fallback_is_our_active_intent(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A setpoint we keep applied is what the override returns to (and keeps alive again)."""
    await hass.services.async_call(
        NUMBER_DOMAIN,
        SERVICE_SET_VALUE,
        {ATTR_ENTITY_ID: FEMS_SETPOINT, ATTR_VALUE: 500},
        blocking=True,
    )
    await _start(hass, _device_id(hass, init_integration), mode="hold", duration={"seconds": 20})
    await _tick(hass, freezer, 20)
    assert mock_backend.applied == [
        (FEMS_ID, _cmd(POWER, 500)),
        (FEMS_ID, _cmd(POWER, 0)),
        (FEMS_ID, _cmd(POWER, 500)),
    ]
    await _tick(hass, freezer, 30)
    assert mock_backend.applied[-1] == (FEMS_ID, _cmd(POWER, 500))


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_new_override_keeps_the_first_fallback(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A new override replaces the running one (its timer too); the original fallback stays."""
    device_id = _device_id(hass, init_integration, "sub_2")
    await _start(hass, device_id, mode="charge", power=1000, duration={"minutes": 10})
    await _start(hass, device_id, mode="discharge", power=800, duration={"minutes": 30})
    assert _states(hass, "cellar_battery")[0] == "discharge"
    await _tick(hass, freezer, 600)
    # The cellar battery was asked for pcc at 500 W before the first override.
    assert mock_backend.applied == [
        (FLEX_ID_2, _cmd(POWER, -1000)),
        (FLEX_ID_2, _cmd(POWER, 800)),
    ]
    await _tick(hass, freezer, 1200)
    assert mock_backend.applied[-1] == (FLEX_ID_2, _cmd(ControlMode.PCC, 500))
    assert len(mock_backend.applied) == 3


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS, BackendKind.ENODE])
async def test_user_write_ends_override_without_revert(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    backend_kind: BackendKind,
) -> None:
    """A number or select write during an override ends it; its fallback is not written."""
    battery_id, prefix, data, _, fallback = CASES[backend_kind]
    await _start(hass, _device_id(hass, init_integration), duration={"hours": 1}, **data)
    if backend_kind is BackendKind.FEMS:
        await hass.services.async_call(
            NUMBER_DOMAIN,
            SERVICE_SET_VALUE,
            {ATTR_ENTITY_ID: FEMS_SETPOINT, ATTR_VALUE: -700},
            blocking=True,
        )
        user = _cmd(POWER, -700)
    else:
        await hass.services.async_call(
            SELECT_DOMAIN,
            SERVICE_SELECT_OPTION,
            {ATTR_ENTITY_ID: "select.powerwall_home_operation_mode", ATTR_OPTION: "time_of_use"},
            blocking=True,
        )
        user = _cmd(ControlMode.TIME_OF_USE)
    assert _states(hass, prefix) == ("none", STATE_UNKNOWN)
    assert _stored(hass_storage) == {}
    await _tick(hass, freezer, 7200)
    assert (battery_id, fallback) not in mock_backend.applied
    assert mock_backend.applied[1] == (battery_id, user)
    assert {cmd for _, cmd in mock_backend.applied[1:]} == {user}


# Validation and errors


@pytest.mark.parametrize(
    ("backend_kind", "data", "translation_key"),
    [
        (BackendKind.FEMS, {"mode": "charge", "power": 1000}, "override_needs_end"),
        (BackendKind.FEMS, {"mode": "charge", "power": 1000, "duration": 0}, "override_needs_end"),
        (BackendKind.ENODE, {"mode": "hold", "duration": 60}, "override_not_supported"),
        (BackendKind.FEMS, {"mode": "charge", "duration": 60}, "override_power_required"),
        (
            BackendKind.FEMS,
            {"mode": "discharge", "power": 5001, "duration": 60},
            "setpoint_out_of_range",
        ),
        (BackendKind.FEMS, {"mode": "hold", "until_soc": 50}, "override_hold_until_soc"),
        (
            BackendKind.FEMS,
            {"mode": "charge", "power": 1000, "until_soc": 70},
            "override_soc_reached",
        ),
        (
            BackendKind.ENODE,
            {"mode": "discharge", "until_soc": 80},
            "override_soc_reached",
        ),
    ],
)
async def test_invalid_override(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    data: dict[str, Any],
    translation_key: str,
) -> None:
    """Bad input is refused with a translated error; nothing is written."""
    with pytest.raises(ServiceValidationError) as excinfo:
        await _start(hass, _device_id(hass, init_integration), **data)
    assert excinfo.value.translation_key == translation_key
    assert mock_backend.applied == []


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize(
    "data",
    [
        {"mode": "boost", "duration": 60},
        {"mode": "charge", "power": -5, "duration": 60},
        {"mode": "charge", "power": 5, "until_soc": 101},
        {"mode": "charge", "power": 5, "duration": -60},
    ],
)
async def test_schema_errors(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    data: dict[str, Any],
) -> None:
    """Values outside the action's fields are refused by its schema."""
    with pytest.raises(probatio.Invalid):
        await _start(hass, _device_id(hass, init_integration), **data)
    assert mock_backend.applied == []


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize("fake_snapshots", [fems_snapshots(can_write=False)])
async def test_read_only_fems(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A read-only FEMS entry refuses overrides and has no override sensors."""
    with pytest.raises(ServiceValidationError) as excinfo:
        await _start(hass, _device_id(hass, init_integration), mode="hold", duration=60)
    assert excinfo.value.translation_key == "override_read_only"
    assert excinfo.value.translation_placeholders == {"battery": "FEMS ess0"}
    assert hass.states.get("sensor.fems_ess0_override") is None
    assert mock_backend.applied == []


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_no_fallback_known(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A battery that reports no mode has nothing to return to: the override is refused."""
    mock_backend.set_control(ENODE_ID_1, current=None)
    battery = next(iter(init_integration.runtime_data.batteries.values()))
    await battery.coordinator.async_refresh()
    with pytest.raises(ServiceValidationError) as excinfo:
        await _start(hass, _device_id(hass, init_integration), mode="charge", duration=60)
    assert excinfo.value.translation_key == "override_no_fallback"
    assert mock_backend.applied == []


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_unknown_devices(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A device id that is no Battery Bridge battery is refused, translated."""
    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    registry = dr.async_get(hass)
    foreign = registry.async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("other", "x")}
    )
    no_battery = registry.async_get_or_create(
        config_entry_id=init_integration.entry_id, identifiers={(DOMAIN, "not_a_battery")}
    )
    for device_id in ("no-such-device", foreign.id, no_battery.id):
        with pytest.raises(ServiceValidationError) as excinfo:
            await _stop(hass, device_id)
        assert excinfo.value.translation_key == "device_not_found"
        assert excinfo.value.translation_placeholders == {"device_id": device_id}


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_entry_not_loaded(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A battery of an unloaded entry is refused, translated."""
    device_id = _device_id(hass, init_integration)
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    with pytest.raises(ServiceValidationError) as excinfo:
        await _start(hass, device_id, mode="hold", duration=60)
    assert excinfo.value.translation_key == "entry_not_loaded"


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_backend_error_on_start_and_stop(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
) -> None:
    """A failed write raises a translated HomeAssistantError; a failed stop keeps the override."""
    device_id = _device_id(hass, init_integration)
    mock_backend.apply_error = CannotConnectError("FEMS busy")
    with pytest.raises(HomeAssistantError) as excinfo:
        await _start(hass, device_id, mode="hold", duration=60)
    assert excinfo.value.translation_key == "communication_error"
    assert _states(hass, "fems_ess0")[0] == "none"
    assert _stored(hass_storage) == {}

    mock_backend.apply_error = None
    await _start(hass, device_id, mode="hold", duration=60)
    mock_backend.apply_error = CannotConnectError("FEMS busy")
    with pytest.raises(HomeAssistantError):
        await _stop(hass, device_id)
    assert _states(hass, "fems_ess0")[0] == "hold"
    assert _stored(hass_storage) != {}


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
@pytest.mark.parametrize("end", ["duration", "soc"])
async def test_failed_revert_is_retried(
    hass: HomeAssistant,
    *,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    end: str,
) -> None:
    """A fallback that cannot be written is logged and written again 30 s later."""
    await _start(
        hass,
        _device_id(hass, init_integration),
        mode="charge",
        power=1000,
        duration=600,
        until_soc=90,
    )
    mock_backend.apply_error = CannotConnectError("client down")
    if end == "duration":
        await _tick(hass, freezer, 600)
    else:
        mock_backend.set_state(FLEX_ID_1, state_of_charge=95.0)
        await _tick(hass, freezer, 60)
    assert mock_backend.applied[-1] == (FLEX_ID_1, _cmd(POWER, -2000))
    assert _states(hass, "garage_battery")[0] == "charge"
    (record,) = [r for r in caplog.records if "Could not end the override" in r.message]
    assert record.levelno == logging.WARNING
    assert "client down" in record.message

    mock_backend.apply_error = None
    await _tick(hass, freezer, 30)
    assert _states(hass, "garage_battery")[0] == "none"
    assert mock_backend.applied[-2:] == [(FLEX_ID_1, _cmd(POWER, -2000))] * 2
    written = len(mock_backend.applied)
    await _tick(hass, freezer, 3600)
    assert len(mock_backend.applied) == written


# Restarts


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_running_override_resumes(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_backend: FakeBackend,
    mock_config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A stored override still running resumes: nothing written at set-up, its timers run."""
    ends_at = dt_util.utcnow() + timedelta(minutes=2)
    _seed(
        hass_storage,
        {mock_config_entry.entry_id: {"sub_1": _stored_override(ends_at=ends_at)}},
    )
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_backend.applied == []
    state, end = _states(hass, "fems_ess0")
    assert state == "discharge"
    assert dt_util.parse_datetime(end) == ends_at.replace(microsecond=0)
    assert hass.states.get("select.fems_ess0_control_mode").state == "power"

    await _tick(hass, freezer, 30)  # the keepalive's first tick
    assert mock_backend.applied == [(FEMS_ID, _cmd(POWER, 2000))]
    await _tick(hass, freezer, 90)
    assert mock_backend.applied[-1] == (FEMS_ID, AUTO)
    assert _stored(hass_storage) == {}
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
@pytest.mark.parametrize(
    ("ends_in", "until_soc"), [(timedelta(minutes=-1), None), (timedelta(hours=1), 60.0)]
)
async def test_ended_override_reverts_at_setup(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    mock_backend: FakeBackend,
    mock_config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    ends_in: timedelta,
    until_soc: float | None,
) -> None:
    """An override that ended while Home Assistant was off gets its fallback written once."""
    fallback = {"mode": "pcc", "setpoint_w": 300}
    _seed(
        hass_storage,
        {
            mock_config_entry.entry_id: {
                "sub_1": _stored_override(
                    ends_at=dt_util.utcnow() + ends_in, until_soc=until_soc, fallback=fallback
                )
            }
        },
    )
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_backend.applied == [(FLEX_ID_1, _cmd(ControlMode.PCC, 300))]
    assert _states(hass, "garage_battery") == ("none", STATE_UNKNOWN)
    assert _stored(hass_storage) == {}
    await _tick(hass, freezer, 7200)
    assert len(mock_backend.applied) == 1
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_failed_revert_at_setup_is_retried(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_backend: FakeBackend,
    mock_config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The set-up does not fail when the fallback cannot be written; it is retried."""
    _seed(
        hass_storage,
        {
            mock_config_entry.entry_id: {
                "sub_1": _stored_override(ends_at=dt_util.utcnow() - timedelta(minutes=1))
            }
        },
    )
    mock_backend.apply_error = CannotConnectError("client down")
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.LOADED
    assert _states(hass, "garage_battery")[0] == "discharge"
    mock_backend.apply_error = None
    await _tick(hass, freezer, 30)
    assert mock_backend.applied == [(FLEX_ID_1, AUTO)] * 2
    assert _states(hass, "garage_battery")[0] == "none"
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
@pytest.mark.parametrize(
    "malformed",
    [
        {},
        {"mode": "boost"},
        {"started_at": None},
        {"started_at": "yesterday"},
        {"ends_at": "2026-05-01T12:00:00"},
        {"until_soc": "full"},
        {"power_w": "lots"},
        {"command": {"mode": "power", "setpoint_w": True}},
        {"fallback": {"mode": "power", "setpoint_w": 1.5}},
        {"fallback": {"mode": "auto"}},
        {"command": {"mode": "power", "setpoint_w": 2000, "charge_limit_w": "lots"}},
        {"fallback": {"mode": "auto", "setpoint_w": None, "discharge_limit_w": False}},
        {"fallback": "auto"},
    ],
)
async def test_stored_overrides_cleaned_up(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    mock_backend: FakeBackend,
    mock_config_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    malformed: dict[str, Any],
) -> None:
    """Malformed overrides and those of removed batteries are dropped; others stay."""
    running = _stored_override(ends_at=dt_util.utcnow() + timedelta(hours=1))
    bad = {**running, **malformed} if malformed else {}
    _seed(
        hass_storage,
        {
            mock_config_entry.entry_id: {"sub_1": running, "sub_2": bad, "sub_9": running},
            "other_entry": {"sub_1": running},
        },
    )
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_backend.applied == []
    assert "Dropping a stored override" in caplog.text
    assert set(_stored(hass_storage)[mock_config_entry.entry_id]) == {"sub_1"}
    assert set(_stored(hass_storage)["other_entry"]) == {"sub_1"}
    assert _states(hass, "garage_battery")[0] == "discharge"
    assert _states(hass, "cellar_battery")[0] == "none"
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_unload_keeps_and_remove_deletes(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Unload stops the timers and keeps the override; removing battery or entry deletes it."""
    entry_id = init_integration.entry_id
    await _start(hass, _device_id(hass, init_integration), mode="hold", duration=600)
    await _start(hass, _device_id(hass, init_integration, "sub_2"), mode="hold", duration=600)
    assert set(_stored(hass_storage)[entry_id]) == {"sub_1", "sub_2"}
    assert await hass.config_entries.async_unload(entry_id)
    await hass.async_block_till_done()
    await _tick(hass, freezer, 300)
    assert len(mock_backend.applied) == 2
    assert set(_stored(hass_storage)[entry_id]) == {"sub_1", "sub_2"}

    assert await hass.config_entries.async_setup(entry_id)
    await hass.async_block_till_done()
    assert len(mock_backend.applied) == 2
    hass.config_entries.async_remove_subentry(init_integration, "sub_2")
    await hass.async_block_till_done()
    assert set(_stored(hass_storage)[entry_id]) == {"sub_1"}
    await hass.config_entries.async_remove(entry_id)
    await hass.async_block_till_done()
    assert _stored(hass_storage) == {}
    await _tick(hass, freezer, 3600)
    assert len(mock_backend.applied) == 2


# Power limits


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_override_keeps_the_limits(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """An override carries the limits; a limit changed meanwhile reaches override and fallback."""
    controller = next(iter(init_integration.runtime_data.batteries.values())).controller
    await controller.async_set_charge_limit(1000)
    await _start(
        hass, _device_id(hass, init_integration), mode="discharge", power=2000, duration="01:00:00"
    )
    assert mock_backend.applied[-1] == (
        FEMS_ID,
        ControlCommand(mode=POWER, setpoint_w=2000, charge_limit_w=1000),
    )
    stored = _stored(hass_storage)[init_integration.entry_id]["sub_1"]
    assert stored["command"] == {"mode": "power", "setpoint_w": 2000, "charge_limit_w": 1000}
    assert stored["fallback"] == {"mode": "auto", "setpoint_w": None, "charge_limit_w": 1000}

    await controller.async_set_discharge_limit(1500)
    assert controller.override is not None  # a limit does not end the override
    both = {"charge_limit_w": 1000, "discharge_limit_w": 1500}
    assert mock_backend.applied[-1] == (
        FEMS_ID,
        ControlCommand(mode=POWER, setpoint_w=2000, **both),
    )
    stored = _stored(hass_storage)[init_integration.entry_id]["sub_1"]
    assert stored["command"] == {"mode": "power", "setpoint_w": 2000, **both}
    assert stored["fallback"] == {"mode": "auto", "setpoint_w": None, **both}

    await _tick(hass, freezer, 3600)
    assert controller.override is None
    assert mock_backend.applied[-1] == (
        FEMS_ID,
        ControlCommand(mode=ControlMode.AUTO, **both),
    )
    assert controller.keepalive_active  # the limits are still kept alive in auto


def test_stored_override_with_limits_round_trip() -> None:
    """Limits survive the store; overrides stored before limits existed read as without."""
    override = Override(
        mode=OverrideMode.CHARGE,
        power_w=2000,
        command=ControlCommand(mode=POWER, setpoint_w=-2000, discharge_limit_w=0),
        fallback=ControlCommand(mode=ControlMode.AUTO, charge_limit_w=3000, discharge_limit_w=0),
        started_at=dt_util.utcnow(),
    )
    assert Override.from_dict(override.as_dict()) == override
    old = _stored_override(ends_at=None)
    assert Override.from_dict(old).command == _cmd(POWER, 2000)


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_no_retry_after_unload_with_an_end_in_flight(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """An end whose write is in flight at unload and then fails is not retried afterwards."""
    await _start(hass, _device_id(hass, init_integration), mode="charge", power=1000, duration=600)
    release = asyncio.Event()
    original = mock_backend.async_apply

    async def apply(battery_id: str, command: ControlCommand) -> None:
        mock_backend.applied.append((battery_id, command))
        await release.wait()
        raise CannotConnectError("down")

    mock_backend.async_apply = apply  # type: ignore[method-assign]
    written = len(mock_backend.applied)
    freezer.tick(timedelta(seconds=600))
    async_fire_time_changed(hass)
    for _ in range(100):
        if len(mock_backend.applied) > written:
            break
        await asyncio.sleep(0)
    assert len(mock_backend.applied) == written + 1  # the end's write is in flight
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    release.set()
    await hass.async_block_till_done()
    mock_backend.async_apply = original  # type: ignore[method-assign]
    await _tick(hass, freezer, 30)
    await _tick(hass, freezer, 3600)
    assert len(mock_backend.applied) == written + 1
