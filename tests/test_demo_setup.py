"""The pure parts of scripts/demo_setup.py: registry to batteries, dashboard, Energy sources."""

from __future__ import annotations

import importlib.util
from pathlib import Path
import sys
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "demo_setup.py"
FEMS_UID = "fems_01ENTRY_ess0"
ENODE_UID = "enode_8a1f0c3e-2b7d"


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("battery_bridge_demo_setup", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def _entity(entity_id: str, unique_id: str, device_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "entity_id": entity_id,
        "unique_id": unique_id,
        "device_id": device_id,
        "platform": "battery_bridge",
        "disabled_by": None,
        **extra,
    }


FEMS_KEYS = (
    "state_of_charge",
    "battery_power",
    "control_mode",
    "power_setpoint",
    "override",
    "override_end",
    "energy_charged",
    "energy_discharged",
    "usable_capacity",
    "grid_power",
    "pv_power",
    "grid_import_energy",
    "grid_export_energy",
    "pv_energy",
    "charge_power_limit",  # not used by the set-up
)
ENODE_KEYS = (
    "state_of_charge",
    "battery_power",
    "operation_mode",
    "command_pending",
    "command_status",
    "override",
    "override_end",
    "energy_charged",
    "energy_discharged",
)


def _registry() -> tuple[list[dict], list[dict], dict[str, dict]]:
    devices = [
        {"id": "dev-fems", "name": "FEMS", "name_by_user": None},
        {"id": "dev-enode", "name": "Powerwall", "name_by_user": "Garage"},
        {"id": "dev-other", "name": "Backup", "name_by_user": None},
    ]
    entities = [_entity(f"x.fems_{key}", f"{FEMS_UID}_{key}", "dev-fems") for key in FEMS_KEYS] + [
        _entity(f"x.garage_{key}", f"{ENODE_UID}_{key}", "dev-enode") for key in ENODE_KEYS
    ]
    entities += [
        _entity("x.disabled", f"{ENODE_UID}_charging", "dev-enode", disabled_by="user"),
        _entity("x.foreign", "whatever_state_of_charge", "dev-other", platform="backup"),
        _entity("x.no_device", f"{FEMS_UID}_pv_power", None),
    ]
    states = {
        "x.fems_power_setpoint": {"state": "0", "attributes": {"min": -9250, "max": 10000}},
        "x.fems_usable_capacity": {"state": "10", "attributes": {"unit_of_measurement": "kWh"}},
    }
    return devices, entities, states


def test_entity_key(demo: ModuleType) -> None:
    assert demo.entity_key(f"{FEMS_UID}_state_of_charge") == "state_of_charge"
    assert demo.entity_key(f"{FEMS_UID}_override_end") == "override_end"
    assert demo.entity_key(f"{FEMS_UID}_pv_energy") == "pv_energy"
    assert demo.entity_key(f"{FEMS_UID}_charge_power_limit") is None


def test_override_power_and_capacity(demo: ModuleType) -> None:
    assert demo.override_power({"attributes": {"min": -9250, "max": 10000}}) == 9200
    assert demo.override_power({"attributes": {"min": -50, "max": 50}}) is None
    assert demo.override_power({"attributes": {"min": "x", "max": 5}}) is None
    assert demo.override_power(None) is None
    wh = {"state": "13500", "attributes": {"unit_of_measurement": "Wh"}}
    assert demo.capacity_kwh(wh) == 13.5
    assert demo.capacity_kwh({"state": "unknown", "attributes": {}}) is None
    assert demo.capacity_kwh({"state": "5", "attributes": {"unit_of_measurement": "%"}}) is None
    assert demo.capacity_kwh({"state": "0", "attributes": {"unit_of_measurement": "kWh"}}) is None
    assert demo.capacity_kwh(None) is None


def test_batteries_from_registry(demo: ModuleType) -> None:
    fems, garage = demo.batteries_from_registry(*_registry())
    assert (fems.name, fems.device_id, fems.override_power_w, fems.capacity_kwh) == (
        "FEMS",
        "dev-fems",
        9200,
        10.0,
    )
    assert set(fems.entities) == set(FEMS_KEYS) - {"charge_power_limit"}
    assert (garage.name, garage.override_power_w, garage.capacity_kwh) == ("Garage", None, None)
    assert set(garage.entities) == set(ENODE_KEYS)  # the disabled one is left out


def _cards(section: dict) -> dict[str, dict]:
    return {
        card.get("entity") or card.get("name") or card["type"]: card for card in section["cards"]
    }


def test_dashboard(demo: ModuleType) -> None:
    fems, garage = demo.batteries_from_registry(*_registry())
    config = demo.build_dashboard([fems, garage])
    (view,) = config["views"]
    assert view["type"] == "sections"
    assert config["title"] == "Batteries"
    fems_section, garage_section = view["sections"]
    cards = _cards(fems_section)
    assert fems_section["cards"][0] == {
        "type": "heading",
        "heading": "FEMS",
        "heading_style": "title",
    }
    assert cards["x.fems_state_of_charge"]["type"] == "gauge"
    assert cards["x.fems_control_mode"]["features"] == [{"type": "select-options"}]
    assert cards["x.fems_power_setpoint"]["features"][0]["type"] == "numeric-input"
    assert "x.fems_override_end" in cards
    charge = cards["Charge 1 h"]["tap_action"]
    assert charge["perform_action"] == "battery_bridge.start_override"
    assert charge["data"] == {
        "device_id": "dev-fems",
        "mode": "charge",
        "duration": {"hours": 1},
        "power": 9200,
    }
    assert "power" not in cards["Hold 1 h"]["tap_action"]["data"]
    assert cards["Stop override"]["tap_action"]["data"] == {"device_id": "dev-fems"}
    assert "x.fems_energy_charged" not in cards  # Energy dashboard material
    garage_cards = _cards(garage_section)
    assert "x.garage_operation_mode" in garage_cards
    assert "x.garage_command_status" in garage_cards
    assert not any("power_setpoint" in key for key in garage_cards)
    assert "power" not in garage_cards["Discharge 1 h"]["tap_action"]["data"]


def test_dashboard_without_controls(demo: ModuleType) -> None:
    battery = demo.DemoBattery("Read only", "dev", {"state_of_charge": "sensor.soc"})
    cards = demo.battery_section(battery)["cards"]
    assert [card["type"] for card in cards] == ["heading", "gauge"]


def test_energy_sources(demo: ModuleType) -> None:
    fems, garage = demo.batteries_from_registry(*_registry())
    grid, solar, fems_battery, garage_battery = demo.energy_sources([fems, garage])
    assert fems_battery == {
        "type": "battery",
        "stat_energy_from": "x.fems_energy_discharged",
        "stat_energy_to": "x.fems_energy_charged",
        "name": "FEMS",
        "power_config": {"stat_rate": "x.fems_battery_power"},
        "stat_soc": "x.fems_state_of_charge",
        "capacity": 10.0,
    }
    assert "capacity" not in garage_battery
    assert grid["stat_energy_from"] == "x.fems_grid_import_energy"
    assert grid["stat_energy_to"] == "x.fems_grid_export_energy"
    assert grid["power_config"] == {"stat_rate": "x.fems_grid_power"}
    assert solar == {
        "type": "solar",
        "stat_energy_from": "x.fems_pv_energy",
        "config_entry_solar_forecast": None,
        "name": "FEMS PV",
        "stat_rate": "x.fems_pv_power",
    }
    saved = demo.as_saved([fems_battery, solar])
    assert saved[0]["stat_rate"] == "x.fems_battery_power"
    assert saved[1] == solar


def test_energy_sources_validate_with_home_assistant(demo: ModuleType) -> None:
    from homeassistant.components.energy.data import ENERGY_SOURCE_SCHEMA

    sources = demo.energy_sources(demo.batteries_from_registry(*_registry()))
    assert ENERGY_SOURCE_SCHEMA(sources) == sources
    battery_only = demo.DemoBattery(
        "B", "d", {"energy_charged": "sensor.in", "energy_discharged": "sensor.out"}
    )
    assert demo.energy_sources([battery_only]) == [
        {
            "type": "battery",
            "stat_energy_from": "sensor.out",
            "stat_energy_to": "sensor.in",
            "name": "B",
        }
    ]


def test_should_write(demo: ModuleType) -> None:
    assert demo.should_write(None, None, {"a": 1})  # nothing there yet
    assert demo.should_write([], None, [1])
    assert demo.should_write({"a": 0}, {"a": 0}, {"a": 1})  # still ours: update
    assert not demo.should_write({"a": 1}, {"a": 0}, {"a": 1})  # up to date
    assert not demo.should_write({"a": 2}, {"a": 0}, {"a": 1})  # edited in the UI


def test_docs_dashboard_in_step(demo: ModuleType) -> None:
    """docs/dashboard.yaml is what --write-example writes (regenerate it after a change)."""
    text = (ROOT / "docs" / "dashboard.yaml").read_text(encoding="utf-8")
    assert text == demo.example_yaml()
    assert yaml.safe_load(text) == demo.build_dashboard([demo.EXAMPLE_BATTERY])
