"""The tests-only fourth backend (memory_backend.py) through the generic code, end to end.

Registered with one line, it gets a config flow (user step, battery choice, add battery, options),
entities (a state-of-charge sensor, a setpoint number from its capabilities) and control (setting
the number reaches the backend), with no change to the integration.
"""

from __future__ import annotations

from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntryState,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
import pytest

from custom_components.battery_bridge.api import ControlCommand, ControlMode
from custom_components.battery_bridge.config_flow import CONF_BATTERY_IDS
from custom_components.battery_bridge.const import (
    CONF_BACKEND,
    CONF_BATTERY_ID,
    CONF_DECLINED_BATTERIES,
    CONF_SCAN_INTERVAL,
    DOMAIN,
    SUBENTRY_BATTERY,
)

from .memory_backend import BANKS, KIND, SETTING_BANK, MemoryBattery, register


@pytest.fixture(autouse=True)
def bank(monkeypatch: pytest.MonkeyPatch) -> dict[str, MemoryBattery]:
    """Register the memory backend and give it a bank of two batteries."""
    register(monkeypatch)  # the one line a fourth backend needs
    batteries = {"mem-1": MemoryBattery("Cellar", soc=64.0), "mem-2": MemoryBattery("Garage")}
    monkeypatch.setitem(BANKS, "home", batteries)
    return batteries


async def test_flow_entities_and_control(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, bank: dict[str, MemoryBattery]
) -> None:
    flow = hass.config_entries.flow
    result = await flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert list(result["menu_options"]) == ["flexconnect", "fems", "enode", KIND]
    result = await flow.async_configure(result["flow_id"], {"next_step_id": KIND})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == KIND
    assert [str(key) for key in result["data_schema"].schema] == [SETTING_BANK]

    result = await flow.async_configure(result["flow_id"], {SETTING_BANK: "attic"})
    assert result["errors"] == {"base": "cannot_connect"}  # no such bank

    result = await flow.async_configure(result["flow_id"], {SETTING_BANK: " home "})
    assert result["step_id"] == f"{KIND}_batteries"
    result = await flow.async_configure(result["flow_id"], {CONF_BATTERY_IDS: ["mem-1"]})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Memory bank home"
    assert result["data"] == {
        CONF_BACKEND: KIND,
        SETTING_BANK: "home",
        CONF_DECLINED_BATTERIES: ["mem-2"],
    }
    entry = result["result"]
    assert entry.unique_id == "memory:home"
    assert entry.state is ConfigEntryState.LOADED

    # Entities from the snapshot and the capabilities
    soc = entity_registry.async_get_entity_id("sensor", DOMAIN, "memory_mem-1_state_of_charge")
    setpoint = entity_registry.async_get_entity_id("number", DOMAIN, "memory_mem-1_power_setpoint")
    assert soc is not None
    assert setpoint is not None
    assert float(hass.states.get(soc).state) == 64.0  # type: ignore[union-attr]

    # Control: the number reaches the backend through the controller
    await hass.services.async_call(
        "number", "set_value", {"entity_id": setpoint, "value": -1500}, blocking=True
    )
    assert bank["mem-1"].commands == [ControlCommand(ControlMode.POWER, -1500)]

    # The declined battery can be added later
    subentries = hass.config_entries.subentries
    result = await subentries.async_init(
        (entry.entry_id, SUBENTRY_BATTERY), context={"source": SOURCE_USER}
    )
    assert result["step_id"] == KIND
    result = await subentries.async_configure(result["flow_id"], {CONF_BATTERY_ID: "mem-2"})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Garage"
    assert entity_registry.async_get_entity_id("sensor", DOMAIN, "memory_mem-2_state_of_charge")

    # Options from the spec's poll intervals
    result = await hass.config_entries.options.async_init(entry.entry_id)
    scan_key = next(iter(result["data_schema"].schema))
    assert str(scan_key) == CONF_SCAN_INTERVAL
    assert scan_key.default() == 30
    assert [str(key) for key in result["data_schema"].schema] == [CONF_SCAN_INTERVAL]

    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_and_no_reauth(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reconfiguration takes the spec's fields; without a secret there is no reauthentication."""
    monkeypatch.setitem(BANKS, "cellar", {"mem-1": MemoryBattery("Cellar")})
    flow = hass.config_entries.flow
    result = await flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await flow.async_configure(result["flow_id"], {"next_step_id": KIND})
    result = await flow.async_configure(result["flow_id"], {SETTING_BANK: "home"})
    result = await flow.async_configure(result["flow_id"], {CONF_BATTERY_IDS: ["mem-1"]})
    await hass.async_block_till_done()
    entry = result["result"]

    result = await flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    assert result["step_id"] == f"reconfigure_{KIND}"
    result = await flow.async_configure(result["flow_id"], {SETTING_BANK: "cellar"})
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert entry.unique_id == "memory:cellar"
    assert entry.title == "Memory bank cellar"

    result = await flow.async_init(
        DOMAIN, context={"source": SOURCE_REAUTH, "entry_id": entry.entry_id}, data=entry.data
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_not_supported"
    assert await hass.config_entries.async_unload(entry.entry_id)
