"""Voice control through Assist's default agent (conversation.async_converse), en and de.

Each sentence either changes the battery (the command the fake backend received) or answers
with the value; errors are spoken.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import Platform
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.battery_bridge.api import (
    BackendKind,
    CannotConnectError,
    ControlCommand,
    ControlMode,
)
from custom_components.battery_bridge.const import DOMAIN
from custom_components.battery_bridge.overrides import OverrideMode
from custom_components.battery_bridge.sentences import DATA_SENTENCES

from .conftest import ENODE_ID_2, FEMS_ID, FakeBackend, fems_snapshots

FEMS = "FEMS ess0"


def expose(
    hass: HomeAssistant, entry: MockConfigEntry, *domains: str, exposed: bool = True
) -> None:
    """Expose the entry's entities (of ``domains``, default all) to Assist."""
    registry = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        if not domains or entity.domain in domains:
            async_expose_entity(hass, "conversation", entity.entity_id, exposed)


@pytest.fixture
async def assist(hass: HomeAssistant, init_integration: MockConfigEntry) -> MockConfigEntry:
    """Assist set up after the entry, with every entity of the entry exposed."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    expose(hass, init_integration)
    await hass.async_block_till_done()
    return init_integration


async def say(hass: HomeAssistant, text: str, language: str = "en") -> str:
    """Send a sentence to the default agent and return what it answers."""
    result = await conversation.async_converse(hass, text, None, Context(), language=language)
    speech: str = result.response.speech["plain"]["speech"]
    return speech


def power(setpoint: int) -> ControlCommand:
    return ControlCommand(mode=ControlMode.POWER, setpoint_w=setpoint)


# --- Sentences and their answers ---------------------------------------------------------------

BATTERY_IDS = {BackendKind.FEMS: FEMS_ID, BackendKind.ENODE: ENODE_ID_2}
ALL_OF_FEMS = (
    "FEMS ess0 is at 72 %. FEMS ess0 is discharging with 1200 W. FEMS ess0 is in mode Auto. "
    "The setpoint of FEMS ess0 is not known. No override is running on FEMS ess0."
)


def case(
    sentence: str,
    answer: str,
    *commands: ControlCommand,
    language: str = "en",
    kind: BackendKind = BackendKind.FEMS,
) -> Any:
    """A sentence, its whole answer and the commands the backend then received."""
    applied = [(BATTERY_IDS[kind], command) for command in commands]
    return pytest.param(kind, language, sentence, answer, applied, id=f"{language}: {sentence}")


def de(sentence: str, answer: str, *commands: ControlCommand) -> Any:
    return case(sentence, answer, *commands, language="de")


def enode(sentence: str, answer: str, *commands: ControlCommand, language: str = "en") -> Any:
    return case(sentence, answer, *commands, language=language, kind=BackendKind.ENODE)


@pytest.mark.parametrize(
    ("backend_kind", "language", "sentence", "answer", "applied"),
    [
        # Reading.
        case("what is the charge of FEMS ess0", "FEMS ess0 is at 72 %."),
        case("How full is fems ESS0?", "FEMS ess0 is at 72 %."),
        de("wie voll ist FEMS ess0", "FEMS ess0 ist zu 72 % geladen."),
        de("Wie ist der Ladestand von FEMS ess0?", "FEMS ess0 ist zu 72 % geladen."),
        case("what is the power of FEMS ess0", "FEMS ess0 is discharging with 1200 W."),
        de("welche leistung hat FEMS ess0", "FEMS ess0 entlädt mit 1200 W."),
        case("what mode is FEMS ess0 in", "FEMS ess0 is in mode Auto."),
        de("in welchem modus ist FEMS ess0", "FEMS ess0 ist im Modus Automatisch."),
        # In auto the FEMS runs its own control: no setpoint of ours (as the number shows).
        case("what is the setpoint of FEMS ess0", "The setpoint of FEMS ess0 is not known."),
        de("wie ist der sollwert von FEMS ess0", "Der Sollwert von FEMS ess0 ist nicht bekannt."),
        case("what is the override of FEMS ess0", "No override is running on FEMS ess0."),
        de("läuft eine übersteuerung bei FEMS ess0", "Auf FEMS ess0 läuft keine Übersteuerung."),
        case("what is the status of FEMS ess0", ALL_OF_FEMS),
        # FlexConnect reports no power: said so, not a made-up 0.
        case(
            "what is the power of Garage battery",
            "The power of Garage battery is not known.",
            kind=BackendKind.FLEXCONNECT,
        ),
        case(
            "what is the setpoint of Garage battery",
            "The setpoint of Garage battery is to charge with 2000 W.",
            kind=BackendKind.FLEXCONNECT,
        ),
        enode("what is the setpoint of Powerwall Home", "Powerwall Home takes no power setpoint."),
        enode("is Powerwall Home charging", "Powerwall Home is charging with 4600 W."),
        enode("what is the power of Enphase IQ", "Enphase IQ is neither charging nor discharging."),
        enode("what mode is Enphase IQ in", "Enphase IQ is in mode Self reliance."),
        # The power setpoint.
        case("set FEMS ess0 power to -1500 watts", "FEMS ess0 charges with 1500 W.", power(-1500)),
        case(
            "set the power of FEMS ess0 to minus 1,500 W",
            "FEMS ess0 charges with 1500 W.",
            power(-1500),
        ),
        case("charge FEMS ess0 with 3 kilowatts", "FEMS ess0 charges with 3000 W.", power(-3000)),
        case("discharge FEMS ess0 with 500 watts", "FEMS ess0 discharges with 500 W.", power(500)),
        case("set FEMS ess0 power to 1.5 kW", "FEMS ess0 discharges with 1500 W.", power(1500)),
        de(
            "setze die Leistung von FEMS ess0 auf -1500 Watt",
            "FEMS ess0 lädt mit 1500 W.",
            power(-1500),
        ),
        de("lade FEMS ess0 mit 3 Kilowatt", "FEMS ess0 lädt mit 3000 W.", power(-3000)),
        de("lade FEMS ess0 mit 1,5 kW", "FEMS ess0 lädt mit 1500 W.", power(-1500)),
        de("entlade FEMS ess0 mit 500 Watt", "FEMS ess0 entlädt mit 500 W.", power(500)),
        case("set FEMS ess0 power to 0 watts", "FEMS ess0 is set to 0 W.", power(0)),
        # Out of range and numbers that are none: spoken, nothing written.
        case(
            "set FEMS ess0 power to -9000 watts",
            "The power setpoint -9000 W is outside the range the battery allows "
            "(-5000 W to 5000 W).",
        ),
        de(
            "lade FEMS ess0 mit 9 kilowatt",
            "Der Leistungssollwert -9000 W liegt außerhalb des erlaubten Bereichs "
            "(-5000 W bis 5000 W).",
        ),
        case("charge FEMS ess0 with lots of watts", "I did not understand the number lots of."),
        de("lade FEMS ess0 mit viel watt", "Die Zahl viel habe ich nicht verstanden."),
        # The mode, by its spoken name.
        case(
            "set FEMS ess0 to auto", "FEMS ess0 is set to Auto.", ControlCommand(ControlMode.AUTO)
        ),
        case("FEMS ess0 auto", "FEMS ess0 is set to Auto.", ControlCommand(ControlMode.AUTO)),
        case("switch FEMS ess0 to power mode", "FEMS ess0 is set to Power.", power(0)),
        de(
            "stelle FEMS ess0 auf Automatisch",
            "FEMS ess0 ist auf Automatisch gestellt.",
            ControlCommand(ControlMode.AUTO),
        ),
        de("FEMS ess0 auf Leistung", "FEMS ess0 ist auf Leistung gestellt.", power(0)),
        enode(
            "set Enphase IQ to self reliance",
            "Enphase IQ is set to Self reliance.",
            ControlCommand(ControlMode.SELF_RELIANCE),
        ),
        enode(
            "Enphase IQ time of use",
            "Enphase IQ is set to Time of use.",
            ControlCommand(ControlMode.TIME_OF_USE),
        ),
        enode(
            "stelle Enphase IQ auf Eigenverbrauch",
            "Enphase IQ ist auf Eigenverbrauch gestellt.",
            ControlCommand(ControlMode.SELF_RELIANCE),
            language="de",
        ),
        enode(
            "schalte Enphase IQ auf Netzbezug bevorzugt",
            "Enphase IQ ist auf Netzbezug bevorzugt gestellt.",
            ControlCommand(ControlMode.IMPORT_FOCUS),
            language="de",
        ),
        case(
            "set FEMS ess0 to self reliance",
            "FEMS ess0 does not offer the mode Self reliance. Modes: Auto, Power.",
        ),
        de(
            "stelle FEMS ess0 auf Eigenverbrauch",
            "FEMS ess0 bietet den Modus Eigenverbrauch nicht an. Modi: Automatisch, Leistung.",
        ),
        # The controller's checks apply: the target state of charge is already reached.
        case(
            "charge FEMS ess0 to 50 percent",
            "The state of charge (72 %) has already reached the target of 50 %.",
        ),
    ],
)
async def test_sentence(
    hass: HomeAssistant,
    assist: MockConfigEntry,
    mock_backend: FakeBackend,
    *,
    language: str,
    sentence: str,
    answer: str,
    applied: list[tuple[str, ControlCommand]],
) -> None:
    """Each sentence gets its whole answer, and the backend exactly its commands."""
    assert await say(hass, sentence, language) == answer
    assert mock_backend.applied == applied


async def test_backend_error_is_spoken(
    hass: HomeAssistant, assist: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    mock_backend.apply_error = CannotConnectError("connection refused")
    assert await say(hass, "charge FEMS ess0 with 1 kilowatt") == (
        "Could not send the command to battery FEMS ess0: connection refused"
    )
    assert await say(hass, "lade FEMS ess0 mit 1 kilowatt", "de") == (
        "Der Befehl konnte nicht an Batterie FEMS ess0 gesendet werden: connection refused"
    )


@pytest.mark.parametrize(
    "fake_snapshots", [pytest.param(fems_snapshots(can_write=False), id="read_only")]
)
async def test_read_only_battery(
    hass: HomeAssistant, assist: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    assert await say(hass, "set FEMS ess0 power to 100 watts") == "FEMS ess0 is read-only."
    assert await say(hass, "stelle FEMS ess0 auf automatisch", "de") == (
        "FEMS ess0 kann nur gelesen werden."
    )
    assert await say(hass, "what is the setpoint of FEMS ess0") == (
        "FEMS ess0 takes no power setpoint."
    )
    assert mock_backend.applied == []


# --- Overrides ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "sentence", "mode", "setpoint", "minutes", "until_soc"),
    [
        ("en", "charge FEMS ess0 for two hours", OverrideMode.CHARGE, -5000, 120, None),
        ("en", "charge FEMS ess0 to 80 percent", OverrideMode.CHARGE, -5000, None, 80),
        ("en", "discharge FEMS ess0 for 30 minutes", OverrideMode.DISCHARGE, 5000, 30, None),
        ("en", "discharge FEMS ess0 to 20 %", OverrideMode.DISCHARGE, 5000, None, 20),
        ("en", "charge FEMS ess0 with 2 kW for an hour", OverrideMode.CHARGE, -2000, 60, None),
        ("en", "hold FEMS ess0 for 1.5 hours", OverrideMode.HOLD, 0, 90, None),
        ("de", "lade FEMS ess0 für zwei Stunden", OverrideMode.CHARGE, -5000, 120, None),
        ("de", "lade FEMS ess0 auf 80 Prozent", OverrideMode.CHARGE, -5000, None, 80),
        (
            "de",
            "entlade FEMS ess0 mit 500 Watt für 10 Minuten",
            OverrideMode.DISCHARGE,
            500,
            10,
            None,
        ),
        ("de", "halte FEMS ess0 für eine Stunde", OverrideMode.HOLD, 0, 60, None),
    ],
)
async def test_start_override(
    hass: HomeAssistant,
    assist: MockConfigEntry,
    *,
    mock_backend: FakeBackend,
    language: str,
    sentence: str,
    mode: OverrideMode,
    setpoint: int,
    minutes: int | None,
    until_soc: float | None,
) -> None:
    before = dt_util.utcnow()
    answer = await say(hass, sentence, language)
    assert answer.startswith("FEMS ess0: ")
    assert mock_backend.applied == [(FEMS_ID, power(setpoint))]
    override = assist.runtime_data.batteries["sub_1"].controller.override
    assert override is not None
    assert override.mode is mode
    assert override.until_soc == until_soc
    if minutes is None:
        assert override.ends_at is None
        assert f"{until_soc:g} %" in answer
    else:
        assert override.ends_at is not None
        elapsed = override.ends_at - before
        assert timedelta(minutes=minutes) <= elapsed < timedelta(minutes=minutes, seconds=5)
        assert dt_util.as_local(override.ends_at).strftime("%H:%M") in answer


async def test_stop_override_and_read_it(
    hass: HomeAssistant, assist: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    assert await say(hass, "stop the override of FEMS ess0") == (
        "No override is running on FEMS ess0."
    )
    await say(hass, "charge FEMS ess0 to 90 percent")
    assert await say(hass, "what is the override of FEMS ess0") == (
        "FEMS ess0: override Charging until 90 %."
    )
    assert await say(hass, "läuft eine Übersteuerung bei FEMS ess0", "de") == (
        "FEMS ess0: Übersteuerung Laden bis 90 %."
    )
    assert await say(hass, "stop the override of FEMS ess0") == "Stopped the override of FEMS ess0."
    # The fallback: the FEMS ran its own control, so the override returns to auto.
    assert mock_backend.applied[-1] == (FEMS_ID, ControlCommand(mode=ControlMode.AUTO))
    assert assist.runtime_data.batteries["sub_1"].controller.override is None
    await say(hass, "lade FEMS ess0 für 2 Stunden", "de")
    assert await say(hass, "beende die Übersteuerung von FEMS ess0", "de") == (
        "Die Übersteuerung von FEMS ess0 ist beendet."
    )
    assert mock_backend.applied[-1] == (FEMS_ID, ControlCommand(mode=ControlMode.AUTO))


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_override_on_a_battery_without_setpoint(
    hass: HomeAssistant, assist: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """Enode: charge is import focus (no power); hold does not exist."""
    assert (await say(hass, "charge Enphase IQ for 1 hour")).startswith("Enphase IQ: override")
    assert mock_backend.applied == [(ENODE_ID_2, ControlCommand(mode=ControlMode.IMPORT_FOCUS))]
    assert await say(hass, "hold Enphase IQ for 1 hour") == (
        "Battery Enphase IQ does not support the override hold."
    )


# --- Exposure and names ------------------------------------------------------------------------


async def test_unexposed_battery_is_not_matched(
    hass: HomeAssistant, assist: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    expose(hass, assist, exposed=False)
    await hass.async_block_till_done()
    assert hass.data[DATA_SENTENCES].specs == {}
    answer = await say(hass, "set FEMS ess0 power to -1500 watts")
    assert "FEMS" not in answer or "not aware" in answer
    assert mock_backend.applied == []


async def test_control_needs_a_control_entity_exposed(
    hass: HomeAssistant, assist: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    expose(hass, assist, Platform.NUMBER, Platform.SELECT, exposed=False)
    await hass.async_block_till_done()
    assert await say(hass, "how full is FEMS ess0") == "FEMS ess0 is at 72 %."
    assert await say(hass, "set FEMS ess0 power to -1500 watts") == (
        "FEMS ess0 can be read but not controlled: expose its mode or setpoint to Assist."
    )
    assert mock_backend.applied == []


async def test_renamed_battery(hass: HomeAssistant, assist: MockConfigEntry) -> None:
    """The name the user gives the device counts (and is spoken); the original one still works."""
    registry = dr.async_get(hass)
    (device,) = dr.async_entries_for_config_entry(registry, assist.entry_id)
    registry.async_update_device(device.id, name_by_user="Hausspeicher")
    await hass.async_block_till_done()
    assert await say(hass, "wie voll ist Hausspeicher", "de") == "Hausspeicher ist zu 72 % geladen."
    assert await say(hass, "how full is FEMS ess0") == "Hausspeicher is at 72 %."


async def test_unload_removes_the_sentences(
    hass: HomeAssistant, assist: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    assert hass.data[DATA_SENTENCES].specs
    assert await hass.config_entries.async_unload(assist.entry_id)
    await hass.async_block_till_done()
    assert hass.data[DATA_SENTENCES].specs == {}
    await say(hass, "set FEMS ess0 power to -1500 watts")
    assert mock_backend.applied == []


async def test_other_sentences_go_to_home_assistant(
    hass: HomeAssistant, assist: MockConfigEntry
) -> None:
    """A sentence without a battery's name reaches Home Assistant's own intents."""
    hass.states.async_set("light.kitchen", "off", {"friendly_name": "Kitchen"})
    async_expose_entity(hass, "conversation", "light.kitchen", True)
    await hass.async_block_till_done()
    answer = await say(hass, "turn on the kitchen")
    assert "FEMS" not in answer


async def test_conversation_loaded_first(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_backend: FakeBackend,
) -> None:
    """Assist set up before the integration: the sentences come with the entry."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    expose(hass, mock_config_entry)
    await hass.async_block_till_done()
    assert await say(hass, "how full is FEMS ess0") == "FEMS ess0 is at 72 %."
    assert DOMAIN in hass.config.components
    await hass.config_entries.async_unload(mock_config_entry.entry_id)
    await hass.async_block_till_done()


async def test_sentences_after_a_reload(
    hass: HomeAssistant, assist: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """A reload (or restart) with nothing new in the registries still brings the sentences back.

    The rebuild must see the entry loaded: one started during its set-up would leave it out.
    """
    assert await hass.config_entries.async_reload(assist.entry_id)
    await hass.async_block_till_done()
    assert hass.data[DATA_SENTENCES].specs
    assert await say(hass, "how full is FEMS ess0") == "FEMS ess0 is at 72 %."
