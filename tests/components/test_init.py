"""Tests of the integration's set-up, unload, reload, devices, manifest and metadata files."""

from __future__ import annotations

import ast
from datetime import timedelta
import json
from pathlib import Path
import re
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigEntryState, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.loader import async_get_integration
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import yaml

from custom_components.battery_bridge.api import BackendKind, ControlMode
from custom_components.battery_bridge.binary_sensor import BINARY_SENSORS
from custom_components.battery_bridge.const import (
    CONF_BATTERY_ID,
    CONF_SCAN_INTERVAL,
    DOMAIN,
    SUBENTRY_BATTERY,
)
from custom_components.battery_bridge.control import BatteryController
from custom_components.battery_bridge.coordinator import BatteryCoordinator
from custom_components.battery_bridge.number import NUMBERS
from custom_components.battery_bridge.runtime import BatteryBridgeData
from custom_components.battery_bridge.select import SELECTS
from custom_components.battery_bridge.sensor import SENSORS

from .conftest import ENODE_ID_2, FEMS_ID, FakeBackend

MANIFEST = Path(__file__).parents[2] / "custom_components" / DOMAIN / "manifest.json"


async def test_async_setup(hass: HomeAssistant) -> None:
    """The domain sets up without configuration."""
    assert await async_setup_component(hass, DOMAIN, {})
    assert DOMAIN in hass.config.components


async def test_manifest_is_valid(hass: HomeAssistant) -> None:
    """The manifest has the keys hassfest wants, in its order, and a valid version."""
    raw = json.loads(MANIFEST.read_text(encoding="utf-8"))
    keys = list(raw)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert raw["domain"] == DOMAIN
    assert raw["name"] == "Battery Bridge"
    assert re.fullmatch(r"\d+\.\d+\.\d+", raw["version"])
    for key in ("codeowners", "config_flow", "documentation", "iot_class", "issue_tracker"):
        assert key in raw
    integration = await async_get_integration(hass, DOMAIN)
    assert integration.domain == DOMAIN
    assert integration.version is not None
    assert str(integration.version) == raw["version"]
    assert integration.config_flow is True


# Set-up, unload, reload, devices (runtime)

COMPONENT = Path(__file__).parents[2] / "custom_components" / DOMAIN
EXCEPTION_KEY = re.compile(r'translation_key="([a-z_]+)"')
QUALITY_SCALE_TIERS = {
    "bronze": {
        "action-setup", "appropriate-polling", "brands", "common-modules",
        "config-flow-test-coverage", "config-flow", "dependency-transparency", "docs-actions",
        "docs-conditions", "docs-high-level-description", "docs-installation-instructions",
        "docs-removal-instructions", "docs-triggers", "entity-event-setup", "entity-unique-id",
        "has-entity-name", "runtime-data", "test-before-configure", "test-before-setup",
        "unique-config-entry",
    },
    "silver": {
        "action-exceptions", "config-entry-unloading", "docs-configuration-parameters",
        "docs-installation-parameters", "entity-unavailable", "integration-owner",
        "log-when-unavailable", "parallel-updates", "reauthentication-flow", "test-coverage",
    },
    "gold": {
        "devices", "diagnostics", "discovery", "discovery-update-info", "docs-data-update",
        "docs-examples", "docs-known-limitations", "docs-supported-devices",
        "docs-supported-functions", "docs-troubleshooting", "docs-use-cases", "dynamic-devices",
        "entity-category", "entity-device-class", "entity-disabled-by-default",
        "entity-translations", "exception-translations", "icon-translations",
        "reconfiguration-flow", "repair-issues", "stale-devices",
    },
    "platinum": {"async-dependency", "inject-websession", "strict-typing"},
}  # fmt: skip
QUALITY_SCALE_RULES = set().union(*QUALITY_SCALE_TIERS.values())


@pytest.mark.parametrize("backend_kind", list(BackendKind))
async def test_setup_and_unload(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """An entry sets up one coordinator and controller per battery subentry and unloads."""
    assert init_integration.state is ConfigEntryState.LOADED
    data = init_integration.runtime_data
    assert isinstance(data, BatteryBridgeData)
    assert data.kind is mock_backend.kind
    assert data.backend is mock_backend
    assert set(data.batteries) == set(init_integration.subentries)
    for subentry_id, battery in data.batteries.items():
        assert isinstance(battery.coordinator, BatteryCoordinator)
        assert isinstance(battery.controller, BatteryController)
        assert battery.subentry_id == subentry_id
        assert battery.coordinator.battery_id in mock_backend.snapshots
        assert battery.controller.active is None
    assert mock_backend.applied == []

    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.NOT_LOADED


@pytest.mark.parametrize("backend_kind", list(BackendKind))
async def test_devices(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
) -> None:
    """One device per battery, tied to its subentry, described by the snapshot's info."""
    devices = dr.async_entries_for_config_entry(device_registry, init_integration.entry_id)
    assert len(devices) == len(mock_backend.snapshots)
    for subentry_id, battery in init_integration.runtime_data.batteries.items():
        info = mock_backend.snapshots[battery.coordinator.battery_id].info
        uid = info.battery_id
        if mock_backend.kind is BackendKind.FEMS:
            uid = f"{init_integration.entry_id}_{uid}"
        device = device_registry.async_get_device_by_identifier(
            (DOMAIN, f"{mock_backend.kind}_{uid}"), init_integration.entry_id
        )
        assert device is not None
        assert device.config_entry_id == init_integration.entry_id
        assert device.config_subentry_id == subentry_id
        assert device.name == init_integration.subentries[subentry_id].title
        assert device.manufacturer == info.manufacturer
        assert device.model == info.model
        assert device.serial_number == info.serial_number
        assert device.sw_version == info.sw_version


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_device_name_falls_back_to_battery_name(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
    mock_backend: FakeBackend,
    mock_config_entry: MockConfigEntry,
) -> None:
    """A subentry without a title names the device after the battery."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        entry_id=mock_config_entry.entry_id,
        data=dict(mock_config_entry.data),
        subentries_data=[
            {
                "data": {CONF_BATTERY_ID: FEMS_ID},
                "subentry_type": SUBENTRY_BATTERY,
                "title": "",
                "unique_id": FEMS_ID,
            }
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    (device,) = dr.async_entries_for_config_entry(device_registry, entry.entry_id)
    assert device.name == "FEMS ess0"
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_no_batteries(
    hass: HomeAssistant, mock_backend: FakeBackend, mock_config_entry: MockConfigEntry
) -> None:
    """An entry without battery subentries loads with nothing to poll."""
    entry = MockConfigEntry(domain=DOMAIN, data=dict(mock_config_entry.data))
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.batteries == {}
    assert mock_backend.snapshot_calls == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_reload_on_options_change(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Changed options reload the entry (a new poll interval takes effect)."""
    before = init_integration.runtime_data
    hass.config_entries.async_update_entry(init_integration, options={CONF_SCAN_INTERVAL: 30})
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED
    assert init_integration.runtime_data is not before
    coordinator = next(iter(init_integration.runtime_data.batteries.values())).coordinator
    assert coordinator.update_interval == timedelta(seconds=30)


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_no_reload_on_title_change(
    hass: HomeAssistant, mock_backend: FakeBackend, init_integration: MockConfigEntry
) -> None:
    """Renaming the entry does not reload it."""
    before = init_integration.runtime_data
    hass.config_entries.async_update_entry(init_integration, title="My FEMS")
    await hass.async_block_till_done()
    assert init_integration.runtime_data is before


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_subentries_added_and_removed(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
) -> None:
    """Removing a battery subentry removes its device and entities; adding one adds them."""
    assert len(dr.async_entries_for_config_entry(device_registry, init_integration.entry_id)) == 2
    hass.config_entries.async_remove_subentry(init_integration, "sub_2")
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED
    assert list(init_integration.runtime_data.batteries) == ["sub_1"]
    assert len(dr.async_entries_for_config_entry(device_registry, init_integration.entry_id)) == 1
    assert hass.states.get("sensor.enphase_iq_state_of_charge") is None
    assert not [
        e
        for e in er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)
        if e.config_subentry_id == "sub_2"
    ]

    hass.config_entries.async_add_subentry(
        init_integration,
        ConfigSubentry(
            data=MappingProxyType({CONF_BATTERY_ID: ENODE_ID_2}),
            subentry_type=SUBENTRY_BATTERY,
            title="Enphase IQ",
            unique_id=ENODE_ID_2,
        ),
    )
    await hass.async_block_till_done()
    assert len(init_integration.runtime_data.batteries) == 2
    assert len(dr.async_entries_for_config_entry(device_registry, init_integration.entry_id)) == 2
    assert hass.states.get("sensor.enphase_iq_state_of_charge").state == "35.0"


# Translations, icons, quality scale


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


_SELECT_MODES = {
    "control_mode": {ControlMode.AUTO, ControlMode.POWER, ControlMode.PCC},
    "operation_mode": {
        ControlMode.SELF_RELIANCE,
        ControlMode.TIME_OF_USE,
        ControlMode.IMPORT_FOCUS,
        ControlMode.EXPORT_FOCUS,
    },
}


def _states_of(platform: str, description: Any) -> list[str]:
    """Return the states an entity can take that need a translation and an icon."""
    if platform == "select":
        return [mode.value for mode in _SELECT_MODES[description.key]]
    return list(getattr(description, "options", None) or [])


def _runtime_descriptions() -> dict[str, tuple[Any, ...]]:
    return {
        "binary_sensor": BINARY_SENSORS,
        "number": NUMBERS,
        "select": SELECTS,
        "sensor": SENSORS,
    }


@pytest.mark.parametrize(
    "filename", ["strings.json", "translations/en.json", "translations/de.json"]
)
def test_translations_complete(filename: str) -> None:
    """Every entity name, enum state, select option and raised exception is translated."""
    strings = _json(COMPONENT / filename)
    for platform, descriptions in _runtime_descriptions().items():
        for description in descriptions:
            entry = strings["entity"][platform][description.translation_key]
            assert entry["name"]
            options = _states_of(platform, description)
            for option in options:
                assert entry["state"][option], (platform, description.key, option)
    used = set()
    for module in ("__init__.py", "coordinator.py", "control.py", "services.py"):
        used |= set(EXCEPTION_KEY.findall((COMPONENT / module).read_text(encoding="utf-8")))
    assert used
    assert used <= set(strings["exceptions"])
    # Every action, its fields and the options of its selects.
    for service, spec in _services().items():
        texts = strings["services"][service]
        assert texts["name"]
        assert texts["description"]
        assert set(texts["fields"]) == set(spec["fields"])
        for field, field_spec in spec["fields"].items():
            assert texts["fields"][field]["name"], (service, field)
            assert texts["fields"][field]["description"], (service, field)
            if select := field_spec["selector"].get("select"):
                options = strings["selector"][select["translation_key"]]["options"]
                assert set(options) == set(select["options"])
    # The English strings and the shipped English translation agree.
    if filename == "translations/en.json":
        reference = _json(COMPONENT / "strings.json")
        assert strings["entity"] == reference["entity"]
        assert strings["exceptions"] == reference["exceptions"]
        assert strings["services"] == reference["services"]
        assert strings["selector"] == reference["selector"]


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(
        (COMPONENT / "services.yaml").read_text(encoding="utf-8")
    )
    return services


async def test_actions_registered(hass: HomeAssistant) -> None:
    """The actions in services.yaml are the ones registered at set-up of the domain."""
    assert await async_setup_component(hass, DOMAIN, {})
    assert set(hass.services.async_services_for_domain(DOMAIN)) == set(_services())


def test_icons() -> None:
    """Entities without a device class icon have one; enum sensors and selects per state."""
    icons = _json(COMPONENT / "icons.json")["entity"]
    for platform, descriptions in _runtime_descriptions().items():
        for description in descriptions:
            if description.device_class is not None and description.device_class not in ("enum",):
                continue
            entry = icons[platform][description.translation_key]
            assert entry["default"].startswith("mdi:")
            states = _states_of(platform, description)
            for state in states:
                assert entry["state"][state].startswith("mdi:"), (description.key, state)
    services = _json(COMPONENT / "icons.json")["services"]
    assert set(services) == set(_services())
    for service in services.values():
        assert service["service"].startswith("mdi:")


def test_quality_scale() -> None:
    """Every rule of the scale is listed with a status and a reason; nothing unknown."""
    rules = yaml.safe_load((COMPONENT / "quality_scale.yaml").read_text(encoding="utf-8"))["rules"]
    assert set(rules) == QUALITY_SCALE_RULES
    for rule, value in rules.items():
        assert value["status"] in ("done", "todo", "exempt"), rule
        assert value["comment"], rule


def test_manifest_claims_the_tier_the_rules_earn() -> None:
    """manifest.json's quality_scale is the highest tier with no rule left to do, up to it."""
    rules = yaml.safe_load((COMPONENT / "quality_scale.yaml").read_text(encoding="utf-8"))["rules"]
    earned = None
    for tier, tier_rules in QUALITY_SCALE_TIERS.items():  # bronze first
        if any(rules[rule]["status"] == "todo" for rule in tier_rules):
            break
        earned = tier
    manifest = json.loads((COMPONENT / "manifest.json").read_text(encoding="utf-8"))
    assert manifest.get("quality_scale") == earned


@pytest.mark.parametrize("module", ["binary_sensor.py", "number.py", "select.py", "sensor.py"])
def test_parallel_updates(module: str) -> None:
    """Every platform sets PARALLEL_UPDATES as a plain assignment (what hassfest looks for)."""
    tree = ast.parse((COMPONENT / module).read_text(encoding="utf-8"))
    values = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "PARALLEL_UPDATES" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    ]
    assert values == [1 if module in ("number.py", "select.py") else 0]
