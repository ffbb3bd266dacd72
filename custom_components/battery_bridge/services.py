"""Actions of Battery Bridge: start and stop a timed override of a battery, plan its charging.

Registered once in ``async_setup``; each call finds the battery by its device and checks at call
time that its entry is loaded. The battery's controller validates and writes (control.py).
"""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_DEVICE_ID, ATTR_MODE
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
import probatio as vol

from .api import OverrideMode
from .const import DOMAIN
from .plan_service import CANCEL_PLAN_SCHEMA, PLAN_CHARGE_SCHEMA, async_plan_charge
from .runtime import BatteryBridgeConfigEntry, BatteryRuntime

SERVICE_START_OVERRIDE = "start_override"
SERVICE_STOP_OVERRIDE = "stop_override"
SERVICE_PLAN_CHARGE = "plan_charge"
SERVICE_CANCEL_PLAN = "cancel_plan"
ATTR_POWER = "power"
ATTR_DURATION = "duration"
ATTR_UNTIL_SOC = "until_soc"

START_OVERRIDE_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): cv.string,
        vol.Required(ATTR_MODE): vol.All(cv.string, vol.Coerce(OverrideMode)),
        vol.Optional(ATTR_POWER): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional(ATTR_DURATION): vol.All(cv.time_period, cv.positive_timedelta),
        vol.Optional(ATTR_UNTIL_SOC): vol.All(vol.Coerce(float), vol.Range(min=0, max=100)),
    }
)
STOP_OVERRIDE_SCHEMA = vol.Schema({vol.Required(ATTR_DEVICE_ID): cv.string})


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions of the integration."""

    async def async_start_override(call: ServiceCall) -> None:
        battery = _battery(hass, call.data[ATTR_DEVICE_ID])
        await battery.controller.async_start_override(
            call.data[ATTR_MODE],
            power_w=call.data.get(ATTR_POWER),
            duration=call.data.get(ATTR_DURATION),
            until_soc=call.data.get(ATTR_UNTIL_SOC),
        )

    async def async_stop_override(call: ServiceCall) -> None:
        await _battery(hass, call.data[ATTR_DEVICE_ID]).controller.async_stop_override()

    hass.services.async_register(
        DOMAIN, SERVICE_START_OVERRIDE, async_start_override, schema=START_OVERRIDE_SCHEMA
    )
    hass.services.async_register(
        DOMAIN, SERVICE_STOP_OVERRIDE, async_stop_override, schema=STOP_OVERRIDE_SCHEMA
    )

    async def async_plan(call: ServiceCall) -> ServiceResponse:
        return await async_plan_charge(hass, _battery(hass, call.data[ATTR_DEVICE_ID]), call.data)

    async def async_cancel_plan(call: ServiceCall) -> None:
        await _battery(hass, call.data[ATTR_DEVICE_ID]).planner.async_cancel()

    hass.services.async_register(
        DOMAIN,
        SERVICE_PLAN_CHARGE,
        async_plan,
        schema=PLAN_CHARGE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN, SERVICE_CANCEL_PLAN, async_cancel_plan, schema=CANCEL_PLAN_SCHEMA
    )


def _battery(hass: HomeAssistant, device_id: str) -> BatteryRuntime:
    """Return the battery of a Battery Bridge device whose entry is loaded."""
    device = dr.async_get(hass).async_get(device_id)
    entry: BatteryBridgeConfigEntry | None = (
        None if device is None else hass.config_entries.async_get_entry(device.config_entry_id)
    )
    if device is not None and entry is not None and entry.domain == DOMAIN:
        if entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"entry": entry.title},
            )
        if (
            battery := entry.runtime_data.batteries.get(device.config_subentry_id or "")
        ) is not None:
            return battery
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="device_not_found",
        translation_placeholders={"device_id": device_id},
    )
