"""The LLM API "Battery Bridge": one tool per intent of intent.py, registered once per HA.

The prompt lists the batteries the assistant may use, with their modes and setpoint bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import llm

from .const import DOMAIN
from .intent import INTENTS, BatteryIntentHandler
from .voice import async_batteries, async_exposed

LLM_API_ID: Final = DOMAIN
LLM_API_NAME: Final = "Battery Bridge"

PROMPT: Final = (
    "You control home batteries through Battery Bridge. Power is in W: positive means "
    "discharging, negative charging (charge with 3 kW is a setpoint of -3000 W). An override "
    "charges, discharges or holds a battery for a number of minutes or until a state of charge, "
    "then returns to what was in force before. Answer with the tool's speech."
)


@dataclass(slots=True, kw_only=True)
class BatteryBridgeAPI(llm.API):
    """Read and control the batteries of Battery Bridge."""

    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        """Return the tools and a prompt that names the batteries the assistant may use."""
        tools: list[llm.Tool] = [
            llm.IntentTool(
                spec.tool,
                BatteryIntentHandler(spec),
                integration=DOMAIN,
                annotations=llm.ToolAnnotations(
                    read_only=not spec.control, destructive=False, idempotent=not spec.control
                ),
            )
            for spec in INTENTS
        ]
        return llm.APIInstance(
            api=self,
            api_prompt=_prompt(self.hass, llm_context.assistant),
            llm_context=llm_context,
            tools=tools,
        )


@callback
def _prompt(hass: HomeAssistant, assistant: str | None) -> str:
    lines = [PROMPT, "Batteries:"]
    for battery in async_batteries(hass):
        if not async_exposed(hass, battery, assistant):
            continue
        modes = [mode.value for mode in battery.modes]
        details = [f"modes: {', '.join(modes)}" if modes else "read-only"]
        if battery.capabilities.setpoint_modes:
            low, high = battery.setpoint_bounds
            details.append(f"setpoint {low} W to {high} W")
        if modes and not async_exposed(hass, battery, assistant, control=True):
            details.append("control not exposed")
        lines.append(f"- {battery.name} ({'; '.join(details)})")
    if len(lines) == 2:
        lines.append("- none")
    return "\n".join(lines)


@callback
def async_register_llm_api(hass: HomeAssistant) -> None:
    """Register the API (once; it lives as long as Home Assistant runs)."""
    llm.async_register_api(hass, BatteryBridgeAPI(hass=hass, id=LLM_API_ID, name=LLM_API_NAME))
