"""The intents (intent.py), the shared voice helpers (voice.py) and the sentence triggers' edges."""

from __future__ import annotations

import asyncio
from dataclasses import replace
import json
from pathlib import Path
import re
import threading
from typing import Any
from unittest.mock import patch

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr, entity_registry as er, intent
from homeassistant.setup import async_setup_component
import probatio as vol
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.battery_bridge.api import (
    BackendKind,
    BatterySnapshot,
    CannotConnectError,
    ControlCommand,
    ControlMode,
)
from custom_components.battery_bridge.intent import (
    INTENT_GET_STATE,
    INTENT_SET_MODE,
    INTENT_SET_POWER,
    INTENT_START_OVERRIDE,
    INTENT_STOP_OVERRIDE,
    POWER_KEYS,
)
from custom_components.battery_bridge.sentences import (
    DATA_SENTENCES,
    async_initialize_triggers,
    async_update_sentences,
    battery_specs,
)
from custom_components.battery_bridge.voice import (
    Speech,
    _read_voice_texts,
    async_mode_phrases,
    async_speech,
    parse_number,
)

from .conftest import FEMS_ID, FakeBackend, flexconnect_snapshots
from .test_conversation import expose, say


@pytest.fixture
async def intents(hass: HomeAssistant, init_integration: MockConfigEntry) -> MockConfigEntry:
    """The intent integration (it registers ours) and exposure settings, nothing exposed yet."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "intent", {})
    await hass.async_block_till_done()
    return init_integration


async def handle(
    hass: HomeAssistant,
    intent_type: str,
    slots: dict[str, Any],
    *,
    language: str = "en",
    assistant: str | None = "conversation",
) -> intent.IntentResponse:
    return await intent.async_handle(
        hass,
        "test",
        intent_type,
        {key: {"value": value} for key, value in slots.items()},
        context=Context(),
        language=language,
        assistant=assistant,
    )


def speech(response: intent.IntentResponse) -> str:
    text: str = response.speech["plain"]["speech"]
    return text


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("-1500", -1500),
        ("minus 1,500", -1500),
        ("1.500", 1500),
        ("1,5", 1.5),
        ("2.25", 2.25),
        ("two", 2),
        ("zwei", 2),
        ("an", 1),
        ("eineinhalb", 1.5),
        ("80%", 80),
        ("negative 3", -3),
        ("lots", None),
        ("", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_number(text: str, number: float | None) -> None:
    assert parse_number(text) == number


async def test_speech_fallbacks(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Missing translations fall back to English, then to the key; odd placeholders stay."""
    french = await async_speech(hass, "fr")
    assert french.say("voice_soc", battery="B", soc="5") == "B is at 5 %."
    assert french.say("no_such_key") == "no_such_key"
    assert french.say("voice_soc") == "{battery} is at {soc} %."
    assert french.mode("turbo_boost") == "turbo boost"
    assert french.override("charge") == "Charging"
    assert french.error(HomeAssistantError("plain message")) == "plain message"
    assert Speech("en", {}, {}).override("hold") == "hold"


async def test_intents_registered(hass: HomeAssistant, intents: MockConfigEntry) -> None:
    registered = {handler.intent_type for handler in intent.async_get(hass)}
    assert {
        INTENT_GET_STATE,
        INTENT_SET_POWER,
        INTENT_SET_MODE,
        INTENT_START_OVERRIDE,
        INTENT_STOP_OVERRIDE,
    } <= registered


async def test_exposure(
    hass: HomeAssistant, intents: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """An assistant sees only exposed batteries; a call without an assistant sees all."""
    response = await handle(hass, INTENT_GET_STATE, {"battery": "FEMS ess0", "what": "soc"})
    assert response.response_type is intent.IntentResponseType.ERROR
    assert response.error_code is intent.IntentResponseErrorCode.NO_VALID_TARGETS
    assert speech(response) == "FEMS ess0 is not exposed to Assist."
    response = await handle(
        hass, INTENT_GET_STATE, {"battery": "fems ESS0", "what": "soc"}, assistant=None
    )
    assert response.response_type is intent.IntentResponseType.QUERY_ANSWER
    assert speech(response) == "FEMS ess0 is at 72 %."
    assert response.speech_slots["soc"] == 72.0
    assert response.success_results[0].name == "FEMS ess0"
    # By device id, as the sentences do.
    device_id = response.success_results[0].id
    assert device_id
    response = await handle(
        hass, INTENT_SET_POWER, {"battery": device_id, "power": -100}, assistant=None
    )
    assert speech(response) == "FEMS ess0 charges with 100 W."
    assert mock_backend.applied == [
        (FEMS_ID, ControlCommand(mode=ControlMode.POWER, setpoint_w=-100))
    ]


async def test_unknown_battery(hass: HomeAssistant, intents: MockConfigEntry) -> None:
    expose(hass, intents)
    response = await handle(hass, INTENT_SET_POWER, {"battery": "Garage", "power": 1})
    assert response.error_code is intent.IntentResponseErrorCode.NO_VALID_TARGETS
    assert speech(response) == "I don't know a battery called Garage. Batteries: FEMS ess0."
    response = await handle(hass, INTENT_STOP_OVERRIDE, {"battery": "Garage"}, language="de")
    assert speech(response) == "Ich kenne keine Batterie namens Garage. Batterien: FEMS ess0."


async def test_unknown_mode(hass: HomeAssistant, intents: MockConfigEntry) -> None:
    expose(hass, intents)
    response = await handle(hass, INTENT_SET_MODE, {"battery": "FEMS ess0", "mode": "turbo"})
    assert response.error_code is intent.IntentResponseErrorCode.FAILED_TO_HANDLE
    assert speech(response) == "FEMS ess0 has no mode turbo. Modes: Auto, Power."
    response = await handle(hass, INTENT_SET_MODE, {"battery": "FEMS ess0", "mode": "power"})
    assert speech(response) == "FEMS ess0 is set to Power."


async def test_unavailable_battery(
    hass: HomeAssistant, intents: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    expose(hass, intents)
    mock_backend.get_error = CannotConnectError("down")
    coordinator = intents.runtime_data.batteries["sub_1"].coordinator
    await coordinator.async_refresh()
    assert not coordinator.last_update_success
    response = await handle(hass, INTENT_GET_STATE, {"battery": "FEMS ess0"}, language="de")
    assert speech(response) == "FEMS ess0 ist gerade nicht erreichbar."


async def test_unknown_values(
    hass: HomeAssistant, intents: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """Values the battery does not report are said to be unknown."""
    expose(hass, intents)
    mock_backend.set_state(FEMS_ID, state_of_charge=None, power_w=None)
    mock_backend.set_control(FEMS_ID, current=None)
    await intents.runtime_data.batteries["sub_1"].coordinator.async_refresh()
    response = await handle(hass, INTENT_GET_STATE, {"battery": "FEMS ess0"})
    assert speech(response) == (
        "The state of charge of FEMS ess0 is not known. The power of FEMS ess0 is not known. "
        "FEMS ess0 is in mode Auto. The setpoint of FEMS ess0 is not known. "
        "No override is running on FEMS ess0."
    )


async def test_override_with_time_and_target(
    hass: HomeAssistant, intents: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    expose(hass, intents)
    response = await handle(
        hass,
        INTENT_START_OVERRIDE,
        {
            "battery": "FEMS ess0",
            "mode": "discharge",
            "duration": 60,
            "until_soc": 30,
            "power": 800,
        },
        language="de",
    )
    assert speech(response).startswith("FEMS ess0: Übersteuerung Entladen bis ")
    assert speech(response).endswith(" Uhr oder 30 %.")
    assert mock_backend.applied == [
        (FEMS_ID, ControlCommand(mode=ControlMode.POWER, setpoint_w=800))
    ]
    response = await handle(hass, INTENT_GET_STATE, {"battery": "FEMS ess0", "what": "override"})
    assert " or 30 %." in speech(response)
    assert response.speech_slots["override"] == "discharge"
    assert response.speech_slots["override_until_soc"] == 30


def _same_names() -> dict[str, BatterySnapshot]:
    snapshots = flexconnect_snapshots()
    return {
        battery_id: replace(snapshot, info=replace(snapshot.info, name="Battery"))
        for battery_id, snapshot in snapshots.items()
    }


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
@pytest.mark.parametrize("fake_snapshots", [pytest.param(_same_names(), id="same_names")])
async def test_two_batteries_with_one_name(
    hass: HomeAssistant, intents: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """A name two batteries share is ambiguous (spoken); each still answers to its other names."""
    assert await async_setup_component(hass, "conversation", {})
    expose(hass, intents)
    registry = er.async_get(hass)
    await hass.async_block_till_done()
    assert await say(hass, "how full is battery") == (
        "Several batteries are called battery; rename one of them."
    )
    device_id = er.async_entries_for_config_entry(registry, intents.entry_id)[0].device_id
    assert device_id
    dr.async_get(hass).async_update_device(device_id, name_by_user="Garage")
    await hass.async_block_till_done()
    assert await say(hass, "set garage power to 100 watts") == "Garage discharges with 100 W."
    device = dr.async_get(hass).async_get(device_id)
    assert device is not None
    ((_, uid),) = device.identifiers
    assert mock_backend.applied == [
        (uid.removeprefix("flexconnect_"), ControlCommand(mode=ControlMode.POWER, setpoint_w=100))
    ]


async def test_trigger_of_replaced_sentences(hass: HomeAssistant, intents: MockConfigEntry) -> None:
    """A sentence whose trigger was replaced meanwhile is answered, not crashed on."""
    assert await async_setup_component(hass, "conversation", {})
    await hass.async_block_till_done()
    triggers = hass.data[DATA_SENTENCES]
    result = await triggers._async_triggered(
        {"trigger": {"id": "gone", "sentence": "how full is x", "slots": {}, "user_input": {}}}
    )
    assert (
        result.conversation_response == "I don't know a battery called how full is x. Batteries: -."
    )


async def test_exposure_of_new_entities(hass: HomeAssistant, intents: MockConfigEntry) -> None:
    """Exposing one sensor gives the battery its sentences (read only)."""
    assert await async_setup_component(hass, "conversation", {})
    await hass.async_block_till_done()
    assert hass.data[DATA_SENTENCES].specs == {}
    async_expose_entity(hass, "conversation", "sensor.fems_ess0_state_of_charge", True)
    await hass.async_block_till_done()
    assert hass.data[DATA_SENTENCES].specs
    assert await say(hass, "how full is FEMS ess0") == "FEMS ess0 is at 72 %."


async def test_battery_without_device(hass: HomeAssistant, intents: MockConfigEntry) -> None:
    """A battery whose device was removed answers to no name."""
    (device,) = dr.async_entries_for_config_entry(dr.async_get(hass), intents.entry_id)
    dr.async_get(hass).async_remove_device(device.id)
    response = await handle(hass, INTENT_GET_STATE, {"battery": "FEMS ess0"}, assistant=None)
    assert speech(response) == "I don't know a battery called FEMS ess0. Batteries: -."


async def test_sentence_updates_coalesce(hass: HomeAssistant, intents: MockConfigEntry) -> None:
    """Updates asked for while one runs make it run once more, not once each."""
    assert await async_setup_component(hass, "conversation", {})
    expose(hass, intents)
    await hass.async_block_till_done()
    triggers = hass.data[DATA_SENTENCES]
    specs = triggers.specs
    triggers.async_remove()
    release = asyncio.Event()
    runs: list[None] = []

    async def phrases(hass: HomeAssistant) -> dict[ControlMode, tuple[str, ...]]:
        runs.append(None)
        await release.wait()
        return await async_mode_phrases(hass)

    with patch("custom_components.battery_bridge.sentences.async_mode_phrases", phrases):
        for _ in range(3):
            triggers.async_schedule_update()
        release.set()
        await hass.async_block_till_done()
    assert len(runs) == 2
    assert triggers.specs == specs
    assert await say(hass, "how full is FEMS ess0") == "FEMS ess0 is at 72 %."


async def test_update_sentences_before_setup(hass: HomeAssistant) -> None:
    """An entry loading before the domain set up its sentences changes nothing."""
    async_update_sentences(hass)
    assert DATA_SENTENCES not in hass.data


# --- Sentence triggers: rebuilds, trigger ids, registry events ---------------------------------


def _expose_device(hass: HomeAssistant, device_id: str, exposed: bool) -> None:
    for entity in er.async_entries_for_device(er.async_get(hass), device_id):
        async_expose_entity(hass, "conversation", entity.entity_id, exposed)


def _trigger(trigger_id: str, sentence: str, **slots: str) -> dict[str, Any]:
    return {"trigger": {"id": trigger_id, "sentence": sentence, "slots": slots, "user_input": {}}}


@pytest.mark.parametrize("fails_by", ["raising", "attaching_none"])
async def test_failed_attach_is_retried(
    hass: HomeAssistant, intents: MockConfigEntry, caplog: pytest.LogCaptureFixture, fails_by: str
) -> None:
    """Triggers that did not attach are attached by the next rebuild (the failure is logged)."""
    expose(hass, intents)
    calls: list[None] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        if len(calls) > 1:
            return await async_initialize_triggers(*args, **kwargs)
        if fails_by == "raising":
            raise RuntimeError("boom")
        return None

    with patch("custom_components.battery_bridge.sentences.async_initialize_triggers", flaky):
        assert await async_setup_component(hass, "conversation", {})
        await hass.async_block_till_done()
        triggers = hass.data[DATA_SENTENCES]
        assert len(calls) == 1
        assert triggers.specs == {}
        assert ("Could not attach the Battery Bridge sentences" in caplog.text) is (
            fails_by == "raising"
        )
        triggers.async_schedule_update()
        await hass.async_block_till_done()
    assert len(calls) == 2
    assert triggers.specs
    assert await say(hass, "how full is FEMS ess0") == "FEMS ess0 is at 72 %."


async def test_invalid_sentences_keep_the_attached_ones(
    hass: HomeAssistant, intents: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """A rebuild whose sentences do not validate leaves the triggers in place."""
    assert await async_setup_component(hass, "conversation", {})
    expose(hass, intents)
    await hass.async_block_till_done()
    triggers = hass.data[DATA_SENTENCES]
    specs = triggers.specs
    (device,) = dr.async_entries_for_config_entry(dr.async_get(hass), intents.entry_id)
    with patch(
        "custom_components.battery_bridge.sentences.async_validate_trigger_config",
        side_effect=vol.Invalid("bad sentence"),
    ):
        dr.async_get(hass).async_update_device(device.id, name_by_user="Hausspeicher")
        await hass.async_block_till_done()
    assert "Could not attach the Battery Bridge sentences" in caplog.text
    assert triggers.specs == specs
    # The old sentences still run (spoken with the battery's name now); the next rebuild works.
    assert await say(hass, "how full is FEMS ess0") == "Hausspeicher is at 72 %."
    triggers.async_schedule_update()
    await hass.async_block_till_done()
    assert await say(hass, "how full is Hausspeicher") == "Hausspeicher is at 72 %."


def test_trigger_ids_are_unique() -> None:
    """Every spec of a battery has an id of its own, from its meaning."""
    specs = battery_specs("dev", "(a|b)", {mode: (mode.value,) for mode in ControlMode})
    assert len({spec.trigger_id for spec in specs}) == len(specs)
    assert specs[0].trigger_id == "BatteryBridgeGetState(battery=dev,what=soc)[]"


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_trigger_ids_survive_rebuilds(
    hass: HomeAssistant, intents: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """A sentence matched before a rebuild runs for its own battery, never for another one."""
    assert await async_setup_component(hass, "conversation", {})
    expose(hass, intents)
    await hass.async_block_till_done()
    triggers = hass.data[DATA_SENTENCES]
    before = dict(triggers.specs)
    first, second = dict.fromkeys(spec.slots["battery"] for spec in before.values())

    def key(battery: str, intent_type: str, factor: float = 1, **slots: str) -> str:
        return next(
            key
            for key, spec in before.items()
            if spec.intent_type == intent_type
            and spec.slots == {"battery": battery, **slots}
            and all(number.factor == factor for number in spec.numbers)
        )

    soc = {battery: key(battery, INTENT_GET_STATE, what="soc") for battery in (first, second)}
    set_power = key(first, INTENT_SET_POWER)
    second_soc = await triggers._async_triggered(_trigger(soc[second], "how full is it"))
    assert second_soc.conversation_response.endswith(" is at 12.5 %.")
    # Renamed: the same ids.
    dr.async_get(hass).async_update_device(first, name_by_user="Renamed")
    await hass.async_block_till_done()
    assert set(triggers.specs) == set(before)
    # The first battery is no longer exposed: its ids are gone, the second one's still mean it.
    _expose_device(hass, first, False)
    await hass.async_block_till_done()
    result = await triggers._async_triggered(_trigger(soc[second], "how full is it"))
    assert result.conversation_response == second_soc.conversation_response
    result = await triggers._async_triggered(_trigger(soc[first], "how full is renamed"))
    assert result.conversation_response == (
        "I don't know a battery called how full is renamed. Batteries: -."
    )
    await triggers._async_triggered(_trigger(set_power, "set renamed power to 100 w", power="100"))
    assert mock_backend.applied == []


async def test_registry_events_of_other_integrations(
    hass: HomeAssistant, intents: MockConfigEntry
) -> None:
    """Only changes of our devices and entities rebuild the sentences."""
    assert await async_setup_component(hass, "conversation", {})
    expose(hass, intents)
    await hass.async_block_till_done()
    runs: list[None] = []

    async def phrases(hass: HomeAssistant) -> dict[ControlMode, tuple[str, ...]]:
        runs.append(None)
        return await async_mode_phrases(hass)

    devices, entities = dr.async_get(hass), er.async_get(hass)
    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    with patch("custom_components.battery_bridge.sentences.async_mode_phrases", phrases):
        # Someone else's device and entity: created, renamed, removed.
        device = devices.async_get_or_create(
            config_entry_id=other.entry_id, identifiers={("other", "1")}, name="Lamp"
        )
        devices.async_update_device(device.id, name_by_user="Kitchen lamp")
        entity = entities.async_get_or_create("light", "other", "1", config_entry=other)
        entities.async_update_entity(entity.entity_id, name="Kitchen")
        entities.async_remove(entity.entity_id)
        devices.async_remove_device(device.id)
        await hass.async_block_till_done()
        assert runs == []
        # Ours: the battery renamed, an entity renamed, an entity removed.
        (battery,) = dr.async_entries_for_config_entry(devices, intents.entry_id)
        devices.async_update_device(battery.id, name_by_user="Home")
        await hass.async_block_till_done()
        assert len(runs) == 1
        ours = er.async_entries_for_device(entities, battery.id)[0].entity_id
        entities.async_update_entity(ours, new_entity_id=f"{ours}_renamed")
        await hass.async_block_till_done()
        assert len(runs) == 2
        entities.async_remove(f"{ours}_renamed")
        await hass.async_block_till_done()
        assert len(runs) == 3
    assert await say(hass, "how full is Home") == "Home is at 72 %."


# --- Where the texts live ----------------------------------------------------------------------

COMPONENT = Path(__file__).parents[2] / "custom_components" / "battery_bridge"
RAISED = re.compile(r'(?:VoiceError\(\s*|_async_say\(\s*language,\s*)"(voice_[a-z_]+)"')


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "filename", ["strings.json", "translations/en.json", "translations/de.json"]
)
def test_spoken_answers_are_no_exceptions(filename: str) -> None:
    """Answers come from voice_texts/, errors from the exception translations; none is missing."""
    language = "en" if filename == "strings.json" else Path(filename).stem
    answers = _json(COMPONENT / "voice_texts" / f"{language}.json")
    assert set(answers) == set(_json(COMPONENT / "voice_texts" / "en.json"))
    assert all(answers.values())
    source = "".join(
        (COMPONENT / module).read_text(encoding="utf-8")
        for module in ("voice.py", "intent.py", "sentences.py")
    )
    errors = set(RAISED.findall(source))
    exceptions = {key for key in _json(COMPONENT / filename)["exceptions"] if "voice" in key}
    assert exceptions == errors
    # Every text the intents speak, the ones whose key is made up included.
    spoken = set(re.findall(r'"(voice_[a-z_]+)"', source)) - {"voice_texts"} | {
        *(f"voice_{part}_unknown" for part in ("soc", "power", "mode", "setpoint")),
        *(f"voice_{kind}_{way}" for kind in ("setpoint", "power_set") for way in POWER_KEYS),
    }
    assert spoken == set(answers) | errors


async def test_voice_texts_read_once_off_the_loop(hass: HomeAssistant) -> None:
    """The answers are read from their files once, in the executor."""
    threads: list[threading.Thread] = []

    def read() -> dict[str, dict[str, str]]:
        threads.append(threading.current_thread())
        return _read_voice_texts()

    with patch("custom_components.battery_bridge.voice._read_voice_texts", read):
        english = await async_speech(hass, "en")
        german = await async_speech(hass, "de")
    assert threads
    assert threads[0] is not threading.main_thread()
    assert len(threads) == 1
    assert english.say("voice_mode_set", battery="B", mode="Auto") == "B is set to Auto."
    assert german.say("voice_mode_set", battery="B", mode="Auto") == "B ist auf Auto gestellt."
    assert german.say("voice_read_only", battery="B") == "B kann nur gelesen werden."
