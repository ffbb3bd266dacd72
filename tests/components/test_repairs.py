"""Tests of the repair issue for a battery its backend no longer knows, and of its fix flow."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
import json
from pathlib import Path
import re
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.repairs import DOMAIN as REPAIRS_DOMAIN
from homeassistant.components.repairs.websocket_api import (
    RepairsFlowIndexView,
    RepairsFlowResourceView,
)
from homeassistant.config_entries import ConfigEntryDisabler, ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.battery_bridge.api import BackendKind, BatterySnapshot
from custom_components.battery_bridge.const import DOMAIN
from custom_components.battery_bridge.coordinator import battery_gone_issue_id

from .conftest import FLEX_ID_1, FLEX_ID_2, FakeBackend

COMPONENT = Path(__file__).parents[2] / "custom_components" / DOMAIN
GONE = "sub_2"  # the subentry of FLEX_ID_2, "Cellar battery"
ISSUE_ID = battery_gone_issue_id(GONE)
PLACEHOLDER = re.compile(r"\{(\w+)\}")


async def _tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


def _battery_states(hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str) -> set[str]:
    registry = er.async_get(hass)
    return {
        hass.states.get(e.entity_id).state
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        if e.config_subentry_id == subentry_id and hass.states.get(e.entity_id) is not None
    }


async def _poll(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Poll the battery of GONE now (no frozen clock: it breaks aiohttp's access log)."""
    await entry.runtime_data.batteries[GONE].coordinator.async_refresh()
    await hass.async_block_till_done()


async def _lose_battery(
    hass: HomeAssistant, backend: FakeBackend, entry: MockConfigEntry
) -> BatterySnapshot:
    """Make the backend forget FLEX_ID_2 and poll; return its snapshot (to bring it back)."""
    snapshot = backend.snapshots.pop(FLEX_ID_2)
    await _poll(hass, entry)
    return snapshot


@pytest.fixture
def backend_kind() -> BackendKind:
    """FlexConnect: two batteries, so one can go while the other stays."""
    return BackendKind.FLEXCONNECT


# The HTTP API the frontend uses for fix flows (as HA core's tests/components/repairs helpers).


async def _start_fix_flow(client: Any, issue_id: str) -> dict[str, Any]:
    resp = await client.post(
        RepairsFlowIndexView.url, json={"handler": DOMAIN, "issue_id": issue_id}
    )
    assert resp.status == HTTPStatus.OK
    result: dict[str, Any] = await resp.json()
    return result


async def _submit_fix_flow(client: Any, flow_id: str) -> dict[str, Any]:
    resp = await client.post(RepairsFlowResourceView.url.format(flow_id=flow_id), json={})
    assert resp.status == HTTPStatus.OK
    result: dict[str, Any] = await resp.json()
    return result


@pytest.fixture
async def repairs_client(hass: HomeAssistant, hass_client: ClientSessionGenerator) -> Any:
    """An HTTP client of the repairs API (set up as default_config/frontend would)."""
    assert await async_setup_component(hass, REPAIRS_DOMAIN, {})
    await hass.async_block_till_done()
    return await hass_client()


# The issue


async def test_issue_created_and_deleted_after_recovery(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """An unknown battery raises a fixable issue and goes unavailable; the next good poll clears it."""
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None
    snapshot = await _lose_battery(hass, mock_backend, init_integration)

    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_ID)
    assert issue is not None
    assert issue.is_fixable
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_key == "battery_gone"
    assert issue.translation_placeholders == {
        "battery": "Cellar battery",
        "entry": "flexconnect test",
    }
    assert issue.data == {"entry_id": init_integration.entry_id, "subentry_id": GONE}
    assert len(issue_registry.issues) == 1  # only the battery that is gone
    assert _battery_states(hass, init_integration, GONE) == {STATE_UNAVAILABLE}
    assert STATE_UNAVAILABLE not in _battery_states(hass, init_integration, "sub_1")
    coordinator = init_integration.runtime_data.batteries[GONE].coordinator
    assert coordinator.last_exception.translation_key == "unknown_battery"

    await _tick(hass, freezer, 15)  # still gone: still one issue
    assert len(issue_registry.issues) == 1

    mock_backend.snapshots[FLEX_ID_2] = snapshot
    await _tick(hass, freezer, 15)
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None
    assert STATE_UNAVAILABLE not in _battery_states(hass, init_integration, GONE)


async def test_issue_at_setup(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    mock_config_entry: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A battery already gone at set-up: set-up is retried, the issue is there meanwhile."""
    snapshot = mock_backend.snapshots.pop(FLEX_ID_2)
    mock_config_entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None

    mock_backend.snapshots[FLEX_ID_2] = snapshot  # back: the retry sets up and clears the issue
    freezer.tick(timedelta(seconds=60))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert mock_config_entry.state is ConfigEntryState.LOADED
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None
    await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def test_issue_survives_reload_and_goes_with_the_entry(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
) -> None:
    """Unloading keeps the issue (the next poll decides); deleting the entry deletes it."""
    ir.async_create_issue(
        hass, "other", "unrelated", is_fixable=False, severity=ir.IssueSeverity.WARNING,
        translation_key="unrelated",
    )  # fmt: skip
    await _lose_battery(hass, mock_backend, init_integration)
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None

    await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None
    assert issue_registry.async_get_issue("other", "unrelated") is not None


async def test_issue_goes_when_the_entry_is_disabled(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
) -> None:
    """Nothing polls a disabled entry, so its issue goes; enabling it again lets polls decide."""
    await _lose_battery(hass, mock_backend, init_integration)
    assert await hass.config_entries.async_set_disabled_by(
        init_integration.entry_id, ConfigEntryDisabler.USER
    )
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.NOT_LOADED
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None

    assert not await hass.config_entries.async_set_disabled_by(init_integration.entry_id, None)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.SETUP_RETRY
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None


async def test_issue_goes_when_the_battery_is_removed_by_hand(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
) -> None:
    """Removing the battery in the entry's menu (not through the repair) deletes its issue."""
    await _lose_battery(hass, mock_backend, init_integration)
    hass.config_entries.async_remove_subentry(init_integration, GONE)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED
    assert list(init_integration.runtime_data.batteries) == ["sub_1"]
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


# The fix flow


async def test_fix_flow_removes_the_battery(
    hass: HomeAssistant,
    *,
    issue_registry: ir.IssueRegistry,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    repairs_client: Any,
) -> None:
    """Confirming removes the battery's subentry, device and entities, and the issue."""
    await _lose_battery(hass, mock_backend, init_integration)
    devices = dr.async_entries_for_config_entry(device_registry, init_integration.entry_id)
    assert len(devices) == 2

    result = await _start_fix_flow(repairs_client, ISSUE_ID)
    assert result["type"] == FlowResultType.FORM
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"] == {
        "battery": "Cellar battery",
        "entry": "flexconnect test",
    }

    result = await _submit_fix_flow(repairs_client, result["flow_id"])
    assert result["type"] == FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    assert GONE not in init_integration.subentries
    assert init_integration.state is ConfigEntryState.LOADED
    assert list(init_integration.runtime_data.batteries) == ["sub_1"]
    devices = dr.async_entries_for_config_entry(device_registry, init_integration.entry_id)
    assert [device.config_subentry_id for device in devices] == ["sub_1"]
    assert not [
        e
        for e in er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)
        if e.config_subentry_id == GONE
    ]
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None
    assert mock_backend.snapshots.keys() == {FLEX_ID_1}


async def test_fix_flow_aborts_when_the_battery_went_meanwhile(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    repairs_client: Any,
) -> None:
    """Removed by hand while the dialog was open: confirming aborts, nothing else is removed."""
    await _lose_battery(hass, mock_backend, init_integration)
    result = await _start_fix_flow(repairs_client, ISSUE_ID)
    assert result["type"] == FlowResultType.FORM

    # Removed in another window; the reload would delete the issue, so keep the entry unloaded.
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    hass.config_entries.async_remove_subentry(init_integration, GONE)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None

    result = await _submit_fix_flow(repairs_client, result["flow_id"])
    assert result["type"] == FlowResultType.ABORT
    assert result["reason"] == "battery_not_found"
    assert list(init_integration.subentries) == ["sub_1"]
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


@pytest.mark.parametrize(
    "data",
    [
        {"entry_id": "no-such-entry", "subentry_id": GONE},  # the entry was deleted
        {"entry_id": "01JFLEXCONNECTENTRY0000000", "subentry_id": "no-such-subentry"},
        {"entry_id": "01JFLEXCONNECTENTRY0000000"},  # no subentry id
        {"entry_id": 4711, "subentry_id": GONE},  # not an id
        None,
    ],
)
async def test_fix_flow_aborts_when_there_is_no_battery(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    init_integration: MockConfigEntry,
    repairs_client: Any,
    data: dict[str, str | int | float | None] | None,
) -> None:
    """An issue whose entry or subentry no longer exists aborts at once, and goes."""
    ir.async_create_issue(
        hass, DOMAIN, ISSUE_ID, is_fixable=True, severity=ir.IssueSeverity.ERROR,
        translation_key="battery_gone", data=data,
    )  # fmt: skip
    result = await _start_fix_flow(repairs_client, ISSUE_ID)
    assert result["type"] == FlowResultType.ABORT
    assert result["reason"] == "battery_not_found"
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None
    assert GONE in init_integration.subentries


# Translations


@pytest.mark.parametrize(
    "filename", ["strings.json", "translations/en.json", "translations/de.json"]
)
def test_issue_translations(filename: str) -> None:
    """The issue has a title and a fix flow (hassfest: not both description and fix_flow)."""
    issue = json.loads((COMPONENT / filename).read_text(encoding="utf-8"))["issues"]["battery_gone"]
    assert "description" not in issue
    assert set(PLACEHOLDER.findall(issue["title"])) == {"battery", "entry"}
    confirm = issue["fix_flow"]["step"]["confirm"]
    assert set(PLACEHOLDER.findall(confirm["title"])) <= {"battery", "entry"}
    assert set(PLACEHOLDER.findall(confirm["description"])) == {"battery", "entry"}
    assert issue["fix_flow"]["abort"]["battery_not_found"]
    if filename == "translations/en.json":
        reference = json.loads((COMPONENT / "strings.json").read_text(encoding="utf-8"))
        assert issue == reference["issues"]["battery_gone"]
