"""The integration against both FEMS firmware families: re-authentication at runtime.

Before 2025.4 a wrong password is an HTTP 401 with JSON-RPC code 1003; since then it is a 500
Jetty error page that says "Authentication failed". Either must start the reauth flow.
"""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.battery_bridge.config_flow import SECTION_ADVANCED
from custom_components.battery_bridge.const import CONF_CAN_WRITE, CONF_ESS_ID, DOMAIN
from simulator import fems as fems_sim
from simulator.fems import Firmware
from tests.conftest import StartApp

pytestmark = pytest.mark.usefixtures("socket_enabled")


async def test_password_change_starts_reauth(
    hass: HomeAssistant, start_app: StartApp, fems_firmware: Firmware
) -> None:
    """The owner changes the password: the next poll starts reauth; the new one is accepted."""
    app = fems_sim.create_app(firmware=fems_firmware)
    server = await start_app(app)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "fems"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_HOST: "127.0.0.1",
            CONF_PORT: server.port,
            CONF_PASSWORD: "owner",
            SECTION_ADVANCED: {CONF_ESS_ID: "ess0"},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    assert entry.data[CONF_CAN_WRITE] is True
    assert hass.config_entries.flow.async_progress() == []

    passwords = app[fems_sim.PASSWORDS]
    passwords["new-owner"] = passwords.pop("owner")
    for battery in entry.runtime_data.batteries.values():
        await battery.coordinator.async_refresh()
    await hass.async_block_till_done()

    flows = hass.config_entries.flow.async_progress()
    assert [(flow["context"]["source"], flow["context"]["entry_id"]) for flow in flows] == [
        (SOURCE_REAUTH, entry.entry_id)
    ]
    result = await hass.config_entries.flow.async_configure(
        flows[0]["flow_id"], {CONF_PASSWORD: "owner"}
    )
    assert result["errors"] == {CONF_PASSWORD: "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flows[0]["flow_id"], {CONF_PASSWORD: "new-owner"}
    )
    await hass.async_block_till_done()
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_PASSWORD] == "new-owner"
    assert entry.data[CONF_CAN_WRITE] is True
    assert entry.state is ConfigEntryState.LOADED
