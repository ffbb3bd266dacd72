"""Intents of Battery Bridge: read a battery, set its power or mode, start and stop an override.

Registered by Home Assistant's ``intent`` integration (``async_setup_intents``). The handlers use
the battery's controller, like the entities and actions do, so its limits and errors apply; every
failure is answered with a spoken, translated error response (never raised). Slots: ``battery``
(a name or a device id) and per intent ``what`` / ``power`` (W, + = discharge) / ``mode`` /
``duration`` (minutes) / ``until_soc`` (%).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv, intent
from homeassistant.util import dt as dt_util
import probatio as vol

from .control import power_limits, settable_modes
from .overrides import SETPOINT_SIGN, OverrideMode
from .voice import (
    Speech,
    VoiceBattery,
    VoiceError,
    async_exposed,
    async_find_battery,
    async_resolve_mode,
    async_speech,
)

INTENT_GET_STATE: Final = "BatteryBridgeGetState"
INTENT_SET_POWER: Final = "BatteryBridgeSetPower"
INTENT_SET_MODE: Final = "BatteryBridgeSetMode"
INTENT_START_OVERRIDE: Final = "BatteryBridgeStartOverride"
INTENT_STOP_OVERRIDE: Final = "BatteryBridgeStopOverride"

SLOT_BATTERY: Final = "battery"
SLOT_WHAT: Final = "what"
SLOT_POWER: Final = "power"
SLOT_MODE: Final = "mode"
SLOT_DURATION: Final = "duration"
SLOT_UNTIL_SOC: Final = "until_soc"
STATE_PARTS: Final = ("soc", "power", "mode", "setpoint", "override")
WHAT_ALL: Final = "all"

_BATTERY = vol.Required(SLOT_BATTERY, description="The battery's name, as listed")


def _watts(value: float) -> str:
    return f"{abs(round(value))} W"


def _number(value: float) -> str:
    return f"{value:g}"


class BatteryIntentHandler(intent.IntentHandler):
    """Find the battery, run the intent, answer in the request's language (errors too)."""

    control = False
    """Whether the intent writes (then a control entity must be exposed)."""

    async def async_handle(self, intent_obj: intent.Intent) -> intent.IntentResponse:
        """Validate the slots, find the battery and answer."""
        hass = intent_obj.hass
        slots = {
            key: slot["value"] for key, slot in self.async_validate_slots(intent_obj.slots).items()
        }
        speech = await async_speech(hass, intent_obj.language)
        response = intent_obj.create_response()
        try:
            battery = _battery(hass, slots[SLOT_BATTERY], intent_obj.assistant, self.control)
            response.async_set_results(
                [
                    intent.IntentResponseTarget(
                        name=battery.name,
                        type=intent.IntentResponseTargetType.DEVICE,
                        id=battery.device.id,
                    )
                ]
            )
            text = await self.async_run(hass, battery, slots, speech, response)
        except VoiceError as err:
            response.async_set_error(err.code, speech.say(err.key, **err.placeholders))
        except HomeAssistantError as err:
            response.async_set_error(
                intent.IntentResponseErrorCode.FAILED_TO_HANDLE, speech.error(err)
            )
        else:
            response.async_set_speech(text)
        return response

    async def async_run(
        self,
        hass: HomeAssistant,
        battery: VoiceBattery,
        slots: dict[str, Any],
        speech: Speech,
        response: intent.IntentResponse,
    ) -> str:
        """Do the intent and return what to say."""
        raise NotImplementedError


def _battery(hass: HomeAssistant, name: str, assistant: str | None, control: bool) -> VoiceBattery:
    """Return the battery an intent is for; raise ``VoiceError`` when it cannot serve it."""
    battery = async_find_battery(hass, name, assistant)
    if not battery.runtime.coordinator.last_update_success:
        raise VoiceError("voice_unavailable", battery=battery.name)
    if not control:
        return battery
    if not settable_modes(battery.runtime.coordinator.data.capabilities):
        raise VoiceError("voice_read_only", battery=battery.name)
    if not async_exposed(hass, battery, assistant, control=True):
        raise VoiceError(
            "voice_control_not_exposed",
            intent.IntentResponseErrorCode.NO_VALID_TARGETS,
            battery=battery.name,
        )
    return battery


class GetStateIntentHandler(BatteryIntentHandler):
    """Tell the state of charge, power, mode, setpoint and override of a battery."""

    intent_type = INTENT_GET_STATE
    description = (
        "Reads a Battery Bridge battery: state of charge (soc), power, mode, power setpoint, "
        "override, or all of them. Power is in W, positive when discharging, negative when charging."
    )

    @property
    def slot_schema(self) -> dict[Any, Any]:
        """Return the slots."""
        return {
            _BATTERY: cv.string,
            vol.Optional(SLOT_WHAT, description="What to read (default all)"): vol.In(
                [*STATE_PARTS, WHAT_ALL]
            ),
        }

    async def async_run(
        self,
        hass: HomeAssistant,
        battery: VoiceBattery,
        slots: dict[str, Any],
        speech: Speech,
        response: intent.IntentResponse,
    ) -> str:
        """Answer with the parts asked for; the values also go into the speech slots."""
        response.response_type = intent.IntentResponseType.QUERY_ANSWER
        what = slots.get(SLOT_WHAT, WHAT_ALL)
        parts = STATE_PARTS if what == WHAT_ALL else (what,)
        values = _state_values(battery)
        response.async_set_speech_slots({"battery": battery.name, **values})
        return " ".join(_describe(part, battery, values, speech) for part in parts)


def _state_values(battery: VoiceBattery) -> dict[str, Any]:
    """Return what the battery's entities show: soc, power, mode, setpoint and override."""
    controller = battery.runtime.controller
    snapshot = battery.runtime.coordinator.data
    capabilities = snapshot.capabilities
    # The same view as the mode select and the setpoint number (never the FEMS applied power).
    displayed = controller.displayed_mode()
    mode = None if displayed is None else displayed.value
    setpoint = controller.commanded_setpoint()
    override = controller.override
    return {
        "soc": snapshot.state.state_of_charge,
        "power": snapshot.state.power_w,
        "mode": mode,
        "setpoint": setpoint if capabilities.setpoint_modes else None,
        "takes_setpoint": bool(capabilities.setpoint_modes),
        "modes": [m.value for m in settable_modes(capabilities)],
        "override": None if override is None else override.mode.value,
        "override_ends_at": (
            None if override is None or override.ends_at is None else override.ends_at.isoformat()
        ),
        "override_until_soc": None if override is None else override.until_soc,
    }


def _describe(part: str, battery: VoiceBattery, values: dict[str, Any], speech: Speech) -> str:
    """Return one sentence about one part of the state."""
    name = battery.name
    value = values[part]
    if part == "soc":
        if value is None:
            return speech.say("voice_soc_unknown", battery=name)
        return speech.say("voice_soc", battery=name, soc=_number(round(value, 1)))
    if part == "power":
        if value is None:
            return speech.say("voice_power_unknown", battery=name)
        key = _setpoint_key("voice_power", value).replace("_charge", "_charging")
        key = key.replace("_discharge", "_discharging").replace("_zero", "_idle")
        return speech.say(key, battery=name, power=_watts(value))
    if part == "mode":
        if value is None:
            return speech.say("voice_mode_unknown", battery=name)
        return speech.say("voice_mode", battery=name, mode=speech.mode(value))
    if part == "setpoint":
        if not values["takes_setpoint"]:
            return speech.say("voice_setpoint_none", battery=name)
        if value is None:
            return speech.say("voice_setpoint_unknown", battery=name)
        return speech.say(_setpoint_key("voice_setpoint", value), battery=name, power=_watts(value))
    override = battery.runtime.controller.override
    if override is None:
        return speech.say("voice_override_none", battery=name)
    return speech.say(
        "voice_override",
        battery=name,
        override=speech.override(override.mode),
        end=_end(override.ends_at, override.until_soc, speech),
    )


def _setpoint_key(prefix: str, watts: float) -> str:
    if round(watts) < 0:
        return f"{prefix}_charge"
    if round(watts) > 0:
        return f"{prefix}_discharge"
    return f"{prefix}_zero"


def _end(ends_at: Any, until_soc: float | None, speech: Speech) -> str:
    """Return "until 14:30", "until 80 %" or both, in the speech's language."""
    time = None if ends_at is None else dt_util.as_local(ends_at).strftime("%H:%M")
    if time is not None and until_soc is not None:
        return speech.say("voice_end_time_soc", time=time, soc=_number(until_soc))
    if time is not None:
        return speech.say("voice_end_time", time=time)
    return speech.say("voice_end_soc", soc=_number(until_soc or 0))


class SetPowerIntentHandler(BatteryIntentHandler):
    """Set the power setpoint of a battery."""

    intent_type = INTENT_SET_POWER
    control = True
    description = (
        "Sets the power setpoint of a Battery Bridge battery in W: positive discharges, "
        "negative charges (charge with 3 kW = -3000)."
    )

    @property
    def slot_schema(self) -> dict[Any, Any]:
        """Return the slots."""
        return {
            _BATTERY: cv.string,
            vol.Required(SLOT_POWER, description="W, + discharge, - charge"): vol.Coerce(float),
        }

    async def async_run(
        self,
        hass: HomeAssistant,
        battery: VoiceBattery,
        slots: dict[str, Any],
        speech: Speech,
        response: intent.IntentResponse,
    ) -> str:
        """Hand the setpoint to the controller."""
        watts = float(slots[SLOT_POWER])
        await battery.runtime.controller.async_set_power(watts)
        return speech.say(
            _setpoint_key("voice_power_set", watts), battery=battery.name, power=_watts(watts)
        )


class SetModeIntentHandler(BatteryIntentHandler):
    """Set the control or operation mode of a battery by its spoken name."""

    intent_type = INTENT_SET_MODE
    control = True
    description = "Sets the control or operation mode of a Battery Bridge battery (a listed mode)."

    @property
    def slot_schema(self) -> dict[Any, Any]:
        """Return the slots."""
        return {
            _BATTERY: cv.string,
            vol.Required(SLOT_MODE, description="A mode of the battery, as listed"): cv.string,
        }

    async def async_run(
        self,
        hass: HomeAssistant,
        battery: VoiceBattery,
        slots: dict[str, Any],
        speech: Speech,
        response: intent.IntentResponse,
    ) -> str:
        """Resolve the spoken mode, then hand it to the controller."""
        offered = settable_modes(battery.runtime.coordinator.data.capabilities)
        modes = ", ".join(speech.mode(mode) for mode in offered)
        mode = await async_resolve_mode(hass, slots[SLOT_MODE])
        if mode is None:
            raise VoiceError(
                "voice_unknown_mode", battery=battery.name, mode=slots[SLOT_MODE], modes=modes
            )
        if mode not in offered:
            raise VoiceError(
                "voice_mode_not_offered", battery=battery.name, mode=speech.mode(mode), modes=modes
            )
        await battery.runtime.controller.async_set_mode(mode)
        return speech.say("voice_mode_set", battery=battery.name, mode=speech.mode(mode))


class StartOverrideIntentHandler(BatteryIntentHandler):
    """Charge, discharge or hold a battery for a time or until a state of charge."""

    intent_type = INTENT_START_OVERRIDE
    control = True
    description = (
        "Starts a timed override of a Battery Bridge battery: charge, discharge or hold, for a "
        "duration in minutes and/or until a state of charge; then it returns to what was before. "
        "Power in W (a positive number) defaults to the battery's largest."
    )

    @property
    def slot_schema(self) -> dict[Any, Any]:
        """Return the slots."""
        return {
            _BATTERY: cv.string,
            vol.Required(SLOT_MODE, description="charge, discharge or hold"): vol.In(
                [mode.value for mode in OverrideMode]
            ),
            vol.Optional(SLOT_DURATION, description="Minutes"): vol.All(
                vol.Coerce(float), vol.Range(min=0)
            ),
            vol.Optional(SLOT_UNTIL_SOC, description="Target state of charge, %"): vol.All(
                vol.Coerce(float), vol.Range(min=0, max=100)
            ),
            vol.Optional(SLOT_POWER, description="W, positive"): vol.All(
                vol.Coerce(float), vol.Range(min=0)
            ),
        }

    async def async_run(
        self,
        hass: HomeAssistant,
        battery: VoiceBattery,
        slots: dict[str, Any],
        speech: Speech,
        response: intent.IntentResponse,
    ) -> str:
        """Start the override through the controller; power defaults to the battery's bound."""
        mode = OverrideMode(slots[SLOT_MODE])
        minutes = slots.get(SLOT_DURATION)
        until_soc = slots.get(SLOT_UNTIL_SOC)
        power = slots.get(SLOT_POWER)
        controller = battery.runtime.controller
        if power is None and mode is not OverrideMode.HOLD:
            low, high = power_limits(battery.runtime.coordinator.data.capabilities)
            power = abs(low if SETPOINT_SIGN[mode] < 0 else high)
        await controller.async_start_override(
            mode,
            power_w=power,
            duration=None if minutes is None else timedelta(minutes=minutes),
            until_soc=until_soc,
        )
        override = controller.override
        ends_at = None if override is None else override.ends_at
        return speech.say(
            "voice_override_started",
            battery=battery.name,
            override=speech.override(mode),
            end=_end(ends_at, until_soc, speech),
        )


class StopOverrideIntentHandler(BatteryIntentHandler):
    """End the running override of a battery now."""

    intent_type = INTENT_STOP_OVERRIDE
    control = True
    description = (
        "Stops the running override of a Battery Bridge battery (it returns to what was before)."
    )

    @property
    def slot_schema(self) -> dict[Any, Any]:
        """Return the slots."""
        return {_BATTERY: cv.string}

    async def async_run(
        self,
        hass: HomeAssistant,
        battery: VoiceBattery,
        slots: dict[str, Any],
        speech: Speech,
        response: intent.IntentResponse,
    ) -> str:
        """Stop the override, if one runs."""
        controller = battery.runtime.controller
        if controller.override is None:
            return speech.say("voice_override_none", battery=battery.name)
        await controller.async_stop_override()
        return speech.say("voice_override_stopped", battery=battery.name)


HANDLERS: Final[tuple[type[BatteryIntentHandler], ...]] = (
    GetStateIntentHandler,
    SetPowerIntentHandler,
    SetModeIntentHandler,
    StartOverrideIntentHandler,
    StopOverrideIntentHandler,
)


async def async_setup_intents(hass: HomeAssistant) -> None:
    """Register the intents (called by Home Assistant's intent integration)."""
    for handler in HANDLERS:
        intent.async_register(hass, handler())
