"""Assist's sentences (en and de): conversation triggers with the exposed batteries' names in them.

The default agent takes integrations' sentences only as conversation triggers; one per kind of
sentence and battery runs the intent (intent.py). Rebuilt on (un)load, renames and exposure changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from homeassistant.components.homeassistant.exposed_entities import async_listen_entity_updates
from homeassistant.const import EVENT_COMPONENT_LOADED
from homeassistant.core import CALLBACK_TYPE, Context, Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er, intent
from homeassistant.helpers.script import ScriptRunResult
from homeassistant.helpers.trigger import async_initialize_triggers, async_validate_trigger_config
from homeassistant.util.hass_dict import HassKey

from .api import ControlMode
from .const import DOMAIN, LOGGER
from .intent import (
    INTENT_GET_STATE,
    INTENT_SET_MODE,
    INTENT_SET_POWER,
    INTENT_START_OVERRIDE,
    INTENT_STOP_OVERRIDE,
    SLOT_BATTERY,
    SLOT_DURATION,
    SLOT_MODE,
    SLOT_POWER,
    SLOT_UNTIL_SOC,
    SLOT_WHAT,
)
from .overrides import OverrideMode
from .voice import (
    VoiceBattery,
    async_batteries,
    async_exposed,
    async_mode_phrases,
    async_speech,
    parse_number,
)

CONVERSATION: Final = "conversation"
DATA_SENTENCES: HassKey[SentenceTriggers] = HassKey(f"{DOMAIN}_sentences")

# Placeholders in the templates: {b} the battery's names, {m} a mode's names; wildcards in braces.
_W: Final = "(watt|watts|w)"
_KW: Final = "(kilowatt|kilowatts|kw)"
_HOURS: Final = "(hour|hours|stunde|stunden)"
_MINUTES: Final = "(minute|minutes|minuten)"
_OF: Final = "(of|on|for)"
_VON: Final = "(von [der|dem]|der|des|bei|an)"

READ_SENTENCES: Final[dict[str, tuple[str, ...]]] = {
    "soc": (
        "what is the [state of] charge of {b}",
        "what is the (battery level|level|soc) of {b}",
        "how (full|charged) is {b}",
        "how much charge does {b} have",
        "wie voll ist {b}",
        "wie ist der (ladestand|ladezustand|füllstand) " + _VON + " {b}",
        "welchen (ladestand|ladezustand) hat {b}",
        "wie viel prozent hat {b}",
    ),
    "power": (
        "what is the power of {b}",
        "how much power does {b} (have|deliver|use)",
        "is {b} (charging|discharging)",
        "welche leistung hat {b}",
        "wie (hoch|groß) ist die leistung " + _VON + " {b}",
        "(lädt|entlädt) {b}",
    ),
    "mode": (
        "what is the mode of {b}",
        "(what|which) mode is {b} in",
        "in welchem modus ist {b}",
        "welchen modus hat {b}",
        "wie ist der modus " + _VON + " {b}",
    ),
    "setpoint": (
        "what is the [power] setpoint of {b}",
        "wie ist der [leistungs]sollwert " + _VON + " {b}",
        "welchen sollwert hat {b}",
    ),
    "override": (
        "what is the override " + _OF + " {b}",
        "is (there|an) override running on {b}",
        "is there an override on {b}",
        "läuft eine übersteuerung " + _VON + " {b}",
        "wie ist die übersteuerung " + _VON + " {b}",
    ),
    "all": (
        "what is the (state|status) of {b}",
        "how is {b} doing",
        "wie ist der (zustand|status) " + _VON + " {b}",
        "wie geht es {b}",
    ),
}
# (templates, unit factor, sign): sign None keeps the spoken sign, else the magnitude gets it.
POWER_SENTENCES: Final[tuple[tuple[tuple[str, ...], float, int | None], ...]] = tuple(
    (tuple(template.format(unit=unit) for template in templates), factor, sign)
    for unit, factor in ((_W, 1.0), (_KW, 1000.0))
    for templates, sign in (
        (
            (
                "set [the] power [setpoint] of {{b}} to {{power}} {unit}",
                "set {{b}} power [setpoint] to {{power}} {unit}",
                "(setze|stelle) [die] leistung " + _VON + " {{b}} auf {{power}} {unit}",
                "(setze|stelle) {{b}} [leistung] auf {{power}} {unit}",
            ),
            None,
        ),
        (("charge {{b}} with {{power}} {unit}", "lade {{b}} mit {{power}} {unit}"), -1),
        (("discharge {{b}} with {{power}} {unit}", "entlade {{b}} mit {{power}} {unit}"), 1),
    )
)
MODE_SENTENCES: Final = (
    "set {b} [mode] to {m} [mode]",
    "switch {b} to {m} [mode]",
    "put {b} in[to] {m} [mode]",
    "{b} [to] {m}",
    "(setze|stelle|schalte) {b} (auf|in [den]) {m} [modus]",
    "{b} auf {m}",
)
OVERRIDE_VERBS: Final = {
    OverrideMode.CHARGE: ("charge", "lade"),
    OverrideMode.DISCHARGE: ("discharge", "entlade"),
    OverrideMode.HOLD: ("hold", "halte"),
}
STOP_SENTENCES: Final = (
    "(stop|cancel|end) the override " + _OF + " {b}",
    "(stop|cancel|end) [the] {b} override",
    "(stoppe|beende) die übersteuerung " + _VON + " {b}",
)


@dataclass(frozen=True, slots=True)
class Number:
    """A wildcard slot that holds a spoken number, and how it becomes the intent's value."""

    wildcard: str
    slot: str
    factor: float = 1.0
    sign: int | None = None


@dataclass(frozen=True, slots=True)
class SentenceSpec:
    """What one trigger's sentences mean: an intent, its fixed slots and its spoken numbers."""

    intent_type: str
    slots: Mapping[str, Any]
    sentences: tuple[str, ...]
    numbers: tuple[Number, ...] = field(default=())

    @property
    def trigger_id(self) -> str:
        """Return the trigger's id: what the sentences mean (battery, intent, slots), not their words.

        The same across rebuilds, so a sentence matched just before one still finds its meaning (a
        renamed battery keeps its ids); unique among the specs of ``async_sentence_specs``.
        """
        slots = ",".join(f"{key}={value}" for key, value in sorted(self.slots.items()))
        numbers = ",".join(
            f"{n.wildcard}>{n.slot}*{n.factor:g}{'' if n.sign is None else f'*{n.sign}'}"
            for n in self.numbers
        )
        return f"{self.intent_type}({slots})[{numbers}]"


def _override_specs() -> Iterable[tuple[OverrideMode, tuple[str, ...], tuple[Number, ...]]]:
    """Yield the override sentences: for a duration, to a state of charge, with a power."""
    for mode, (verb, verb_de) in OVERRIDE_VERBS.items():
        for unit, factor in ((_HOURS, 60.0), (_MINUTES, 1.0)):
            duration = Number("duration", SLOT_DURATION, factor)
            yield (
                mode,
                (
                    f"{verb} {{b}} for {{duration}} {unit}",
                    f"{verb_de} {{b}} für {{duration}} {unit}",
                ),
                (duration,),
            )
            if mode is OverrideMode.HOLD:
                continue
            for power_unit, power_factor in ((_W, 1.0), (_KW, 1000.0)):
                yield (
                    mode,
                    (
                        f"{verb} {{b}} with {{power}} {power_unit} for {{duration}} {unit}",
                        f"{verb_de} {{b}} mit {{power}} {power_unit} für {{duration}} {unit}",
                    ),
                    (duration, Number("power", SLOT_POWER, power_factor)),
                )
        if mode is not OverrideMode.HOLD:
            yield (
                mode,
                (
                    f"{verb} {{b}} to {{soc}} [percent]",
                    f"{verb_de} {{b}} (auf|bis [auf]) {{soc}} [prozent]",
                ),
                (Number("soc", SLOT_UNTIL_SOC),),
            )


def battery_specs(
    battery: str, names: str, mode_names: Mapping[ControlMode, tuple[str, ...]]
) -> list[SentenceSpec]:
    """Return the sentence specs of one battery: ``battery`` is the slot value, ``names`` "(a|b)"."""

    def fill(templates: Iterable[str], modes: str = "") -> tuple[str, ...]:
        return tuple(t.replace("{b}", names).replace("{m}", modes) for t in templates)

    slot = {SLOT_BATTERY: battery}
    specs = [
        SentenceSpec(INTENT_GET_STATE, {**slot, SLOT_WHAT: what}, fill(templates))
        for what, templates in READ_SENTENCES.items()
    ]
    specs += [
        SentenceSpec(
            INTENT_SET_POWER, slot, fill(templates), (Number("power", SLOT_POWER, factor, sign),)
        )
        for templates, factor, sign in POWER_SENTENCES
    ]
    specs += [
        SentenceSpec(
            INTENT_SET_MODE,
            {**slot, SLOT_MODE: mode.value},
            fill(MODE_SENTENCES, f"({'|'.join(phrases)})"),
        )
        for mode, phrases in mode_names.items()
    ]
    specs += [
        SentenceSpec(
            INTENT_START_OVERRIDE, {**slot, SLOT_MODE: mode.value}, fill(templates), numbers
        )
        for mode, templates, numbers in _override_specs()
    ]
    specs.append(SentenceSpec(INTENT_STOP_OVERRIDE, slot, fill(STOP_SENTENCES)))
    return specs


def _alternatives(names: Iterable[str]) -> str:
    return f"({'|'.join(names)})"


@callback
def async_sentence_specs(
    hass: HomeAssistant,
    batteries: list[VoiceBattery],
    mode_names: Mapping[ControlMode, tuple[str, ...]],
) -> list[SentenceSpec]:
    """Return the specs of the exposed batteries.

    A name two batteries share gets sentences of its own whose slot is the name, so the intent
    answers that it is ambiguous (one trigger per sentence: two would both run).
    """
    exposed = [battery for battery in batteries if async_exposed(hass, battery, CONVERSATION)]
    owners: dict[str, list[VoiceBattery]] = {}
    for battery in exposed:
        for name in battery.names:
            owners.setdefault(name, []).append(battery)
    specs: list[SentenceSpec] = []
    for battery in exposed:
        if own := [name for name in battery.names if len(owners[name]) == 1]:
            specs += battery_specs(battery.device.id, _alternatives(own), mode_names)
    for name, sharing in owners.items():
        if len(sharing) > 1:
            specs += battery_specs(name, _alternatives([name]), mode_names)
    return specs


class SentenceTriggers:
    """The conversation triggers of the batteries; rebuilt when what they are built from changes."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start with no triggers."""
        self.hass = hass
        self.specs: dict[str, SentenceSpec] = {}
        """The attached triggers' specs by trigger id (empty: none attached)."""
        self._remove: CALLBACK_TYPE | None = None
        # Our devices and entities as of the last rebuild: registry removals name only the id.
        self._device_ids: set[str] = set()
        self._entity_ids: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._unsub_exposure: CALLBACK_TYPE | None = None

    @callback
    def async_schedule_update(self, _event: Event[Any] | None = None) -> None:
        """Rebuild the triggers soon (once, however often this is called meanwhile)."""
        if CONVERSATION not in self.hass.config.components:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = self.hass.async_create_task(self._async_run(), f"{DOMAIN} sentences")

    async def _async_run(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            try:
                await self._async_update()
            except Exception:  # noqa: BLE001 - logged, not lost in the task
                # ``specs`` still tells what is attached: the next change tries again.
                LOGGER.exception("Could not attach the Battery Bridge sentences")

    async def _async_update(self) -> None:
        hass = self.hass
        if self._unsub_exposure is None and "homeassistant" in hass.config.components:
            self._unsub_exposure = async_listen_entity_updates(
                hass, CONVERSATION, self.async_schedule_update
            )
        self._remember_ids()
        specs = async_sentence_specs(hass, async_batteries(hass), await async_mode_phrases(hass))
        wanted = {spec.trigger_id: spec for spec in specs}
        if wanted == self.specs:
            return
        # Validated before the attached triggers go: an invalid sentence leaves them in place.
        configs = await async_validate_trigger_config(
            hass,
            [
                {"platform": CONVERSATION, "command": list(spec.sentences), "id": key}
                for key, spec in wanted.items()
            ],
        )
        self.async_remove()
        if not wanted:
            return
        # The specs before the triggers, which may fire as soon as they are attached.
        self.specs = wanted
        try:
            self._remove = await async_initialize_triggers(
                hass, configs, self._async_triggered, DOMAIN, "Battery Bridge sentences", _log
            )
        finally:
            if self._remove is None:  # raised, or none attached (logged): the next run tries again
                self.specs = {}
        if self._remove is not None:
            LOGGER.debug("Attached %s sentence triggers", len(wanted))

    @callback
    def _remember_ids(self) -> None:
        """Remember the devices and entities of the loaded entries (for the registry filters)."""
        devices = dr.async_get(self.hass)
        entities = er.async_get(self.hass)
        self._device_ids = set()
        self._entity_ids = set()
        for entry in self.hass.config_entries.async_loaded_entries(DOMAIN):
            self._device_ids.update(
                device.id for device in dr.async_entries_for_config_entry(devices, entry.entry_id)
            )
            self._entity_ids.update(
                entity.entity_id
                for entity in er.async_entries_for_config_entry(entities, entry.entry_id)
            )
        for device_id in self._device_ids:
            self._entity_ids.update(
                entity.entity_id
                for entity in er.async_entries_for_device(
                    entities, device_id, include_disabled_entities=True
                )
            )

    @callback
    def async_is_our_device(self, data: Mapping[str, Any]) -> bool:
        """Return True when a device registry event is about a battery's device."""
        device_id = data["device_id"]
        if device_id in self._device_ids:
            return True
        device = dr.async_get(self.hass).async_get(device_id)
        return device is not None and any(domain == DOMAIN for domain, _ in device.identifiers)

    @callback
    def async_is_our_entity(self, data: Mapping[str, Any]) -> bool:
        """Return True when an entity registry event is about an entity of a battery (or was)."""
        ids = {data["entity_id"], data.get("old_entity_id")}
        if not ids.isdisjoint(self._entity_ids):
            return True
        entity = er.async_get(self.hass).async_get(data["entity_id"])
        return entity is not None and (
            entity.platform == DOMAIN or entity.device_id in self._device_ids
        )

    @callback
    def async_remove(self) -> None:
        """Detach the triggers."""
        if self._remove is not None:
            self._remove()
            self._remove = None
        self.specs = {}

    async def _async_triggered(
        self, run_variables: dict[str, Any], context: Context | None = None
    ) -> ScriptRunResult:
        """Run the intent of the matched sentence; its speech is the conversation's response."""
        trigger = run_variables["trigger"]
        language = trigger["user_input"].get("language") or self.hass.config.language
        spec = self.specs.get(trigger["id"])
        if spec is None:  # replaced while the sentence was being matched
            return await self._async_say(
                language, "voice_unknown_battery", battery=trigger["sentence"], batteries="-"
            )
        slots: dict[str, Any] = dict(spec.slots)
        for number in spec.numbers:
            text = str(trigger["slots"].get(number.wildcard, ""))
            if (value := parse_number(text)) is None:
                return await self._async_say(language, "voice_bad_number", value=text)
            value *= number.factor
            slots[number.slot] = value if number.sign is None else number.sign * abs(value)
        response = await intent.async_handle(
            self.hass,
            DOMAIN,
            spec.intent_type,
            {key: {"value": value} for key, value in slots.items()},
            text_input=trigger["sentence"],
            context=context,
            language=language,
            assistant=CONVERSATION,
            device_id=trigger.get("device_id"),
            satellite_id=trigger.get("satellite_id"),
        )
        return _result(response.speech.get("plain", {}).get("speech", ""))

    async def _async_say(self, language: str, key: str, **placeholders: str) -> ScriptRunResult:
        speech = await async_speech(self.hass, language)
        return _result(speech.say(key, **placeholders))


def _result(speech: str) -> ScriptRunResult:
    return ScriptRunResult(conversation_response=speech, service_response=None, variables={})


def _log(level: int, msg: str, **kwargs: Any) -> None:
    LOGGER.log(level, "%s Battery Bridge sentences", msg, **kwargs)


@callback
def async_setup_sentences(hass: HomeAssistant) -> None:
    """Create the sentence triggers and listen for what changes them."""
    triggers = hass.data[DATA_SENTENCES] = SentenceTriggers(hass)

    @callback
    def _component_loaded(event: Event[Any]) -> None:
        if event.data.get("component") == CONVERSATION:
            triggers.async_schedule_update()

    hass.bus.async_listen(EVENT_COMPONENT_LOADED, _component_loaded)
    # Only our devices and entities: other registry changes leave the sentences as they are.
    hass.bus.async_listen(
        dr.EVENT_DEVICE_REGISTRY_UPDATED,
        triggers.async_schedule_update,
        event_filter=triggers.async_is_our_device,
    )
    hass.bus.async_listen(
        er.EVENT_ENTITY_REGISTRY_UPDATED,
        triggers.async_schedule_update,
        event_filter=triggers.async_is_our_entity,
    )
    triggers.async_schedule_update()


@callback
def async_update_sentences(hass: HomeAssistant) -> None:
    """Rebuild the sentence triggers (an entry was loaded or unloaded)."""
    if (triggers := hass.data.get(DATA_SENTENCES)) is not None:
        triggers.async_schedule_update()
