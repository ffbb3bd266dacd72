"""The LLM API: its tools call the intents, with the controller's checks and the exposure rules."""

from __future__ import annotations

from typing import Any

from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import llm
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.battery_bridge.api import BackendKind, ControlCommand, ControlMode
from custom_components.battery_bridge.const import DOMAIN
from custom_components.battery_bridge.llm_api import LLM_API_ID, LLM_API_NAME

from .conftest import FEMS_ID, FakeBackend, fems_snapshots
from .test_conversation import expose

CONTEXT = llm.LLMContext(
    platform="test", context=Context(), language="en", assistant="conversation", device_id=None
)


@pytest.fixture
async def api(hass: HomeAssistant, init_integration: MockConfigEntry) -> llm.APIInstance:
    """The API, with the intents registered and every entity of the entry exposed."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "intent", {})
    expose(hass, init_integration)
    await hass.async_block_till_done()
    return await llm.async_get_api(hass, LLM_API_ID, CONTEXT)


async def call(api: llm.APIInstance, tool: str, **args: Any) -> dict[str, Any]:
    result = await api.async_call_tool(llm.ToolInput(tool_name=tool, tool_args=args))
    data: dict[str, Any] = dict(result.data)
    return data


def spoken(data: dict[str, Any]) -> str:
    text: str = data["speech"]["plain"]["speech"]
    return text


async def test_api_registered_once(hass: HomeAssistant, api: llm.APIInstance) -> None:
    (ours,) = [item for item in llm.async_get_apis(hass) if item.id == LLM_API_ID]
    assert ours.name == LLM_API_NAME
    assert {tool.name for tool in api.tools} == {
        "battery_bridge_get_state",
        "battery_bridge_set_power",
        "battery_bridge_set_mode",
        "battery_bridge_start_override",
        "battery_bridge_stop_override",
    }
    assert all(tool.integration == DOMAIN for tool in api.tools)
    read = next(tool for tool in api.tools if tool.name == "battery_bridge_get_state")
    assert read.annotations.read_only
    assert "- FEMS ess0 (modes: auto, power; setpoint -5000 W to 5000 W)" in api.api_prompt


async def test_tools(hass: HomeAssistant, api: llm.APIInstance, mock_backend: FakeBackend) -> None:
    data = await call(api, "battery_bridge_get_state", battery="FEMS ess0")
    assert data["response_type"] == "query_answer"
    assert data["speech_slots"]["soc"] == 72.0
    assert data["speech_slots"]["power"] == 1200.0
    assert data["speech_slots"]["modes"] == ["auto", "power"]
    data = await call(api, "battery_bridge_set_power", battery="fems ess0", power=-1500)
    assert spoken(data) == "FEMS ess0 charges with 1500 W."
    data = await call(api, "battery_bridge_set_mode", battery="FEMS ess0", mode="auto")
    assert spoken(data) == "FEMS ess0 is set to Auto."
    data = await call(
        api, "battery_bridge_start_override", battery="FEMS ess0", mode="charge", duration=30
    )
    assert spoken(data).startswith("FEMS ess0: override Charging until ")
    data = await call(api, "battery_bridge_stop_override", battery="FEMS ess0")
    assert spoken(data) == "Stopped the override of FEMS ess0."
    assert mock_backend.applied == [
        (FEMS_ID, ControlCommand(mode=ControlMode.POWER, setpoint_w=-1500)),
        (FEMS_ID, ControlCommand(mode=ControlMode.AUTO)),
        (FEMS_ID, ControlCommand(mode=ControlMode.POWER, setpoint_w=-5000)),
        (FEMS_ID, ControlCommand(mode=ControlMode.AUTO)),
    ]


async def test_tool_errors(
    hass: HomeAssistant, api: llm.APIInstance, mock_backend: FakeBackend
) -> None:
    """Errors come back as error responses with the spoken reason."""
    data = await call(api, "battery_bridge_set_power", battery="FEMS ess0", power=6000)
    assert data["response_type"] == "error"
    assert data["data"]["code"] == "failed_to_handle"
    assert "outside the range the battery allows (-5000 W to 5000 W)" in spoken(data)
    data = await call(api, "battery_bridge_set_mode", battery="FEMS ess0", mode="export_focus")
    assert spoken(data) == "FEMS ess0 does not offer the mode Export focus. Modes: Auto, Power."
    data = await call(api, "battery_bridge_get_state", battery="Powerwall")
    assert data["data"]["code"] == "no_valid_targets"
    assert mock_backend.applied == []


async def test_prompt_follows_exposure(
    hass: HomeAssistant, api: llm.APIInstance, init_integration: MockConfigEntry
) -> None:
    expose(hass, init_integration, "number", "select", exposed=False)
    instance = await llm.async_get_api(hass, LLM_API_ID, CONTEXT)
    assert "control not exposed" in instance.api_prompt
    expose(hass, init_integration, exposed=False)
    instance = await llm.async_get_api(hass, LLM_API_ID, CONTEXT)
    assert instance.api_prompt.endswith("Batteries:\n- none")


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
@pytest.mark.parametrize("fake_snapshots", [pytest.param(fems_snapshots(can_write=False), id="ro")])
async def test_prompt_read_only(hass: HomeAssistant, api: llm.APIInstance) -> None:
    assert "- FEMS ess0 (read-only)" in api.api_prompt
    data = await call(api, "battery_bridge_stop_override", battery="FEMS ess0")
    assert spoken(data) == "FEMS ess0 is read-only."
