"""Home Assistant's battery triggers (2026.4+) fire on the Charging binary sensor (README example)."""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import automation
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.battery_bridge.api import BackendKind

from .conftest import FEMS_ID, FakeBackend

pytestmark = [
    pytest.mark.parametrize("platforms", [[Platform.BINARY_SENSOR, Platform.SENSOR]]),
    pytest.mark.parametrize("backend_kind", [BackendKind.FEMS]),
]

CHARGING = "binary_sensor.fems_ess0_charging"


async def test_started_and_stopped_charging(
    hass: HomeAssistant,
    mock_backend: FakeBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The README's automation: battery.started_charging / stopped_charging on our sensor."""
    calls: list[str] = []

    @callback
    def record(call: ServiceCall) -> None:
        calls.append(call.data["event"])

    hass.services.async_register("test", "record", record)
    triggers = (("started", "battery.started_charging"), ("stopped", "battery.stopped_charging"))
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: [
                {
                    "triggers": [{"trigger": trigger, "target": {"entity_id": CHARGING}}],
                    "actions": [{"action": "test.record", "data": {"event": event}}],
                }
                for event, trigger in triggers
            ]
        },
    )
    await hass.async_block_till_done()
    assert hass.states.get(CHARGING).state == "off"  # the fake FEMS discharges (+1200 W)

    for power in (-2500.0, -2400.0, 300.0):
        mock_backend.set_state(FEMS_ID, power_w=power)
        freezer.tick(timedelta(seconds=10))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()

    assert calls == ["started", "stopped"]
