"""Tests of planned charging through the actions: slot choice, the chain, re-plans, restarts."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
import json
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.number import ATTR_VALUE, DOMAIN as NUMBER_DOMAIN, SERVICE_SET_VALUE
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import (
    Event,
    EventStateChangedData,
    HomeAssistant,
    ServiceCall,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.battery_bridge.api import (
    BackendKind,
    BatterySnapshot,
    CannotConnectError,
    ControlCommand,
    ControlMode,
)
from custom_components.battery_bridge.const import DOMAIN
from custom_components.battery_bridge.plan import ReplanReason, parse_price_forecast, plan_charge
from custom_components.battery_bridge.plan_runner import HANDOVER_GRACE
from custom_components.battery_bridge.plan_store import PLAN_STORAGE_KEY

from .conftest import FEMS_ID, FakeBackend, fems_snapshots
from .test_overrides import _device_id

FIXTURES = Path(__file__).parent.parent / "fixtures" / "prices"
H = timedelta(hours=1)
NOW = datetime(2026, 5, 1, 22, 0, tzinfo=dt_util.UTC)
AUTO = ControlCommand(mode=ControlMode.AUTO)
PLAN = "sensor.fems_ess0_plan"
NEXT = "sensor.fems_ess0_plan_next_start"
PRICE = "sensor.price"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _charge(watts: int) -> ControlCommand:
    return ControlCommand(mode=ControlMode.POWER, setpoint_w=-watts)


HOLD = ControlCommand(mode=ControlMode.POWER, setpoint_w=0)


async def _plan(hass: HomeAssistant, entry: MockConfigEntry, **data: Any) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN,
        "plan_charge",
        {"device_id": _device_id(hass, entry, data.pop("subentry", "sub_1")), **data},
        blocking=True,
        return_response=True,
    )
    await hass.async_block_till_done()
    assert isinstance(response, dict)
    return response


async def _plan_cheap_second_hour(
    hass: HomeAssistant, entry: MockConfigEntry, *, until_soc: int
) -> dict[str, Any]:
    """Plan over three hourly slots with the second the cheapest, at 1000 W."""
    return await _plan(
        hass,
        entry,
        until_soc=until_soc,
        deadline=(NOW + 3 * H).isoformat(),
        prices=_hourly(NOW, [0.30, 0.10, 0.30]),
        power=1000,
    )


async def _cancel(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await hass.services.async_call(
        DOMAIN, "cancel_plan", {"device_id": _device_id(hass, entry)}, blocking=True
    )
    await hass.async_block_till_done()


async def _to(hass: HomeAssistant, freezer: FrozenDateTimeFactory, when: datetime) -> None:
    freezer.move_to(when)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


def _hourly(start: datetime, prices: list[float]) -> list[dict[str, Any]]:
    return [
        {"start": (start + i * H).isoformat(), "duration": "01:00", "price": price}
        for i, price in enumerate(prices)
    ]


def _writes(backend: FakeBackend) -> list[ControlCommand]:
    """The distinct commands written, in order (keepalive rewrites folded)."""
    commands: list[ControlCommand] = []
    for _battery, command in backend.applied:
        if not commands or commands[-1] != command:
            commands.append(command)
    return commands


async def _soc(entry: MockConfigEntry, backend: FakeBackend, soc: float | None) -> None:
    """Let the battery report ``soc`` and poll it."""
    backend.set_state(FEMS_ID, state_of_charge=soc)
    await entry.runtime_data.batteries["sub_1"].coordinator.async_refresh()


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def _attrs(hass: HomeAssistant, entity_id: str = PLAN) -> dict[str, Any]:
    state = hass.states.get(entity_id)
    assert state is not None
    return dict(state.attributes)


@pytest.fixture(autouse=True)
def _frozen(freezer: FrozenDateTimeFactory) -> None:
    freezer.move_to(NOW)


# --- Slot choice on each supported price format -------------------------------------------------

# fixture, where it comes from (attributes / an action of nordpool or tibber), now, deadline.
FORMATS = [
    ("entsoe_average_price.json", None, "2024-04-30T22:00:00+00:00", "2024-05-02T07:00:00+02:00"),
    ("epex_spot_market_price.json", None, "2025-09-30T22:00:00+00:00", "2025-10-01T00:00:00Z"),
    ("epex_spot_price_2022.json", None, "2022-12-15T23:00:00+00:00", "2022-12-16T02:00:00Z"),
    ("nordpool_custom_attributes.json", None, "2024-11-04T23:00:00Z", "2024-11-06T07:00:00+01:00"),
    ("octopus_energy_current_day_rates.json", None, "2024-01-15T00:00:00Z", "2024-01-15T06:00Z"),
    ("nordpool_get_prices_for_date.json", "nordpool", "2024-11-04T23:00Z", "2024-11-05T23:00Z"),
    ("tibber_get_prices.json", "tibber", "2023-12-08T22:00:00Z", "2023-12-09T06:00:00+02:00"),
]


def _register_action(hass: HomeAssistant, platform: str, response: Any) -> list[dict[str, Any]]:
    """Give the price entity to ``platform`` and register its forecast action."""
    calls: list[dict[str, Any]] = []
    tariff = MockConfigEntry(domain=platform)
    tariff.add_to_hass(hass)
    er.async_get(hass).async_get_or_create(
        "sensor", platform, "price", suggested_object_id="price", config_entry=tariff
    )
    service = "get_prices_for_date" if platform == "nordpool" else "get_prices"

    async def _action(call: ServiceCall) -> Any:
        calls.append(dict(call.data))
        return response

    hass.services.async_register(
        platform, service, _action, supports_response=SupportsResponse.ONLY
    )
    return calls


@pytest.mark.parametrize(("fixture", "action", "now", "deadline"), FORMATS)
async def test_slot_choice_per_price_format(  # noqa: PLR0917 - fixtures and parameters
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
    fixture: str,
    action: str | None,
    now: str,
    deadline: str,
) -> None:
    """The action reads each format, picks the cheapest slots and charges only in them."""
    freezer.move_to(now)
    data = load(fixture)
    source = "Nickname_Home" if action == "tibber" else None
    calls = [] if action is None else _register_action(hass, action, data)
    hass.states.async_set(PRICE, "0.2", {} if action else data)
    extra = {} if source is None else {"price_source": source}
    response = await _plan(
        hass,
        init_integration,
        until_soc=80,
        deadline=deadline,
        price_entity=PRICE,
        power=1000,
        **extra,
    )
    expected = plan_charge(
        dt_util.utcnow(),
        datetime.fromisoformat(deadline),
        soc_now=72,
        target_soc=80,
        capacity_wh=8800,
        max_charge_w=1000,
        slots=parse_price_forecast(
            None if action else data, data if action else None, source=source
        ),
    )
    assert response["slots"] == expected.as_attributes()["slots"]
    assert response["slots"]
    assert _attrs(hass)["slots"] == response["slots"]
    assert bool(calls) == bool(action)
    in_slot = expected.slot_at(dt_util.utcnow()) is not None
    assert _state(hass, PLAN) == ("charging" if in_slot else "waiting")
    assert _writes(mock_backend) == ([_charge(1000)] if in_slot else [])


async def test_nordpool_asks_each_day_and_skips_a_failing_one(
    hass: HomeAssistant, init_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Nord Pool is asked once per local day; a day without prices yet is skipped."""
    freezer.move_to("2024-11-04T23:00Z")
    calls = _register_action(hass, "nordpool", load("nordpool_get_prices_for_date.json"))
    hass.states.async_set(PRICE, "0.2", {})
    response = await _plan(
        hass, init_integration, until_soc=80, deadline="2024-11-06T12:00Z", price_entity=PRICE
    )
    assert [call["date"] for call in calls] == ["2024-11-04", "2024-11-05", "2024-11-06"]
    assert response["mode"] == "cheapest"


async def test_generic_prices_chain_with_hold(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """Wait, charge, hold between slots, charge, done: hold until the deadline, then auto."""
    response = await _plan(
        hass,
        init_integration,
        until_soc=90,
        deadline=(NOW + 5 * H).isoformat(),
        prices=_hourly(NOW, [0.30, 0.10, 0.30, 0.05, 0.30]),
        power=1000,
    )
    assert response["status"] == "waiting"
    assert response["hold_between"] is True
    assert response["warnings"] == []
    assert [(s["start"], s["end"]) for s in response["slots"]] == [
        (dt_util.as_local(NOW + H).isoformat(), dt_util.as_local(NOW + H * 106 / 60).isoformat()),
        (dt_util.as_local(NOW + 3 * H).isoformat(), dt_util.as_local(NOW + 4 * H).isoformat()),
    ]
    assert _writes(mock_backend) == []  # nothing before the first slot
    assert _state(hass, NEXT) == (NOW + H).isoformat()
    assert PLAN_STORAGE_KEY in hass_storage

    await _to(hass, freezer, NOW + H)
    assert _state(hass, PLAN) == "charging"
    assert _writes(mock_backend) == [_charge(1000)]
    assert _state(hass, "sensor.fems_ess0_override") == "charge"
    end = dt_util.parse_datetime(_state(hass, "sensor.fems_ess0_override_end"))
    assert end == NOW + H * 106 / 60 + HANDOVER_GRACE  # handed over before it ends

    await _soc(init_integration, mock_backend, 80.0)
    await _to(hass, freezer, NOW + H * 106 / 60)
    assert _state(hass, PLAN) == "waiting"
    assert _writes(mock_backend) == [_charge(1000), HOLD]
    assert _state(hass, NEXT) == (NOW + 3 * H).isoformat()

    await _to(hass, freezer, NOW + 3 * H)
    assert _writes(mock_backend) == [_charge(1000), HOLD, _charge(1000)]
    await _soc(init_integration, mock_backend, 90.0)
    await _to(hass, freezer, NOW + 3.5 * H)
    assert _state(hass, PLAN) == "done"
    assert _writes(mock_backend)[-1] == HOLD  # kept until the deadline
    assert _state(hass, NEXT) == "unknown"
    assert hass_storage[PLAN_STORAGE_KEY]["data"] == {}

    await _to(hass, freezer, NOW + 5 * H)
    assert _writes(mock_backend)[-1] == AUTO  # the fallback from before the plan
    assert _state(hass, "sensor.fems_ess0_override") == "none"


async def test_without_hold_returns_to_fallback_and_ends_at_target(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Without hold, the fallback runs between slots; the target ends the charge override."""
    await _plan(
        hass,
        init_integration,
        until_soc=90,
        deadline=(NOW + 5 * H).isoformat(),
        prices=_hourly(NOW, [0.30, 0.10, 0.30, 0.05, 0.30]),
        power=1000,
        hold_between=False,
    )
    await _to(hass, freezer, NOW + H)
    await _soc(init_integration, mock_backend, 80.0)
    await _to(hass, freezer, NOW + H * 106 / 60)
    assert _writes(mock_backend) == [_charge(1000), AUTO]
    assert _state(hass, PLAN) == "waiting"
    await _to(hass, freezer, NOW + 3 * H)
    assert _writes(mock_backend)[-1] == _charge(1000)
    await _soc(init_integration, mock_backend, 90.0)
    await _to(hass, freezer, NOW + 3 * H + timedelta(minutes=5))
    await hass.async_block_till_done()
    assert _writes(mock_backend)[-1] == AUTO  # until_soc ended it
    assert _state(hass, PLAN) == "done"


async def test_without_prices_charges_as_late_as_possible(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """No prices: one run ending the safety margin before the deadline, at full power."""
    response = await _plan(hass, init_integration, until_soc=100, deadline="07:00")
    assert response["mode"] == "latest"
    assert response["slots"][0]["power_w"] == 5000  # the FEMS's largest charge power
    # 07:00 local (US/Pacific in tests) is 14:00 UTC the next day.
    assert response["deadline"] == dt_util.as_local(NOW.replace(day=2, hour=14)).isoformat()
    assert (
        response["slots"][-1]["end"]
        == dt_util.as_local(NOW.replace(day=2, hour=13, minute=30)).isoformat()
    )
    assert _writes(mock_backend) == []


async def test_missed_deadline(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The deadline passes before the target: missed, the fallback written."""
    response = await _plan(
        hass, init_integration, until_soc=100, deadline=(NOW + H / 6).isoformat()
    )
    assert response["warnings"] == ["insufficient_time"]
    assert response["impossible"] is True
    assert _state(hass, PLAN) == "charging"  # charging now
    assert _writes(mock_backend) == [_charge(5000)]
    await _to(hass, freezer, NOW + H / 6)
    assert _state(hass, PLAN) == "missed"
    assert _writes(mock_backend)[-1] == AUTO


async def test_replan_on_price_change(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A new forecast on the price entity makes the plan again; the same one does not."""

    def epex(prices: list[float]) -> dict[str, Any]:
        return {
            "data": [
                {
                    "start_time": (NOW + i * H).isoformat(),
                    "end_time": (NOW + (i + 1) * H).isoformat(),
                    "price_per_kwh": price,
                }
                for i, price in enumerate(prices)
            ]
        }

    hass.states.async_set(PRICE, "0.3", epex([0.3, 0.1, 0.3, 0.3]))
    await _plan(
        hass,
        init_integration,
        until_soc=80,
        deadline=(NOW + 4 * H).isoformat(),
        price_entity=PRICE,
        power=1000,
    )
    assert _attrs(hass)["slots"][0]["start"] == dt_util.as_local(NOW + H).isoformat()
    hass.states.async_set(PRICE, "0.31", epex([0.3, 0.1, 0.3, 0.3]))
    await hass.async_block_till_done()
    assert _attrs(hass)["replanned"] is None
    hass.states.async_set(PRICE, "0.3", epex([0.3, 0.4, 0.05, 0.3]))
    await hass.async_block_till_done()
    assert _attrs(hass)["replanned"] == "forecast_changed"
    assert _attrs(hass)["slots"][0]["start"] == dt_util.as_local(NOW + 2 * H).isoformat()
    # A forecast that cannot be read keeps the plan.
    hass.states.async_set(PRICE, "0.3", {"data": [{"start_time": "x", "end_time": "y"}]})
    await hass.async_block_till_done()
    assert _attrs(hass)["slots"][0]["start"] == dt_util.as_local(NOW + 2 * H).isoformat()
    await _to(hass, freezer, NOW + 2 * H)
    assert _writes(mock_backend) == [_charge(1000)]


async def test_replan_when_behind_schedule(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A state of charge that lags the plan by more than the tolerance re-plans from now."""
    await _plan(
        hass,
        init_integration,
        until_soc=90,
        deadline=(NOW + 5 * H).isoformat(),
        prices=_hourly(NOW, [0.10, 0.20, 0.30, 0.40, 0.50]),
        power=1000,
    )
    assert _state(hass, PLAN) == "charging"
    await _to(hass, freezer, NOW + timedelta(minutes=40))
    await _soc(init_integration, mock_backend, 72.5)  # lags the plan by 6 points
    await hass.async_block_till_done()
    attributes = _attrs(hass)
    assert attributes["replanned"] == "behind_schedule"
    assert attributes["created"] == dt_util.as_local(NOW + timedelta(minutes=40)).isoformat()
    assert attributes["soc_at_start"] == 72.5
    assert _state(hass, PLAN) == "charging"


async def test_cancel_restores_the_fallback(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    hass_storage: dict[str, Any],
) -> None:
    """cancel_plan ends the plan's override; without a plan it does nothing."""
    await _plan(hass, init_integration, until_soc=90, deadline=(NOW + H / 3).isoformat())
    assert _writes(mock_backend) == [_charge(5000)]
    await _cancel(hass, init_integration)
    assert _writes(mock_backend) == [_charge(5000), AUTO]
    assert _state(hass, PLAN) == "idle"
    assert _attrs(hass).get("slots") is None
    assert hass_storage[PLAN_STORAGE_KEY]["data"] == {}
    await _cancel(hass, init_integration)
    assert _writes(mock_backend) == [_charge(5000), AUTO]


async def test_user_write_ends_the_plan(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """A setpoint of the user's own ends the plan without reverting."""
    await _plan(hass, init_integration, until_soc=90, deadline=(NOW + H / 3).isoformat())
    await hass.services.async_call(
        NUMBER_DOMAIN,
        SERVICE_SET_VALUE,
        {ATTR_ENTITY_ID: "number.fems_ess0_power_setpoint", ATTR_VALUE: 1500},
        blocking=True,
    )
    await hass.async_block_till_done()
    assert _state(hass, PLAN) == "idle"
    assert _writes(mock_backend)[-1] == ControlCommand(mode=ControlMode.POWER, setpoint_w=1500)


async def test_limit_change_keeps_the_plan(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A charge limit written during a slot keeps the override, and so the plan."""
    await _plan(hass, init_integration, until_soc=90, deadline=(NOW + H / 3).isoformat())
    await hass.services.async_call(
        NUMBER_DOMAIN,
        SERVICE_SET_VALUE,
        {ATTR_ENTITY_ID: "number.fems_ess0_charge_power_limit", ATTR_VALUE: 4000},
        blocking=True,
    )
    await hass.async_block_till_done()
    assert _state(hass, PLAN) == "charging"


@pytest.mark.parametrize("in_slot", [True, False])
async def test_restart_in_and_between_slots(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
    in_slot: bool,
) -> None:
    """A reload writes nothing: the plan's override resumes, the plan goes on."""
    await _plan(
        hass,
        init_integration,
        until_soc=90,
        deadline=(NOW + 5 * H).isoformat(),
        prices=_hourly(NOW, [0.30, 0.10, 0.30, 0.05, 0.30]),
        power=1000,
        hold_between=not in_slot,
    )
    await _to(hass, freezer, NOW + H)
    await _soc(init_integration, mock_backend, 80.0)
    if not in_slot:
        await _to(hass, freezer, NOW + 2 * H)  # holding
    written = len(_writes(mock_backend))
    applied = len(mock_backend.applied)
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert len(mock_backend.applied) == applied
    assert _state(hass, PLAN) == ("charging" if in_slot else "waiting")
    await _to(hass, freezer, NOW + 3 * H)
    assert _writes(mock_backend)[-1] == _charge(1000)
    end = dt_util.parse_datetime(_state(hass, "sensor.fems_ess0_override_end"))
    assert end == NOW + 4 * H + (timedelta(0) if in_slot else HANDOVER_GRACE)
    assert len(_writes(mock_backend)) >= written


async def test_restart_after_a_missed_deadline_and_bad_store(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """A plan whose deadline passed while stopped ends; a malformed stored plan is dropped."""
    await _plan(hass, init_integration, until_soc=90, deadline=(NOW + 4 * H).isoformat())
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    freezer.move_to(NOW + 5 * H)
    assert await hass.config_entries.async_setup(init_integration.entry_id)
    await hass.async_block_till_done()
    assert _state(hass, PLAN) == "missed"
    assert hass_storage[PLAN_STORAGE_KEY]["data"] == {}
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    hass_storage[PLAN_STORAGE_KEY]["data"] = {f"{init_integration.entry_id}/sub_1": {"plan": 1}}
    store = hass.data.pop("battery_bridge_plan_store")
    assert store is not None
    assert await hass.config_entries.async_setup(init_integration.entry_id)
    await hass.async_block_till_done()
    assert _state(hass, PLAN) == "idle"
    assert hass_storage[PLAN_STORAGE_KEY]["data"] == {}


async def test_a_failing_step_is_retried(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A write that fails at a slot's start is retried."""
    await _plan_cheap_second_hour(hass, init_integration, until_soc=80)
    mock_backend.apply_error = CannotConnectError("down")
    await _to(hass, freezer, NOW + H)
    mock_backend.apply_error = None
    await _to(hass, freezer, NOW + H + timedelta(seconds=30))
    assert _state(hass, PLAN) == "charging"
    assert _writes(mock_backend)[-1] == _charge(1000)


# --- Errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"until_soc": 50, "deadline": "07:00"}, "plan_target_reached"),
        ({"until_soc": 90, "deadline": "2026-05-01T21:00:00+00:00"}, "plan_deadline_passed"),
        (
            {"until_soc": 90, "deadline": "07:00", "price_entity": "sensor.none"},
            "price_entity_not_found",
        ),
        ({"until_soc": 90, "deadline": "07:00", "price_entity": PRICE}, "price_no_forecast"),
        ({"until_soc": 90, "deadline": "07:00", "prices": [{"start": "x"}]}, "price_invalid_entry"),
    ],
)
async def test_validation_errors(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    data: dict[str, Any],
    key: str,
) -> None:
    """Clear translated errors; nothing is written."""
    hass.states.async_set(PRICE, "0.3", {"unit_of_measurement": "EUR/kWh"})
    with pytest.raises(ServiceValidationError) as err:
        await _plan(hass, init_integration, **data)
    assert err.value.translation_key == key
    assert mock_backend.applied == []
    assert _state(hass, PLAN) == "idle"


async def test_naive_deadline_is_local(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A date and time without a zone is Home Assistant's local time."""
    response = await _plan(hass, init_integration, until_soc=80, deadline="2026-05-02 07:00:00")
    assert response["deadline"] == "2026-05-02T07:00:00-07:00"


@pytest.mark.parametrize("fake_snapshots", [fems_snapshots(can_write=False)])
async def test_read_only_battery(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_backend: FakeBackend,
    fake_snapshots: dict[str, BatterySnapshot],
) -> None:
    """A read-only battery has no plan sensors; the action refuses it."""
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(PLAN) is None
    with pytest.raises(ServiceValidationError) as err:
        await _plan(hass, mock_config_entry, until_soc=90, deadline="07:00")
    assert err.value.translation_key == "override_read_only"


@pytest.mark.parametrize("backend_kind", [BackendKind.FLEXCONNECT])
async def test_flexconnect_needs_power_without_bounds(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """Without bounds or an allowed charge power, the power must be given."""
    with pytest.raises(ServiceValidationError) as err:
        await _plan(hass, init_integration, until_soc=90, deadline="07:00")
    assert err.value.translation_key == "plan_power_required"
    await _plan(hass, init_integration, until_soc=60, deadline="23:00", power=2000)
    assert hass.states.get("sensor.garage_battery_plan") is not None


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_enode_charges_with_import_focus(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """Enode: a slot is import_focus; no hold (refused when asked for)."""
    with pytest.raises(ServiceValidationError) as err:
        await _plan(
            hass,
            init_integration,
            subentry="sub_2",
            until_soc=90,
            deadline="07:00",
            power=3000,
            hold_between=True,
        )
    assert err.value.translation_key == "plan_hold_not_supported"
    response = await _plan(
        hass,
        init_integration,
        subentry="sub_2",
        until_soc=90,
        deadline=(NOW + H).isoformat(),
        power=3000,
    )
    assert response["hold_between"] is False
    assert response["warnings"] == ["insufficient_time"]
    assert _writes(mock_backend) == [ControlCommand(mode=ControlMode.IMPORT_FOCUS)]
    assert _state(hass, "sensor.enphase_iq_plan") == "charging"


@pytest.mark.parametrize("backend_kind", [BackendKind.ENODE])
async def test_enode_without_charge_override(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """A battery whose modes lack the charge override's mode is refused."""
    runtime = init_integration.runtime_data.batteries["sub_2"]
    snapshot = runtime.coordinator.data
    from dataclasses import replace

    runtime.coordinator.data = replace(
        snapshot,
        capabilities=replace(snapshot.capabilities, modes=(ControlMode.SELF_RELIANCE,)),
    )
    with pytest.raises(ServiceValidationError) as err:
        await _plan(hass, init_integration, subentry="sub_2", until_soc=90, deadline="07:00")
    assert err.value.translation_key == "override_not_supported"


async def test_unknown_state_of_charge(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """Without a state of charge there is nothing to plan from."""
    mock_backend.set_state(FEMS_ID, state_of_charge=None)
    await init_integration.runtime_data.batteries["sub_1"].coordinator.async_refresh()
    with pytest.raises(ServiceValidationError) as err:
        await _plan(hass, init_integration, until_soc=90, deadline="07:00")
    assert err.value.translation_key == "plan_battery_unknown"


async def test_ambiguous_tibber_home(
    hass: HomeAssistant, init_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Several Tibber homes and none chosen: the error lists them; an unknown one too."""
    freezer.move_to("2023-12-08T22:00:00Z")
    _register_action(hass, "tibber", load("tibber_get_prices.json"))
    hass.states.async_set(PRICE, "0.4", {})
    with pytest.raises(ServiceValidationError) as err:
        await _plan(hass, init_integration, until_soc=90, deadline="06:00", price_entity=PRICE)
    assert err.value.translation_key == "price_ambiguous_source"
    with pytest.raises(ServiceValidationError) as err:
        await _plan(
            hass,
            init_integration,
            until_soc=90,
            deadline="06:00",
            price_entity=PRICE,
            price_source="Cabin",
        )
    assert err.value.translation_key == "price_unknown_source"
    assert err.value.translation_placeholders["source_name"] == "Cabin"


# --- Review fixes: exact ends, a failed first write, overlapping steps, owners, bounds ----------


def _gate(backend: FakeBackend, error: Exception | None = None) -> asyncio.Event:
    """Hold the backend's next writes until the returned event is set (then fail with ``error``)."""
    release = asyncio.Event()
    original = backend.async_apply

    async def apply(battery_id: str, command: ControlCommand) -> None:
        backend.applied.append((battery_id, command))
        await release.wait()
        if error is not None:
            raise error
        backend.async_apply = original  # type: ignore[method-assign]

    backend.async_apply = apply  # type: ignore[method-assign]
    return release


async def _until_written(backend: FakeBackend, count: int) -> None:
    for _ in range(100):
        if len(backend.applied) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(backend.applied)


async def test_ticking_clock_restart_writes_nothing(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a clock that moves between the runner's and the controller's now, a restart during a
    slot finds the plan's override by its exact end and writes nothing."""
    frozen = dt_util.utcnow
    ticks = iter(range(1, 1_000_000))
    monkeypatch.setattr(dt_util, "utcnow", lambda: frozen() + timedelta(microseconds=next(ticks)))
    await _plan(
        hass,
        init_integration,
        until_soc=90,
        deadline=(NOW + 5 * H).isoformat(),
        prices=_hourly(NOW, [0.10, 0.30, 0.30, 0.30, 0.30]),
        power=1000,
    )
    assert _writes(mock_backend) == [_charge(1000)]
    end = dt_util.parse_datetime(_state(hass, "sensor.fems_ess0_override_end"))
    assert end == NOW + H * 106 / 60 + HANDOVER_GRACE  # the plan's boundary, to the microsecond
    applied = len(mock_backend.applied)
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert len(mock_backend.applied) == applied
    assert _state(hass, PLAN) == "charging"


async def test_failed_first_write_drops_the_plan(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """A plan whose first write fails is no plan: idle, not stored, never retried or re-planned."""
    mock_backend.apply_error = CannotConnectError("down")
    with pytest.raises(HomeAssistantError):
        await _plan(
            hass,
            init_integration,
            until_soc=90,
            deadline=(NOW + 3 * H).isoformat(),
            prices=_hourly(NOW, [0.10, 0.30, 0.30]),
            power=1000,
        )
    mock_backend.apply_error = None
    written = len(mock_backend.applied)
    await _to(hass, freezer, NOW + timedelta(seconds=30))
    await _to(hass, freezer, NOW + timedelta(minutes=40))
    await _soc(init_integration, mock_backend, 72.5)  # would lag a running plan: a re-plan
    await hass.async_block_till_done()
    assert init_integration.runtime_data.batteries["sub_1"].planner.plan is None
    assert _state(hass, PLAN) == "idle"
    assert _attrs(hass).get("slots") is None
    assert hass_storage.get(PLAN_STORAGE_KEY, {"data": {}})["data"] == {}
    assert len(mock_backend.applied) == written


async def test_power_beyond_the_bound(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """A power beyond the battery's charge bound is refused; the default is clamped to it."""
    with pytest.raises(ServiceValidationError) as err:
        await _plan(hass, init_integration, until_soc=90, deadline="07:00", power=6000)
    assert err.value.translation_key == "setpoint_out_of_range"
    assert err.value.translation_placeholders == {"value": "-6000", "min": "-5000", "max": "5000"}
    assert mock_backend.applied == []
    assert _state(hass, PLAN) == "idle"
    await _soc(init_integration, mock_backend, 72.0)
    mock_backend.set_state(FEMS_ID, max_charge_power_w=8000.0)
    await init_integration.runtime_data.batteries["sub_1"].coordinator.async_refresh()
    response = await _plan(hass, init_integration, until_soc=100, deadline=(NOW + H).isoformat())
    assert response["slots"][0]["power_w"] == 5000
    assert _writes(mock_backend) == [_charge(5000)]


@pytest.mark.parametrize("fails", [False, True])
async def test_unload_with_a_step_in_flight_writes_nothing_after(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
    fails: bool,
) -> None:
    """A step whose write is in flight at unload sets no timer (next step, retry) afterwards."""
    await _plan_cheap_second_hour(hass, init_integration, until_soc=80)
    assert mock_backend.applied == []
    release = _gate(mock_backend, CannotConnectError("down") if fails else None)
    freezer.move_to(NOW + H)
    async_fire_time_changed(hass)
    await _until_written(mock_backend, 1)  # the slot's write is in flight
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    release.set()
    await hass.async_block_till_done()
    written = len(mock_backend.applied)
    for minutes in (1, 30, 60, 106, 120, 180):
        await _to(hass, freezer, NOW + H + timedelta(minutes=minutes))
    assert len(mock_backend.applied) == written


async def test_overlapping_steps_leave_no_lost_timer(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A re-plan (a lagging poll) while a slot's write is in flight waits for it; after unload
    no timer of either step is left to write."""
    await _plan_cheap_second_hour(hass, init_integration, until_soc=80)
    release = _gate(mock_backend)
    freezer.move_to(NOW + H)
    async_fire_time_changed(hass)
    await _until_written(mock_backend, 1)  # the slot's write is in flight
    await _soc(init_integration, mock_backend, 60.0)  # behind: a re-plan and its step
    for _ in range(10):
        await asyncio.sleep(0)
    release.set()
    await hass.async_block_till_done()
    assert _attrs(hass)["replanned"] == "behind_schedule"
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    written = len(mock_backend.applied)
    for minutes in (30, 47, 60, 90, 120):
        await _to(hass, freezer, NOW + H + timedelta(minutes=minutes))
    assert len(mock_backend.applied) == written


async def test_write_from_a_task_spawned_by_the_plan_ends_it(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
) -> None:
    """An automation set off by the plan's own state writes is a user: its write ends the plan."""
    await _plan_cheap_second_hour(hass, init_integration, until_soc=80)
    controller = init_integration.runtime_data.batteries["sub_1"].controller
    spawned: list[asyncio.Task[None]] = []

    @callback
    def _automation(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if not spawned and new is not None and new.state == "charge":
            spawned.append(hass.async_create_task(controller.async_set_power(1500)))

    async_track_state_change_event(hass, ["sensor.fems_ess0_override"], _automation)
    await _to(hass, freezer, NOW + H)
    assert spawned
    assert _writes(mock_backend) == [_charge(1000), _cmd_power(1500)]
    assert _state(hass, PLAN) == "idle"


def _cmd_power(watts: int) -> ControlCommand:
    return ControlCommand(mode=ControlMode.POWER, setpoint_w=watts)


async def test_stop_twice(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Stopping a runner twice (Home Assistant stop, then unload) is no error."""
    runner = init_integration.runtime_data.batteries["sub_1"].planner
    runner.async_stop()
    runner.async_stop()


async def test_deadline_too_far(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """A deadline more than seven days ahead is refused; seven days is fine."""
    with pytest.raises(ServiceValidationError) as err:
        await _plan(
            hass,
            init_integration,
            until_soc=90,
            deadline=(NOW + timedelta(days=7, hours=1)).isoformat(),
        )
    assert err.value.translation_key == "plan_deadline_too_far"
    assert err.value.translation_placeholders["days"] == "7"
    assert mock_backend.applied == []
    response = await _plan(
        hass, init_integration, until_soc=90, deadline=(NOW + timedelta(days=7)).isoformat()
    )
    assert response["status"] == "waiting"


async def test_slots_are_not_recorded(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The Plan sensor shows its slots but keeps them out of the recorder."""
    await _plan(hass, init_integration, until_soc=90, deadline="07:00")
    state = hass.states.get(PLAN)
    assert state is not None
    assert state.attributes["slots"]
    assert state.state_info is not None
    assert "slots" in state.state_info["unrecorded_attributes"]
    assert "target_soc" not in state.state_info["unrecorded_attributes"]


async def test_stopped_runner_writes_nothing(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    hass_storage: dict[str, Any],
) -> None:
    """After async_stop no entry point of the runner writes, schedules or forgets the plan."""
    await _plan(hass, init_integration, until_soc=90, deadline=(NOW + H / 3).isoformat())
    runner = init_integration.runtime_data.batteries["sub_1"].planner
    plan, settings = runner.plan, runner.settings
    assert plan is not None
    assert settings is not None
    written = len(mock_backend.applied)
    runner.async_stop()
    await runner.async_cancel()
    await runner.async_start(plan, settings)
    await runner.async_restore()
    await runner._async_wake(NOW)
    await runner._async_step_logged()
    await runner._async_ensure(None)
    await runner._async_replan(ReplanReason.BEHIND_SCHEDULE, None)
    await runner._async_replan_locked(ReplanReason.BEHIND_SCHEDULE, None, None)
    await runner._async_drop_locked(runner._run)
    await hass.async_block_till_done()
    assert len(mock_backend.applied) == written
    assert runner.plan is plan
    assert hass_storage[PLAN_STORAGE_KEY]["data"] != {}


async def test_late_replan_and_drop_skip_a_newer_plan(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_backend: FakeBackend
) -> None:
    """A re-plan of a plan made again meanwhile, a drop of one replaced meanwhile: skipped."""
    await _plan(hass, init_integration, until_soc=90, deadline=(NOW + H / 3).isoformat())
    runner = init_integration.runtime_data.batteries["sub_1"].planner
    old_run, plan = runner._run, runner.plan
    await _plan(hass, init_integration, until_soc=95, deadline=(NOW + H / 3).isoformat())
    newer = runner.plan
    assert plan is not None
    await runner._async_replan_locked(ReplanReason.BEHIND_SCHEDULE, None, plan)
    await runner._async_drop_locked(old_run)
    assert runner.plan is newer
    assert runner.replanned is None


async def test_user_write_first_in_line_wins_over_a_waiting_step(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_backend: FakeBackend,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A user's write that gets the lock before a waiting plan step: the step writes nothing."""
    await _plan_cheap_second_hour(hass, init_integration, until_soc=90)
    assert _writes(mock_backend) == []
    controller = init_integration.runtime_data.batteries["sub_1"].controller
    lock = controller._lock  # held here to line the two writes up
    await lock.acquire()
    user = hass.async_create_task(controller.async_set_power(1500))
    await asyncio.sleep(0)  # the user's write waits for the lock first
    freezer.move_to(NOW + H)  # the first slot begins: the plan's step waits behind it
    async_fire_time_changed(hass)
    await asyncio.sleep(0)
    lock.release()
    await user
    await hass.async_block_till_done()
    assert _writes(mock_backend) == [ControlCommand(mode=ControlMode.POWER, setpoint_w=1500)]
    assert _state(hass, PLAN) == "idle"
