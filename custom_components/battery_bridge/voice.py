"""What the intents, the sentence triggers and the LLM API share: batteries, exposure, texts.

A battery answers to its device names and subentry title (any case) or its device id; an
assistant reads it when any of its entities is exposed, controls it when a number or select is.
Spoken answers live in voice_texts/<language>.json, spoken errors in the exception translations.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import math
from pathlib import Path
import re
from typing import Final

from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr, entity_registry as er, translation
from homeassistant.helpers.intent import IntentResponseErrorCode
from homeassistant.util.hass_dict import HassKey

from .api import Capabilities, ControlMode
from .const import DOMAIN
from .control import setpoint_bounds, settable_modes
from .entity import battery_uid
from .runtime import BatteryBridgeConfigEntry, BatteryRuntime

CONTROL_DOMAINS: Final = frozenset({Platform.NUMBER, Platform.SELECT})
# Spoken names of the modes besides their translated option names (en, de).
MODE_SYNONYMS: Final[dict[ControlMode, tuple[str, ...]]] = {
    ControlMode.AUTO: ("auto", "automatic", "automatisch", "automatik"),
    ControlMode.POWER: ("power", "leistung"),
    ControlMode.PCC: ("pcc", "grid connection point", "netzanschlusspunkt"),
    ControlMode.SELF_RELIANCE: ("self reliance", "self consumption", "eigenverbrauch"),
    ControlMode.TIME_OF_USE: ("time of use", "zeitvariabler tarif"),
    ControlMode.IMPORT_FOCUS: ("import focus", "netzbezug bevorzugt"),
    ControlMode.EXPORT_FOCUS: ("export focus", "einspeisung bevorzugt"),
}
SPOKEN_MODES: Final = tuple(MODE_SYNONYMS)
# Languages whose mode names go into the sentences whatever the request language is.
SENTENCE_LANGUAGES: Final = ("en", "de")
VOICE_TEXTS: Final = Path(__file__).parent / "voice_texts"
DATA_VOICE_TEXTS: HassKey[dict[str, dict[str, str]]] = HassKey(f"{DOMAIN}_voice_texts")
_ANSWER: Final = "voice_texts."
"""The prefix of the spoken answers among a ``Speech``'s texts."""

_NUMBER_WORDS: Final = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "half": 0.5, "one and a half": 1.5, "zero": 0,
    "ein": 1, "eine": 1, "einen": 1, "einer": 1, "eins": 1, "zwei": 2, "drei": 3, "vier": 4,
    "fünf": 5, "sechs": 6, "sieben": 7, "acht": 8, "neun": 9, "zehn": 10, "elf": 11,
    "zwölf": 12, "halbe": 0.5, "eineinhalb": 1.5, "anderthalb": 1.5, "null": 0,
}  # fmt: skip
_NEGATIVE: Final = ("minus ", "negative ", "negativ ")
_THOUSANDS: Final = re.compile(r"\d{1,3}([.,]\d{3})+")


def spoken(text: str) -> str:
    """Return ``text`` as it is matched: punctuation as spaces, case-folded, single spaces."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", text).casefold().split())


def parse_number(text: str) -> float | None:
    """Return the number in spoken ``text`` ("-1500", "1,5", "1.500", "minus 2", "two"), or None."""
    value = text.strip().casefold().removesuffix("%").strip()
    sign = 1
    for word in (*_NEGATIVE, "-"):
        if value.startswith(word):
            sign, value = -1, value.removeprefix(word).strip()
            break
    if value in _NUMBER_WORDS:
        return sign * _NUMBER_WORDS[value]
    if _THOUSANDS.fullmatch(value):
        value = value.replace(",", "").replace(".", "")
    try:
        number = float(value.replace(",", "."))
    except ValueError:
        return None
    return sign * number if math.isfinite(number) else None


class VoiceError(HomeAssistantError):
    """A failure to tell the user: a ``voice_*`` exception translation key and its placeholders."""

    def __init__(
        self,
        key: str,
        code: IntentResponseErrorCode = IntentResponseErrorCode.FAILED_TO_HANDLE,
        **placeholders: str,
    ) -> None:
        """Keep the key, the response error code and the placeholders."""
        super().__init__(
            translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
        )
        self.key = key
        self.code = code
        self.placeholders = placeholders


@dataclass(frozen=True, slots=True)
class VoiceBattery:
    """A battery as voice sees it: its runtime, its device and the names it answers to."""

    runtime: BatteryRuntime
    device: dr.DeviceEntry
    names: tuple[str, ...]
    """Spoken forms (see ``spoken``) of its names, the shown name first."""

    @property
    def name(self) -> str:
        """Return the name to speak: the device's name as shown in Home Assistant."""
        return self.device.name_by_user or self.device.name or self.runtime.coordinator.battery_name

    @property
    def capabilities(self) -> Capabilities:
        """Return what the battery can do (from its latest snapshot)."""
        return self.runtime.coordinator.data.capabilities

    @property
    def modes(self) -> list[ControlMode]:
        """Return the modes it can be set to (none: read-only)."""
        return settable_modes(self.capabilities)

    @property
    def setpoint_bounds(self) -> tuple[int, int]:
        """Return the lowest and highest power setpoint, W."""
        return setpoint_bounds(self.capabilities)


@callback
def async_batteries(hass: HomeAssistant) -> list[VoiceBattery]:
    """Return the batteries of every loaded entry that have a device."""
    registry = dr.async_get(hass)
    batteries: list[VoiceBattery] = []
    entry: BatteryBridgeConfigEntry
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        for runtime in entry.runtime_data.batteries.values():
            coordinator = runtime.coordinator
            uid = f"{coordinator.kind}_{battery_uid(coordinator)}"
            device = registry.async_get_device_by_identifier((DOMAIN, uid), entry.entry_id)
            if device is None:
                continue
            names = [device.name_by_user, device.name, coordinator.battery_name]
            forms = dict.fromkeys(form for name in names if name and (form := spoken(name)))
            batteries.append(VoiceBattery(runtime, device, tuple(forms)))
    return batteries


@callback
def async_exposed(
    hass: HomeAssistant, battery: VoiceBattery, assistant: str | None, *, control: bool = False
) -> bool:
    """Return True when ``assistant`` may read (or ``control``) the battery; no assistant: always."""
    if assistant is None:
        return True
    for entity in er.async_entries_for_device(er.async_get(hass), battery.device.id):
        if control and entity.domain not in CONTROL_DOMAINS:
            continue
        if async_should_expose(hass, assistant, entity.entity_id):
            return True
    return False


@callback
def async_find_battery(hass: HomeAssistant, name: str, assistant: str | None) -> VoiceBattery:
    """Return the battery called ``name`` (or with that device id) that ``assistant`` may read."""
    wanted = spoken(name)
    batteries = async_batteries(hass)
    found = [
        battery
        for battery in batteries
        if battery.device.id == name or (wanted and wanted in battery.names)
    ]
    visible = [battery for battery in found if async_exposed(hass, battery, assistant)]
    if not visible:
        known = [battery.name for battery in batteries if async_exposed(hass, battery, assistant)]
        if found:
            raise VoiceError(
                "voice_not_exposed", IntentResponseErrorCode.NO_VALID_TARGETS, battery=name
            )
        raise VoiceError(
            "voice_unknown_battery",
            IntentResponseErrorCode.NO_VALID_TARGETS,
            battery=name,
            batteries=", ".join(known) or "-",
        )
    if len(visible) > 1:
        raise VoiceError(
            "voice_ambiguous_battery", IntentResponseErrorCode.NO_VALID_TARGETS, battery=name
        )
    return visible[0]


class Speech:
    """The texts of one language: spoken answers, ``voice_*`` errors and the controller's errors."""

    def __init__(self, language: str, texts: dict[str, str], fallback: dict[str, str]) -> None:
        """Keep the texts (flattened translation keys and answers) of ``language`` and English."""
        self.language = language
        self._texts = texts
        self._fallback = fallback

    def _text(self, key: str) -> str | None:
        return self._texts.get(key) or self._fallback.get(key)

    def say(self, key: str, **placeholders: str) -> str:
        """Return the answer or error ``voice_*`` (or a controller error key) with its placeholders."""
        message = (
            self._text(f"{_ANSWER}{key}")
            or self._text(f"component.{DOMAIN}.exceptions.{key}.message")
            or key
        )
        try:
            return message.format(**placeholders)
        except KeyError, IndexError, ValueError:
            return message

    def error(self, err: HomeAssistantError) -> str:
        """Return a Home Assistant error as a sentence in this language."""
        if err.translation_domain == DOMAIN and err.translation_key:
            return self.say(err.translation_key, **(err.translation_placeholders or {}))
        return str(err)

    def mode(self, mode: str) -> str:
        """Return the option name of a mode (the select's translation)."""
        for select in ("control_mode", "operation_mode"):
            if name := self._text(f"component.{DOMAIN}.entity.select.{select}.state.{mode}"):
                return name
        return mode.replace("_", " ")

    def override(self, mode: str) -> str:
        """Return the name of an override mode (the override sensor's translation)."""
        return self._text(f"component.{DOMAIN}.entity.sensor.override.state.{mode}") or mode

    def mode_names(self, mode: ControlMode) -> set[str]:
        """Return the spoken forms of a mode's option name in this language."""
        return {spoken(self.mode(mode))} | {spoken(self.mode(mode).split("(")[0])}


def _read_voice_texts() -> dict[str, dict[str, str]]:
    """Return the spoken answers of each language shipped (in the executor: it reads files)."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(VOICE_TEXTS.glob("*.json"))
    }


async def async_voice_texts(hass: HomeAssistant) -> dict[str, dict[str, str]]:
    """Return the spoken answers by language, read once."""
    if (texts := hass.data.get(DATA_VOICE_TEXTS)) is None:
        texts = hass.data[DATA_VOICE_TEXTS] = await hass.async_add_executor_job(_read_voice_texts)
    return texts


async def async_speech(hass: HomeAssistant, language: str | None) -> Speech:
    """Return the texts of ``language`` (default: the system language), English where missing."""
    language = language or hass.config.language
    answers = await async_voice_texts(hass)

    async def load(lang: str) -> dict[str, str]:
        texts = {f"{_ANSWER}{key}": text for key, text in answers.get(lang, {}).items()}
        for category in ("exceptions", "entity"):
            texts |= await translation.async_get_translations(hass, lang, category, [DOMAIN])
        return texts

    english = await load("en")
    return Speech(language, english if language == "en" else await load(language), english)


async def async_mode_phrases(hass: HomeAssistant) -> dict[ControlMode, tuple[str, ...]]:
    """Return the spoken names of every mode: synonyms and option names in en, de and the system language."""
    phrases: dict[ControlMode, set[str]] = {mode: set(MODE_SYNONYMS[mode]) for mode in SPOKEN_MODES}
    for language in dict.fromkeys((*SENTENCE_LANGUAGES, hass.config.language)):
        speech = await async_speech(hass, language)
        for mode in SPOKEN_MODES:
            phrases[mode] |= speech.mode_names(mode)
    return {mode: tuple(sorted(name for name in names if name)) for mode, names in phrases.items()}


async def async_resolve_mode(hass: HomeAssistant, text: str) -> ControlMode | None:
    """Return the mode a spoken name or a mode key stands for, or None."""
    wanted = spoken(text)
    for mode, names in (await async_mode_phrases(hass)).items():
        if wanted in names or wanted == spoken(mode.value):
            return mode
    return None
