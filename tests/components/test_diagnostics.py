"""Tests of the diagnostics."""

from __future__ import annotations

import json

from homeassistant.components.diagnostics import REDACTED
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.battery_bridge.api import BackendKind

from .conftest import ENODE_CLIENT_ID, ENODE_CLIENT_SECRET, ENODE_USER_ID, FEMS_PASSWORD

SECRETS = (FEMS_PASSWORD, ENODE_CLIENT_ID, ENODE_CLIENT_SECRET, ENODE_USER_ID, "59.917", "10.719")


@pytest.mark.parametrize("backend_kind", list(BackendKind))
async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """Diagnostics hold settings and each battery's data, and no secret, owner, location or host."""
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert diagnostics == snapshot
    dumped = json.dumps(diagnostics)
    for secret in SECRETS:
        assert secret not in dumped
    if host := init_integration.data.get(CONF_HOST):  # FEMS, FlexConnect: the device's address
        assert host not in dumped
        assert diagnostics["entry"]["data"][CONF_HOST] == REDACTED
    assert len(diagnostics["batteries"]) == len(init_integration.subentries)


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS])
async def test_diagnostics_active_intent(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, init_integration: MockConfigEntry
) -> None:
    """The intent being kept alive shows in the diagnostics."""
    controller = next(iter(init_integration.runtime_data.batteries.values())).controller
    await controller.async_set_power(-1500)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    battery = next(iter(diagnostics["batteries"].values()))
    assert battery["keepalive_active"] is True
    assert battery["active_intent"]["command"] == {
        "mode": "power",
        "setpoint_w": -1500,
        "charge_limit_w": None,
        "discharge_limit_w": None,
    }
