"""Tests of the battery coordinator: polling, unavailability, errors, intervals."""

from __future__ import annotations

from datetime import timedelta
import logging

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.battery_bridge.api import (
    AuthError,
    BackendError,
    BackendKind,
    CannotConnectError,
    CommandStatus,
    ProtocolError,
    RateLimitedError,
    UnknownBatteryError,
)
from custom_components.battery_bridge.api.registry import backend_spec
from custom_components.battery_bridge.const import CONF_SCAN_INTERVAL

from .conftest import FEMS_ID, FakeBackend

SOC = "sensor.fems_ess0_state_of_charge"


async def _tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


def _our_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("custom_components.battery_bridge") and r.levelno >= logging.INFO
    ]


def _states(hass: HomeAssistant, entry: MockConfigEntry) -> set[str]:
    registry = er.async_get(hass)
    return {
        hass.states.get(e.entity_id).state
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        if hass.states.get(e.entity_id) is not None
    }


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_unavailable_and_recovered(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Entities go unavailable when the backend fails and come back; one log line each way."""
    assert hass.states.get(SOC).state == "72.0"
    caplog.clear()
    mock_backend.get_error = CannotConnectError("connection refused")
    for _ in range(3):
        await _tick(hass, freezer, 10)
    assert _states(hass, init_integration) == {STATE_UNAVAILABLE}
    errors = [r for r in _our_records(caplog) if "Error fetching" in r.message]
    assert len(errors) == 1
    assert "connection refused" in errors[0].message

    mock_backend.get_error = None
    mock_backend.set_state(FEMS_ID, state_of_charge=73.0)
    for _ in range(2):
        await _tick(hass, freezer, 10)
    assert hass.states.get(SOC).state == "73.0"
    assert STATE_UNAVAILABLE not in _states(hass, init_integration)
    recovered = [r for r in _our_records(caplog) if "recovered" in r.message]
    assert len(recovered) == 1
    assert recovered[0].levelno == logging.INFO
    assert len(_our_records(caplog)) == 2


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize(
    ("error", "translation_key"),
    [
        (CannotConnectError("timed out"), "update_failed"),
        (ProtocolError("bad JSON"), "update_failed"),
        (UnknownBatteryError("ess0"), "unknown_battery"),
        (RateLimitedError("slow down"), "rate_limited"),
    ],
)
async def test_update_errors_translated(
    hass: HomeAssistant,
    *,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    error: BackendError,
    translation_key: str,
) -> None:
    """Every backend error becomes an UpdateFailed with its own translation key."""
    mock_backend.get_error = error
    await _tick(hass, freezer, 10)
    coordinator = next(iter(init_integration.runtime_data.batteries.values())).coordinator
    assert not coordinator.last_update_success
    assert coordinator.last_exception.translation_key == translation_key
    assert coordinator.last_exception.translation_placeholders["battery"] == "FEMS ess0"
    assert hass.states.get(SOC).state == STATE_UNAVAILABLE


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_rate_limited_waits(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A 429 with Retry-After defers the next poll by that much."""
    mock_backend.get_error = RateLimitedError("slow down", retry_after=300)
    await _tick(hass, freezer, 60)
    calls = mock_backend.snapshot_calls
    mock_backend.get_error = None
    await _tick(hass, freezer, 120)
    assert mock_backend.snapshot_calls == calls
    await _tick(hass, freezer, 181)
    assert mock_backend.snapshot_calls == calls + 2  # both batteries


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_auth_error_starts_reauth(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Rejected credentials while polling start the re-authentication flow."""
    mock_backend.get_error = AuthError("wrong password")
    await _tick(hass, freezer, 10)
    flows = hass.config_entries.flow.async_progress()
    assert len(flows) == 1
    assert flows[0]["context"]["source"] == SOURCE_REAUTH
    assert flows[0]["context"]["entry_id"] == init_integration.entry_id
    assert hass.states.get(SOC).state == STATE_UNAVAILABLE


@pytest.mark.parametrize(
    ("backend_kind", "entry_options", "expected"),
    [
        (BackendKind.FEMS, {}, 10),
        (BackendKind.FLEXCONNECT, {}, 15),
        (BackendKind.ENODE, {}, 60),
        (BackendKind.FEMS, {CONF_SCAN_INTERVAL: 30}, 30),
        (BackendKind.FEMS, {CONF_SCAN_INTERVAL: 1}, 5),
        (BackendKind.ENODE, {CONF_SCAN_INTERVAL: 10}, 60),
    ],
)
async def test_scan_interval(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    expected: int,
) -> None:
    """The poll interval is the option or the backend's default, never below its minimum.

    (A battery with a pending command is polled faster: see the next test.)
    """
    for battery in init_integration.runtime_data.batteries.values():
        coordinator = battery.coordinator
        pending = backend_spec(coordinator.kind).pending_poll_interval
        faster = pending if coordinator.data.control.pending else None
        assert coordinator.update_interval == min(
            timedelta(seconds=expected), faster or timedelta.max
        )
    calls = mock_backend.snapshot_calls
    await _tick(hass, freezer, expected)
    assert mock_backend.snapshot_calls == calls + len(mock_backend.snapshots)


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_setup_auth_error(
    hass: HomeAssistant, mock_backend: FakeBackend, mock_config_entry: MockConfigEntry
) -> None:
    """Rejected credentials at set-up: set-up error and a re-authentication flow."""
    mock_backend.get_error = AuthError("wrong password")
    mock_config_entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_ERROR
    assert mock_config_entry.error_reason_translation_key == "authentication_failed"
    flows = hass.config_entries.flow.async_progress()
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_setup_not_ready(
    hass: HomeAssistant, mock_backend: FakeBackend, mock_config_entry: MockConfigEntry
) -> None:
    """An unreachable backend at set-up: Home Assistant retries later; nothing is written."""
    mock_backend.get_error = CannotConnectError("no route to host")
    mock_config_entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert mock_config_entry.error_reason_translation_key == "update_failed"
    assert mock_config_entry.error_reason_translation_placeholders == {
        "battery": "FEMS ess0",
        "error": "no route to host",
    }
    assert mock_backend.applied == []
    await hass.config_entries.async_unload(mock_config_entry.entry_id)


@pytest.mark.parametrize(
    ("backend_kind", "intervals"),
    [(BackendKind.ENODE, (60, 15)), (BackendKind.FLEXCONNECT, (15, 5))],
)
async def test_faster_polls_while_a_command_is_pending(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    intervals: tuple[int, int],
) -> None:
    """A pending command (Enode Action, FlexConnect desired != current) is polled more often."""
    normal, pending = intervals
    battery_id = next(iter(mock_backend.snapshots))
    coordinator = next(
        battery.coordinator
        for battery in init_integration.runtime_data.batteries.values()
        if battery.coordinator.battery_id == battery_id
    )
    mock_backend.set_control(battery_id, command_status=None)
    await coordinator.async_refresh()
    assert coordinator.update_interval == timedelta(seconds=normal)

    mock_backend.set_control(battery_id, command_status=CommandStatus.PENDING)
    await coordinator.async_refresh()
    assert coordinator.update_interval == timedelta(seconds=pending)
    calls = mock_backend.snapshot_calls
    await _tick(hass, freezer, pending)
    assert mock_backend.snapshot_calls > calls  # polled after the short interval

    mock_backend.set_control(battery_id, command_status=CommandStatus.CONFIRMED)
    await _tick(hass, freezer, pending)
    assert coordinator.update_interval == timedelta(seconds=normal)


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_fems_interval_ignores_pending(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """A FEMS applies writes at once: no shorter interval, whatever the status says."""
    mock_backend.set_control(FEMS_ID, command_status=CommandStatus.PENDING)
    coordinator = next(iter(init_integration.runtime_data.batteries.values())).coordinator
    await coordinator.async_refresh()
    assert coordinator.update_interval == timedelta(seconds=10)
