"""Battery Bridge intents: read a battery, set its power or mode, start and stop an override.

One handler class serves every entry of ``INTENTS`` through the battery's controller; failures
are answered with spoken, translated errors. Slot ``battery``: a name or a device id; W, + = discharge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv, intent
from homeassistant.util import dt as dt_util
import probatio as vol

from .control import BatteryController
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
# The key of the power reading per direction (see ``_direction``).
POWER_KEYS: Final = {
    "charge": "voice_power_charging",
    "discharge": "voice_power_discharging",
    "zero": "voice_power_idle",
}

_BATTERY = vol.Required(SLOT_BATTERY, description="The battery's name, as listed")
_POSITIVE = vol.All(vol.Coerce(float), vol.Range(min=0))


@dataclass(frozen=True, slots=True)
class IntentCall:
    """One intent being handled: its battery, validated slots, texts and response."""

    hass: HomeAssistant
    battery: VoiceBattery
    slots: dict[str, Any]
    speech: Speech
    response: intent.IntentResponse

    @property
    def controller(self) -> BatteryController:
        """Return the battery's controller."""
        return self.battery.runtime.controller

    def say(self, key: str, **placeholders: str) -> str:
        """Return the message ``key`` about this battery."""
        return self.speech.say(key, battery=self.battery.name, **placeholders)


@dataclass(frozen=True, slots=True)
class BatteryIntent:
    """One intent: its type, LLM tool name, what it does and its slots besides the battery."""

    intent_type: str
    tool: str
    run: Callable[[IntentCall], Awaitable[str]]
    description: str
    slots: Mapping[Any, Any]
    control: bool = True
    """Whether it writes (then the battery must offer modes and expose a control entity)."""


class BatteryIntentHandler(intent.IntentHandler):
    """Handle one ``BatteryIntent``: find the battery, run, answer in the request's language."""

    def __init__(self, spec: BatteryIntent) -> None:
        """Serve ``spec``."""
        self.spec = spec
        self.intent_type = spec.intent_type
        self.description = spec.description

    @property
    def slot_schema(self) -> dict[Any, Any]:
        """Return the slots."""
        return {_BATTERY: cv.string, **self.spec.slots}

    async def async_handle(self, intent_obj: intent.Intent) -> intent.IntentResponse:
        """Validate the slots, find the battery and answer; errors become error responses."""
        hass = intent_obj.hass
        slots = {
            key: slot["value"] for key, slot in self.async_validate_slots(intent_obj.slots).items()
        }
        speech = await async_speech(hass, intent_obj.language)
        response = intent_obj.create_response()
        try:
            battery = _battery(hass, slots[SLOT_BATTERY], intent_obj.assistant, self.spec.control)
            response.async_set_results(
                [
                    intent.IntentResponseTarget(
                        name=battery.name,
                        type=intent.IntentResponseTargetType.DEVICE,
                        id=battery.device.id,
                    )
                ]
            )
            text = await self.spec.run(IntentCall(hass, battery, slots, speech, response))
        except VoiceError as err:
            response.async_set_error(err.code, speech.say(err.key, **err.placeholders))
        except HomeAssistantError as err:
            response.async_set_error(
                intent.IntentResponseErrorCode.FAILED_TO_HANDLE, speech.error(err)
            )
        else:
            response.async_set_speech(text)
        return response


def _battery(hass: HomeAssistant, name: str, assistant: str | None, control: bool) -> VoiceBattery:
    """Return the battery an intent is for; raise ``VoiceError`` when it cannot serve it."""
    battery = async_find_battery(hass, name, assistant)
    if not battery.runtime.coordinator.last_update_success:
        raise VoiceError("voice_unavailable", battery=battery.name)
    if not control:
        return battery
    if not battery.modes:
        raise VoiceError("voice_read_only", battery=battery.name)
    if not async_exposed(hass, battery, assistant, control=True):
        raise VoiceError(
            "voice_control_not_exposed",
            intent.IntentResponseErrorCode.NO_VALID_TARGETS,
            battery=battery.name,
        )
    return battery


def _watts(value: float) -> str:
    return f"{abs(round(value))} W"


def _number(value: float) -> str:
    return f"{value:g}"


def _direction(watts: float) -> str:
    """Return "charge", "discharge" or "zero" for a signed power (+ = discharge)."""
    if round(watts) < 0:
        return "charge"
    return "discharge" if round(watts) > 0 else "zero"


def _end(ends_at: datetime | None, until_soc: float | None, speech: Speech) -> str:
    """Return "until 14:30", "until 80 %" or both, in the speech's language."""
    time = None if ends_at is None else dt_util.as_local(ends_at).strftime("%H:%M")
    if time is not None and until_soc is not None:
        return speech.say("voice_end_time_soc", time=time, soc=_number(until_soc))
    if time is not None:
        return speech.say("voice_end_time", time=time)
    return speech.say("voice_end_soc", soc=_number(until_soc or 0))


def _state_values(battery: VoiceBattery) -> dict[str, Any]:
    """Return what the battery's entities show: soc, power, mode, setpoint and override."""
    controller = battery.runtime.controller
    state = battery.runtime.coordinator.data.state
    # The same view as the mode select and the setpoint number (never the FEMS applied power).
    reported = controller.reported()
    takes_setpoint = bool(battery.capabilities.setpoint_modes)
    override = controller.override
    ends_at = None if override is None else override.ends_at
    return {
        "soc": state.state_of_charge,
        "power": state.power_w,
        "mode": None if reported.mode is None else reported.mode.value,
        "setpoint": reported.setpoint_w if takes_setpoint else None,
        "takes_setpoint": takes_setpoint,
        "modes": [m.value for m in battery.modes],
        "override": None if override is None else override.mode.value,
        "override_ends_at": None if ends_at is None else ends_at.isoformat(),
        "override_until_soc": None if override is None else override.until_soc,
    }


def _describe(part: str, values: dict[str, Any], call: IntentCall) -> str:
    """Return one sentence about one part of the state."""
    value = values[part]
    if part == "override":
        if (override := call.controller.override) is None:
            return call.say("voice_override_none")
        end = _end(override.ends_at, override.until_soc, call.speech)
        return call.say("voice_override", override=call.speech.override(override.mode), end=end)
    if part == "setpoint" and not values["takes_setpoint"]:
        return call.say("voice_setpoint_none")
    if value is None:
        return call.say(f"voice_{part}_unknown")
    if part == "soc":
        return call.say("voice_soc", soc=_number(round(value, 1)))
    if part == "mode":
        return call.say("voice_mode", mode=call.speech.mode(value))
    direction = _direction(value)
    key = POWER_KEYS[direction] if part == "power" else f"voice_setpoint_{direction}"
    return call.say(key, power=_watts(value))


async def _get_state(call: IntentCall) -> str:
    """Answer with the parts asked for; the values also go into the speech slots."""
    call.response.response_type = intent.IntentResponseType.QUERY_ANSWER
    what = call.slots.get(SLOT_WHAT, WHAT_ALL)
    values = _state_values(call.battery)
    call.response.async_set_speech_slots({"battery": call.battery.name, **values})
    parts = STATE_PARTS if what == WHAT_ALL else (what,)
    return " ".join(_describe(part, values, call) for part in parts)


async def _set_power(call: IntentCall) -> str:
    """Hand the setpoint to the controller."""
    watts = float(call.slots[SLOT_POWER])
    await call.controller.async_set_power(watts)
    return call.say(f"voice_power_set_{_direction(watts)}", power=_watts(watts))


async def _set_mode(call: IntentCall) -> str:
    """Resolve the spoken mode, then hand it to the controller."""
    offered = call.battery.modes
    modes = ", ".join(call.speech.mode(mode) for mode in offered)
    name = call.slots[SLOT_MODE]
    if (mode := await async_resolve_mode(call.hass, name)) is None:
        raise VoiceError("voice_unknown_mode", battery=call.battery.name, mode=name, modes=modes)
    if mode not in offered:
        raise VoiceError(
            "voice_mode_not_offered",
            battery=call.battery.name,
            mode=call.speech.mode(mode),
            modes=modes,
        )
    await call.controller.async_set_mode(mode)
    return call.say("voice_mode_set", mode=call.speech.mode(mode))


async def _start_override(call: IntentCall) -> str:
    """Start the override through the controller; power defaults to the battery's bound."""
    mode = OverrideMode(call.slots[SLOT_MODE])
    minutes = call.slots.get(SLOT_DURATION)
    until_soc = call.slots.get(SLOT_UNTIL_SOC)
    power = call.slots.get(SLOT_POWER)
    if power is None and mode is not OverrideMode.HOLD:
        low, high = call.battery.setpoint_bounds
        power = abs(low if SETPOINT_SIGN[mode] < 0 else high)
    await call.controller.async_start_override(
        mode,
        power_w=power,
        duration=None if minutes is None else timedelta(minutes=minutes),
        until_soc=until_soc,
    )
    ends_at = None if (override := call.controller.override) is None else override.ends_at
    end = _end(ends_at, until_soc, call.speech)
    return call.say("voice_override_started", override=call.speech.override(mode), end=end)


async def _stop_override(call: IntentCall) -> str:
    """Stop the override, if one runs."""
    if call.controller.override is None:
        return call.say("voice_override_none")
    await call.controller.async_stop_override()
    return call.say("voice_override_stopped")


INTENTS: Final = (
    BatteryIntent(
        INTENT_GET_STATE,
        "battery_bridge_get_state",
        _get_state,
        "Reads a Battery Bridge battery: state of charge (soc), power, mode, power setpoint, "
        "override, or all of them. Power is in W, positive when discharging, negative when charging.",
        {
            vol.Optional(SLOT_WHAT, description="What to read (default all)"): vol.In(
                [*STATE_PARTS, WHAT_ALL]
            )
        },
        control=False,
    ),
    BatteryIntent(
        INTENT_SET_POWER,
        "battery_bridge_set_power",
        _set_power,
        "Sets the power setpoint of a Battery Bridge battery in W: positive discharges, "
        "negative charges (charge with 3 kW = -3000).",
        {vol.Required(SLOT_POWER, description="W, + discharge, - charge"): vol.Coerce(float)},
    ),
    BatteryIntent(
        INTENT_SET_MODE,
        "battery_bridge_set_mode",
        _set_mode,
        "Sets the control or operation mode of a Battery Bridge battery (a listed mode).",
        {vol.Required(SLOT_MODE, description="A mode of the battery, as listed"): cv.string},
    ),
    BatteryIntent(
        INTENT_START_OVERRIDE,
        "battery_bridge_start_override",
        _start_override,
        "Starts a timed override of a Battery Bridge battery: charge, discharge or hold, for a "
        "duration in minutes and/or until a state of charge; then it returns to what was before. "
        "Power in W (a positive number) defaults to the battery's largest.",
        {
            vol.Required(SLOT_MODE, description="charge, discharge or hold"): vol.In(
                [mode.value for mode in OverrideMode]
            ),
            vol.Optional(SLOT_DURATION, description="Minutes"): _POSITIVE,
            vol.Optional(SLOT_UNTIL_SOC, description="Target state of charge, %"): vol.All(
                vol.Coerce(float), vol.Range(min=0, max=100)
            ),
            vol.Optional(SLOT_POWER, description="W, positive"): _POSITIVE,
        },
    ),
    BatteryIntent(
        INTENT_STOP_OVERRIDE,
        "battery_bridge_stop_override",
        _stop_override,
        "Stops the running override of a Battery Bridge battery (it returns to what was before).",
        {},
    ),
)


async def async_setup_intents(hass: HomeAssistant) -> None:
    """Register the intents (called by Home Assistant's intent integration)."""
    for spec in INTENTS:
        intent.async_register(hass, BatteryIntentHandler(spec))
