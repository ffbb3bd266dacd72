"""Tests for the planner core: price forecasts of each tariff integration, slot choice, re-plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from homeassistant.util import dt as dt_util
import pytest

from custom_components.battery_bridge.plan import (
    ChargePlan,
    ChargeWindow,
    PlanIssue,
    PlanMode,
    PlannedSlot,
    PlanStatus,
    PriceErrorReason,
    PriceFormatError,
    PriceSlot,
    ReplanReason,
    merge_price_slots,
    parse_price_forecast,
    parse_price_slots,
    plan_charge,
    replan_needed,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "prices"
BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def hourly(start: datetime, prices: list[float]) -> list[PriceSlot]:
    return [PriceSlot(start + i * H, start + (i + 1) * H, price) for i, price in enumerate(prices)]


def reason(err: pytest.ExceptionInfo[PriceFormatError]) -> PriceErrorReason:
    return err.value.reason


# A battery of 10 kWh at 2 kW: from 30 % to 84 % at 90 % efficiency is 6000 Wh, 3 h at 2 kW.
BATTERY: dict[str, Any] = {"capacity_wh": 10000, "max_charge_w": 2000}


# --- Price formats -------------------------------------------------------------------------------


def test_nordpool_core_action_response() -> None:
    """The core integration has no forecast attributes: the action response is read (per MWh)."""
    sensor_attributes = {"unit_of_measurement": "SEK/kWh", "friendly_name": "SE3 Current price"}
    response = load("nordpool_get_prices_for_date.json")
    slots = parse_price_forecast(sensor_attributes, response)
    assert len(slots) == 24
    assert slots[0] == PriceSlot(utc(2024, 11, 4, 23), utc(2024, 11, 5, 0), 0.25073)
    assert slots[-1].end == utc(2024, 11, 5, 23)
    assert parse_price_forecast(None, response) == slots
    with pytest.raises(PriceFormatError) as err:
        parse_price_forecast(sensor_attributes)
    assert reason(err) is PriceErrorReason.NO_FORECAST


def test_nordpool_core_areas() -> None:
    response = load("nordpool_get_prices_for_date.json")
    response["SE4"] = [{**item, "price": item["price"] * 2} for item in response["SE3"]]
    with pytest.raises(PriceFormatError) as err:
        parse_price_forecast(None, response)
    assert reason(err) is PriceErrorReason.AMBIGUOUS_SOURCE
    assert err.value.placeholders == {"choices": "SE3, SE4"}
    assert parse_price_forecast(None, response, source="se4")[0].price == pytest.approx(0.50146)
    with pytest.raises(PriceFormatError) as err:
        parse_price_forecast(None, response, source="NO1")
    assert reason(err) is PriceErrorReason.UNKNOWN_SOURCE
    assert err.value.placeholders == {"source": "NO1", "choices": "SE3, SE4"}


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ({"SE3": []}, PriceErrorReason.EMPTY_FORECAST),  # the core's answer to an empty day
        ({}, PriceErrorReason.NO_FORECAST),
        ({"SE3": "nothing"}, PriceErrorReason.NO_FORECAST),
        (42, PriceErrorReason.NO_FORECAST),
        ({"prices": {}}, PriceErrorReason.EMPTY_FORECAST),
        (
            {"SE3": [{"start": "2024-11-04T23:00:00+00:00", "price": 1}]},
            PriceErrorReason.INVALID_ENTRY,
        ),
        ({"SE3": ["x"]}, PriceErrorReason.INVALID_ENTRY),
    ],
)
def test_bad_responses(response: Any, expected: PriceErrorReason) -> None:
    with pytest.raises(PriceFormatError) as err:
        parse_price_forecast(None, response)
    assert reason(err) is expected
    assert str(err.value)


def test_nordpool_core_missing_price() -> None:
    response = load("nordpool_get_prices_for_date.json")
    response["SE3"][0]["price"] = None
    slots = parse_price_forecast(None, response)
    assert len(slots) == 23
    assert slots[0].start == utc(2024, 11, 5, 0)


def test_nordpool_custom_attributes() -> None:
    attributes = load("nordpool_custom_attributes.json")
    slots = parse_price_forecast(attributes)
    assert len(slots) == 48
    assert slots[0] == PriceSlot(utc(2024, 11, 4, 23), utc(2024, 11, 5, 0), 0.121)
    assert slots[24].start == utc(2024, 11, 5, 23)  # tomorrow, 00:00 local
    assert all(a.end == b.start for a, b in pairwise(slots))
    # In Home Assistant's state machine the times are datetime objects, not strings.
    as_objects = [
        {
            **item,
            "start": datetime.fromisoformat(item["start"]),
            "end": datetime.fromisoformat(item["end"]),
        }
        for item in attributes["raw_today"]
    ]
    assert parse_price_forecast({"raw_today": as_objects}) == slots[:24]


def test_nordpool_custom_units_and_gaps() -> None:
    attributes = load("nordpool_custom_attributes.json")
    attributes["raw_tomorrow"] = []  # before the prices of tomorrow are out
    attributes["raw_today"][1]["value"] = None
    cents = parse_price_forecast({**attributes, "price_in_cents": True})
    assert len(cents) == 23
    assert cents[0].price == pytest.approx(0.00121)
    mwh = parse_price_forecast({**attributes, "unit": "MWh", "raw_tomorrow": None})
    assert mwh[0].price == pytest.approx(0.000121)
    wh = parse_price_forecast({**attributes, "unit": "Wh"})
    assert wh[0].price == pytest.approx(121)
    with pytest.raises(PriceFormatError) as err:
        parse_price_forecast({**attributes, "raw_today": [], "raw_tomorrow": []})
    assert reason(err) is PriceErrorReason.EMPTY_FORECAST


def test_tibber_get_prices_response() -> None:
    response = load("tibber_get_prices.json")
    with pytest.raises(PriceFormatError) as err:
        parse_price_forecast(None, response)
    assert reason(err) is PriceErrorReason.AMBIGUOUS_SOURCE
    slots = parse_price_forecast(None, response, source="Nickname_Home")
    assert len(slots) == 8
    assert slots[0] == PriceSlot(utc(2023, 12, 8, 22), utc(2023, 12, 8, 23), 0.46914)
    assert slots[-1].end - slots[-1].start == H  # the last one: as long as the one before
    assert all(a.end == b.start for a, b in pairwise(slots))


def test_tibber_quarter_hours_and_gaps() -> None:
    """Start-only prices: the end is the next start, else the step before (at most an hour)."""
    start = datetime(2025, 10, 1, 0, tzinfo=BERLIN)
    times = [start + timedelta(minutes=15 * i) for i in (0, 1, 2, 3, 12, 13)]  # a 2 h gap
    items = [{"start_time": t.isoformat(), "price": 0.2, "level": "NORMAL"} for t in times]
    items[5]["price"] = None
    slots = parse_price_forecast(None, {"prices": {"Home": items}})
    assert [slot.end - slot.start for slot in slots] == [timedelta(minutes=15)] * 5
    single = parse_price_forecast(None, {"prices": {"Home": items[:1]}})
    assert single[0].end - single[0].start == H
    # Before a gap with no step before it: the usual step.
    first_gap = [items[0], items[4], items[5] | {"price": 0.3}]
    assert [
        s.end - s.start for s in parse_price_forecast(None, {"prices": {"Home": first_gap}})
    ] == [timedelta(minutes=15)] * 3
    # Hourly then quarter-hourly (the 15-minute market change): each until the next start.
    mixed = [start, start + H, start + 2 * H, start + 2 * H + timedelta(minutes=15)]
    mixed_items = [{"start_time": t.isoformat(), "price": 0.1} for t in mixed]
    lengths = [s.end - s.start for s in parse_price_forecast(None, {"prices": {"H": mixed_items}})]
    assert lengths == [H, H, timedelta(minutes=15), timedelta(minutes=15)]


def test_octopus_energy_rates() -> None:
    attributes = load("octopus_energy_current_day_rates.json")
    slots = parse_price_forecast(attributes)
    assert len(slots) == 12
    assert slots[0] == PriceSlot(utc(2024, 1, 15, 0), utc(2024, 1, 15, 0, 30), 0.2143)
    del attributes["rates"][3]["value_inc_vat"]
    with pytest.raises(PriceFormatError) as err:
        parse_price_forecast(attributes)
    assert reason(err) is PriceErrorReason.INVALID_ENTRY


def test_epex_spot_current() -> None:
    slots = parse_price_forecast(load("epex_spot_market_price.json"))
    assert len(slots) == 8
    assert slots[0].start == utc(2025, 9, 30, 22)
    assert slots[0].end - slots[0].start == timedelta(minutes=15)
    assert slots[-1].price == pytest.approx(0.0869)


def test_epex_spot_before_2024_09() -> None:
    attributes = load("epex_spot_price_2022.json")
    slots = parse_price_forecast(attributes)
    assert [slot.price for slot in slots] == pytest.approx([0.2963, 0.28812, 0.28019])
    per_mwh_only = [
        {key: value for key, value in item.items() if key != "price_ct_per_kwh"}
        for item in attributes["data"]
    ]
    assert parse_price_forecast({"data": per_mwh_only})[0].price == pytest.approx(0.2963)
    gbp = [
        {"start_time": item["start_time"], "end_time": item["end_time"], "price_gbp_per_mwh": 100}
        for item in attributes["data"]
    ]
    assert parse_price_forecast({"data": gbp})[0].price == pytest.approx(0.1)
    gbp[0] = {**gbp[0], "price_gbp_per_mwh": None}
    assert len(parse_price_forecast({"data": gbp})) == 2


def test_epex_spot_other_sensors() -> None:
    """The rank sensor's data has no price; a data list of other things is no forecast."""
    rank = {
        "data": [
            {
                "start_time": "2022-12-16T00:00:00+00:00",
                "end_time": "2022-12-16T01:00:00+00:00",
                "rank": 3,
            }
        ]
    }
    with pytest.raises(PriceFormatError) as err:
        parse_price_forecast(rank)
    assert reason(err) is PriceErrorReason.INVALID_ENTRY
    for data in ([{"value": 1}], "text", None):
        with pytest.raises(PriceFormatError) as err:
            parse_price_forecast({"data": data})
        assert reason(err) is PriceErrorReason.NO_FORECAST


def test_entsoe_attributes() -> None:
    attributes = load("entsoe_average_price.json")
    slots = parse_price_forecast(attributes)
    assert len(slots) == 48  # prices, prices_today and prices_tomorrow merged
    assert slots[0] == PriceSlot(utc(2024, 4, 30, 22), utc(2024, 4, 30, 23), 0.152)
    per_mwh = parse_price_forecast({**attributes, "unit_of_measurement": "EUR/MWh"})
    assert per_mwh[0].price == pytest.approx(0.000152)
    only_today = parse_price_forecast({"prices_today": attributes["prices_today"], "prices": None})
    assert len(only_today) == 24
    with pytest.raises(PriceFormatError) as err:
        parse_price_forecast({"prices": [{"start": "2024-05-01T00:00:00+02:00", "price": 1}]})
    assert reason(err) is PriceErrorReason.INVALID_ENTRY


def test_entsoe_action_response() -> None:
    response = {
        "prices": [
            {"timestamp": "2024-05-01T00:00:00+02:00", "price": 120.0},
            {"timestamp": "2024-05-01T00:15:00+02:00", "price": 110.0},
        ]
    }
    slots = parse_price_forecast({"unit_of_measurement": "EUR/MWh"}, response)
    assert [s.end - s.start for s in slots] == [timedelta(minutes=15)] * 2
    assert [s.price for s in slots] == pytest.approx([0.12, 0.11])


def test_attributes_and_response_merged() -> None:
    """Both read; for the same start the response wins."""
    attributes = load("entsoe_average_price.json")
    response = [
        {"start": "2024-05-01T00:00:00+02:00", "end": "2024-05-01T01:00:00+02:00", "price": 9}
    ]
    slots = parse_price_forecast(attributes, response)
    assert len(slots) == 48
    assert slots[0].price == 9


def test_generic_list() -> None:
    items = [
        {"start": "2025-01-10T00:00:00+01:00", "end": "2025-01-10T01:00:00+01:00", "price": 0.3},
        {"start": datetime(2025, 1, 10, 1), "duration": "01:00", "price": "0.25"},
        {"start": "2025-01-10T02:00:00", "duration": timedelta(minutes=30), "price": 0.2},
        {"start": "2025-01-10T02:30:00", "duration": 900, "price": 0.2},
        {"start": "2025-01-10T02:45:00", "duration": "00:15:00", "price": 0.2},
        {"start": "2025-01-10T03:00:00", "duration": {"minutes": 30}, "price": 0.2},
        {"start": "2025-01-10T03:30:00", "duration": 1800, "price": float("nan")},
        {"start": "2025-01-10T04:00:00Z", "end": None, "duration": 3600, "price": None},
    ]
    slots = parse_price_slots(items, time_zone=BERLIN)
    assert [slot.start for slot in slots] == [
        utc(2025, 1, 9, 23),
        utc(2025, 1, 10, 0),
        utc(2025, 1, 10, 1),
        utc(2025, 1, 10, 1, 30),
        utc(2025, 1, 10, 1, 45),
        utc(2025, 1, 10, 2),
    ]
    assert slots[1].price == 0.25
    assert slots[-1].end == utc(2025, 1, 10, 2, 30)
    assert parse_price_forecast(None, items, time_zone=BERLIN) == slots


def test_generic_list_default_time_zone() -> None:
    slots = parse_price_slots([{"start": "2025-01-10T00:00:00", "duration": 3600, "price": 1}])
    expected = datetime(2025, 1, 10, tzinfo=dt_util.get_default_time_zone())
    assert slots[0].start == expected


@pytest.mark.parametrize(
    "item",
    [
        {"end": "2025-01-10T01:00:00+00:00", "price": 1},
        {"start": "2025-01-10T00:00:00+00:00", "price": 1},
        {"start": "2025-01-10T00:00:00+00:00", "duration": "1h", "price": 1},
        {"start": "2025-01-10T00:00:00+00:00", "duration": "1:2:3:4", "price": 1},
        {"start": "2025-01-10T00:00:00+00:00", "duration": {"weeks": "x"}, "price": 1},
        {"start": "2025-01-10T00:00:00+00:00", "duration": {"fortnights": 1}, "price": 1},
        {"start": "2025-01-10T00:00:00+00:00", "duration": [1], "price": 1},
        {"start": "2025-01-10T00:00:00+00:00", "duration": 0, "price": 1},
        {"start": "2025-01-10T00:00:00+00:00", "duration": True, "price": 1},
        {"start": "2025-01-10T01:00:00+00:00", "end": "2025-01-10T00:00:00+00:00", "price": 1},
        {"start": "tomorrow", "duration": 60, "price": 1},
        {"start": 1736467200, "duration": 60, "price": 1},
        {"start": "2025-01-10T00:00:00+00:00", "duration": 60, "price": True},
        {"start": "2025-01-10T00:00:00+00:00", "duration": 60, "price": "cheap"},
        {"start": "2025-01-10T00:00:00+00:00", "duration": 60, "price": [1]},
    ],
)
def test_generic_list_invalid(item: dict[str, Any]) -> None:
    with pytest.raises(PriceFormatError) as err:
        parse_price_slots([item])
    assert reason(err) is PriceErrorReason.INVALID_ENTRY
    assert "entry" in err.value.placeholders


@pytest.mark.parametrize("items", ["2025-01-10", ["not a mapping"], 5])
def test_generic_list_not_a_list(items: Any) -> None:
    with pytest.raises(PriceFormatError) as err:
        parse_price_slots(items)
    assert reason(err) is PriceErrorReason.INVALID_ENTRY


def test_long_entry_is_cut_in_the_message() -> None:
    item = {"start": "x", "duration": 60, "price": 1, "note": "n" * 200}
    with pytest.raises(PriceFormatError) as err:
        parse_price_slots([item])
    assert len(err.value.placeholders["entry"]) == 120


def test_end_before_start_with_explicit_ends() -> None:
    rates = [{"start": "2024-01-15T01:00:00Z", "end": "2024-01-15T00:00:00Z", "value_inc_vat": 1}]
    with pytest.raises(PriceFormatError) as err:
        parse_price_forecast({"rates": rates})
    assert reason(err) is PriceErrorReason.INVALID_ENTRY


def test_no_forecast() -> None:
    for attributes in (None, {}, {"friendly_name": "Price"}):
        with pytest.raises(PriceFormatError) as err:
            parse_price_forecast(attributes)
        assert reason(err) is PriceErrorReason.NO_FORECAST


def test_merge_price_slots() -> None:
    start = utc(2025, 1, 1)
    hourly_slots = hourly(start, [1.0, 2.0])
    quarter = PriceSlot(start + timedelta(minutes=30), start + timedelta(minutes=45), 5.0)
    overlapping = PriceSlot(start + timedelta(minutes=90), start + 3 * H, 7.0)
    replaced = PriceSlot(start, start + H, 3.0)
    merged = merge_price_slots(hourly_slots, [quarter, overlapping], [replaced])
    assert merged == [
        replaced,
        hourly_slots[1],
        PriceSlot(start + 2 * H, start + 3 * H, 7.0),
    ]


def test_price_slot_checks() -> None:
    with pytest.raises(ValueError, match="time zone"):
        PriceSlot(datetime(2025, 1, 1), datetime(2025, 1, 1, 1), 1.0)
    with pytest.raises(ValueError, match="before"):
        PriceSlot(utc(2025, 1, 1, 1), utc(2025, 1, 1), 1.0)
    local = PriceSlot(
        datetime(2025, 1, 1, tzinfo=BERLIN), datetime(2025, 1, 1, 1, tzinfo=BERLIN), 1
    )
    assert local.start == utc(2024, 12, 31, 23)
    assert local.start.tzinfo is UTC


# --- Planning without prices ---------------------------------------------------------------------


def test_target_reached() -> None:
    now = utc(2025, 1, 1, 20)
    plan = plan_charge(now, now + 10 * H, soc_now=90, target_soc=80, **BATTERY)
    assert plan.issues == {PlanIssue.TARGET_REACHED}
    assert plan.slots == ()
    assert plan.status_at(now) is PlanStatus.DONE
    assert plan.energy_wh == 0
    assert plan.cost is None
    assert plan.expected_soc == 90
    assert replan_needed(plan, now, 90) is None


def test_deadline_passed() -> None:
    now = utc(2025, 1, 1, 20)
    plan = plan_charge(now, now - H, soc_now=20, target_soc=80, **BATTERY)
    assert plan.issues == {PlanIssue.DEADLINE_PASSED}
    assert plan.slots == ()
    assert plan.status_at(now) is PlanStatus.MISSED
    assert plan.shortfall_wh == pytest.approx(6000 / 0.9 * 1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"now": datetime(2025, 1, 1)},
        {"capacity_wh": 0},
        {"max_charge_w": -1},
        {"efficiency": 0},
        {"efficiency": 1.5},
        {"soc_now": -1},
        {"target_soc": 101},
        {"margin": timedelta(minutes=-1)},
    ],
)
def test_bad_parameters(kwargs: dict[str, Any]) -> None:
    params: dict[str, Any] = {
        "now": utc(2025, 1, 1),
        "deadline": utc(2025, 1, 2),
        "soc_now": 20,
        "target_soc": 80,
        **BATTERY,
    } | kwargs
    with pytest.raises(ValueError):
        plan_charge(**params)


def test_latest_without_prices() -> None:
    """50 -> 90 % of 10 kWh at 90 %: 4444 Wh, 2 h 13 m 20 s at 2 kW, done 30 min early."""
    now = utc(2025, 1, 1, 20)
    deadline = utc(2025, 1, 2, 7)
    plan = plan_charge(now, deadline, soc_now=50, target_soc=90, **BATTERY)
    assert plan.mode is PlanMode.LATEST
    assert plan.issues == frozenset()
    assert plan.slots == (PlannedSlot(utc(2025, 1, 2, 4, 16), utc(2025, 1, 2, 6, 30), 2000, None),)
    assert plan.energy_wh >= plan.needed_wh == pytest.approx(4000 / 0.9)
    assert plan.shortfall_wh == 0
    assert plan.cost is None
    assert plan.expected_soc == 90
    assert plan.status_at(utc(2025, 1, 2, 3)) is PlanStatus.WAITING
    assert plan.status_at(utc(2025, 1, 2, 5)) is PlanStatus.CHARGING
    assert plan.status_at(utc(2025, 1, 2, 5), soc=90) is PlanStatus.DONE
    assert plan.status_at(deadline, soc=85) is PlanStatus.MISSED
    assert plan.next_start(now) == utc(2025, 1, 2, 4, 16)
    assert plan.next_start(utc(2025, 1, 2, 5)) is None
    assert plan.window_at(utc(2025, 1, 2, 5)) == ChargeWindow(
        utc(2025, 1, 2, 4, 16), utc(2025, 1, 2, 6, 30), 2000
    )
    assert plan.window_at(now) is None


def test_latest_uses_the_margin_when_short() -> None:
    now = utc(2025, 1, 2, 5)
    plan = plan_charge(now, utc(2025, 1, 2, 7), soc_now=51, target_soc=84, **BATTERY)
    # 3667 Wh: 1 h 50 min at 2 kW, so charging starts now and eats 20 of the 30 minutes.
    assert plan.slots == (PlannedSlot(now, utc(2025, 1, 2, 6, 50), 2000, None),)
    assert plan.issues == frozenset()


def test_latest_impossible_charges_now() -> None:
    now = utc(2025, 1, 2, 5)
    plan = plan_charge(now, utc(2025, 1, 2, 7), soc_now=10, target_soc=90, **BATTERY)
    assert plan.impossible
    assert plan.issues == {PlanIssue.INSUFFICIENT_TIME}
    assert plan.slots == (PlannedSlot(now, utc(2025, 1, 2, 7), 2000, None),)
    assert plan.status_at(now) is PlanStatus.CHARGING
    assert plan.shortfall_wh == pytest.approx(8000 / 0.9 - 4000)
    assert plan.as_attributes()["impossible"] is True


def test_latest_across_spring_forward() -> None:
    """Europe/Berlin, 30 March 2025: 5 h before 06:30 CEST is 00:30 CET, not 01:30."""
    deadline = datetime(2025, 3, 30, 7, tzinfo=BERLIN)
    now = datetime(2025, 3, 29, 22, tzinfo=BERLIN)
    plan = plan_charge(
        now, deadline, soc_now=40, target_soc=90, capacity_wh=10000, max_charge_w=1000, efficiency=1
    )
    (slot,) = plan.slots
    assert slot.start.astimezone(BERLIN) == datetime(2025, 3, 30, 0, 30, tzinfo=BERLIN)
    assert slot.end.astimezone(BERLIN) == datetime(2025, 3, 30, 6, 30, tzinfo=BERLIN)
    assert slot.energy_wh == pytest.approx(5000)


def test_latest_across_fall_back() -> None:
    """Europe/Berlin, 26 October 2025: 5 h before 06:30 CET is the first 02:30 (CEST)."""
    deadline = datetime(2025, 10, 26, 7, tzinfo=BERLIN)
    now = datetime(2025, 10, 25, 22, tzinfo=BERLIN)
    plan = plan_charge(
        now, deadline, soc_now=40, target_soc=90, capacity_wh=10000, max_charge_w=1000, efficiency=1
    )
    (slot,) = plan.slots
    assert slot.start == utc(2025, 10, 26, 0, 30)
    local = slot.start.astimezone(BERLIN)
    assert (local.hour, local.minute, local.utcoffset()) == (2, 30, timedelta(hours=2))
    assert slot.energy_wh == pytest.approx(5000)


# --- Planning with prices ------------------------------------------------------------------------


def nordpool_slots() -> list[PriceSlot]:
    return parse_price_forecast(None, load("nordpool_get_prices_for_date.json"))


def test_cheapest_covering_slots() -> None:
    """3 h: the slots at 02, 03 and 01 UTC (61.69, 64.60, 73.92 /MWh): one run 01-04."""
    now = utc(2024, 11, 4, 23)
    plan = plan_charge(
        now, utc(2024, 11, 5, 7), soc_now=30, target_soc=84, slots=nordpool_slots(), **BATTERY
    )
    assert plan.mode is PlanMode.CHEAPEST
    assert plan.issues == frozenset()
    assert [(s.start.hour, s.end.hour) for s in plan.slots] == [(1, 2), (2, 3), (3, 4)]
    assert [s.price for s in plan.slots] == pytest.approx([0.07392, 0.06169, 0.0646])
    assert plan.windows == (ChargeWindow(utc(2024, 11, 5, 1), utc(2024, 11, 5, 4), 2000),)
    assert plan.energy_wh == pytest.approx(6000)
    assert plan.cost == pytest.approx(2 * (0.07392 + 0.06169 + 0.0646))
    assert plan.expected_soc == pytest.approx(84)
    assert plan.slot_at(utc(2024, 11, 5, 2, 30)) == plan.slots[1]
    assert plan.slot_at(utc(2024, 11, 5, 4)) is None
    assert len(plan.prices) == 8  # the forecast between now and the deadline


def test_partial_slot_next_to_a_chosen_one() -> None:
    """2.5 h: 02 and 03 whole, half of 01 -- at its end, so charging is one run from 01:30."""
    plan = plan_charge(
        utc(2024, 11, 4, 23),
        utc(2024, 11, 5, 7),
        soc_now=30,
        target_soc=75,
        slots=nordpool_slots(),
        **BATTERY,
    )
    assert plan.windows == (ChargeWindow(utc(2024, 11, 5, 1, 30), utc(2024, 11, 5, 4), 2000),)
    assert plan.energy_wh == pytest.approx(5000)


def test_partial_slot_after_a_chosen_one() -> None:
    """The part is at the slot's start when the slot after it is not chosen."""
    start = utc(2025, 1, 1)
    slots = hourly(start, [1.0, 2.0, 5.0])
    plan = plan_charge(start, start + 3 * H, soc_now=30, target_soc=57, slots=slots, **BATTERY)
    assert [(s.start, s.end) for s in plan.slots] == [
        (start, start + H),
        (start + H, start + H + timedelta(minutes=30)),
    ]


def test_partial_slot_alone_at_its_start() -> None:
    start = utc(2025, 1, 1)
    slots = hourly(start, [5.0, 1.0, 5.0])
    plan = plan_charge(start, start + 3 * H, soc_now=30, target_soc=39, slots=slots, **BATTERY)
    assert [(s.start, s.end) for s in plan.slots] == [
        (start + H, start + H + timedelta(minutes=30))
    ]


def test_ties_take_the_earlier_slot() -> None:
    start = utc(2025, 1, 1)
    slots = hourly(start, [0.2, 0.1, 0.3, 0.1])
    plan = plan_charge(start, start + 4 * H, soc_now=30, target_soc=48, slots=slots, **BATTERY)
    assert [(s.start, s.end) for s in plan.slots] == [(start + H, start + 2 * H)]


def test_slot_in_progress_is_cut_at_now() -> None:
    start = utc(2025, 1, 1)
    slots = hourly(start, [0.1, 0.5, 0.5])
    now = start + timedelta(minutes=40)
    plan = plan_charge(now, start + 3 * H, soc_now=30, target_soc=48, slots=slots, **BATTERY)
    assert [(s.start, s.end, s.price) for s in plan.slots] == [
        (now, start + H, 0.1),
        (start + H, start + H + timedelta(minutes=40), 0.5),
    ]


def test_slots_across_midnight() -> None:
    """Planned at 20:00 for 07:00: the cheapest hours are after midnight, in tomorrow's prices."""
    slots = parse_price_forecast(load("nordpool_custom_attributes.json"))
    now = datetime(2024, 11, 5, 20, tzinfo=BERLIN)
    plan = plan_charge(
        now,
        datetime(2024, 11, 6, 7, tzinfo=BERLIN),
        soc_now=30,
        target_soc=84,
        slots=slots,
        **BATTERY,
    )
    (window,) = plan.windows
    assert window.start.astimezone(BERLIN) == datetime(2024, 11, 6, 2, tzinfo=BERLIN)
    assert window.end.astimezone(BERLIN) == datetime(2024, 11, 6, 5, tzinfo=BERLIN)
    assert plan.cost == pytest.approx(2 * (0.090 + 0.088 + 0.092))


def entsoe_day(day_start: datetime, hours: int, prices: dict[int, float]) -> dict[str, Any]:
    """ENTSO-e attributes for a local day of ``hours`` hours; ``prices`` by UTC hour index."""
    start = day_start.astimezone(UTC)
    items = [
        {"time": str((start + i * H).astimezone(BERLIN)), "price": prices.get(i, 0.3)}
        for i in range(hours)
    ]
    return {"prices_today": items, "unit_of_measurement": "EUR/kWh"}


def test_slots_on_fall_back_day() -> None:
    """26 October 2025 has 25 hours; both 02:00 hours are slots of their own, each 1 h."""
    day = datetime(2025, 10, 26, tzinfo=BERLIN)
    attributes = entsoe_day(day, 25, {2: 0.05, 3: 0.06})  # 02:00 CEST and 02:00 CET
    assert [item["time"][11:] for item in attributes["prices_today"][2:4]] == [
        "02:00:00+02:00",
        "02:00:00+01:00",
    ]
    slots = parse_price_forecast(attributes)
    assert len(slots) == 25
    assert all(slot.end - slot.start == H for slot in slots)
    plan = plan_charge(
        day, day + timedelta(days=1), soc_now=30, target_soc=66, slots=slots, **BATTERY
    )
    (window,) = plan.windows
    assert (window.start, window.end) == (utc(2025, 10, 26, 0), utc(2025, 10, 26, 2))
    assert plan.energy_wh == pytest.approx(4000)
    assert plan.cost == pytest.approx(2 * (0.05 + 0.06))


def test_slots_on_spring_forward_day() -> None:
    """30 March 2025 has 23 hours; naive local times of a generic list land right."""
    local_hours = [h for h in range(24) if h != 2]
    items = [
        {
            "start": f"2025-03-30T{h:02d}:00:00",
            "duration": "01:00",
            "price": 0.1 if h in (1, 3) else 0.3,
        }
        for h in local_hours
    ]
    slots = parse_price_slots(items, time_zone=BERLIN)
    assert len(slots) == 23
    assert all(a.end == b.start for a, b in pairwise(slots))
    now = datetime(2025, 3, 30, tzinfo=BERLIN)
    plan = plan_charge(
        now, now + timedelta(hours=23), soc_now=30, target_soc=66, slots=slots, **BATTERY
    )
    (window,) = plan.windows
    assert window.start.astimezone(BERLIN).hour == 1
    assert window.end.astimezone(BERLIN).hour == 4
    assert window.end - window.start == 2 * H


def test_quarter_hour_slots() -> None:
    """40 min at 3 kW in 15-min slots: the two cheapest and 10 min of the third, one run."""
    slots = parse_price_forecast(load("epex_spot_market_price.json"))
    now = datetime(2025, 10, 1, tzinfo=BERLIN)
    plan = plan_charge(
        now,
        now + 2 * H,
        soc_now=50,
        target_soc=70,
        capacity_wh=10000,
        max_charge_w=3000,
        efficiency=1,
        slots=slots,
    )
    (window,) = plan.windows
    assert window.start.astimezone(BERLIN) == datetime(2025, 10, 1, 1, 20, tzinfo=BERLIN)
    assert window.end.astimezone(BERLIN) == datetime(2025, 10, 1, 2, tzinfo=BERLIN)
    assert plan.energy_wh == pytest.approx(2000)
    assert plan.cost == pytest.approx(3 * (0.0869 / 4 + 0.0875 / 4 + 0.0887 / 6))


def test_max_price_skips_slots() -> None:
    now = utc(2024, 11, 4, 23)
    plan = plan_charge(
        now,
        utc(2024, 11, 5, 7),
        soc_now=30,
        target_soc=84,
        slots=nordpool_slots(),
        max_price=0.07,
        **BATTERY,
    )
    assert [s.start.hour for s in plan.slots] == [2, 3]
    assert plan.issues == {PlanIssue.PRICE_LIMIT}
    assert plan.shortfall_wh == pytest.approx(2000)
    assert plan.expected_soc == pytest.approx(30 + 4000 * 0.9 / 100)
    enough = plan_charge(
        now,
        utc(2024, 11, 5, 7),
        soc_now=30,
        target_soc=84,
        slots=nordpool_slots(),
        max_price=0.08,
        **BATTERY,
    )
    assert enough.issues == frozenset()
    nothing = plan_charge(
        now,
        utc(2024, 11, 5, 7),
        soc_now=30,
        target_soc=84,
        slots=nordpool_slots(),
        max_price=0.01,
        **BATTERY,
    )
    assert nothing.slots == ()
    assert nothing.status_at(now) is PlanStatus.WAITING


def test_impossible_with_prices() -> None:
    """Not enough time: all the time that is left, also past the forecast's end."""
    start = utc(2025, 1, 1, 20)
    slots = hourly(start, [0.3, 0.2, 0.4, 0.1])  # to midnight
    deadline = utc(2025, 1, 2, 7)
    plan = plan_charge(
        start,
        deadline,
        soc_now=0,
        target_soc=100,
        slots=slots,
        capacity_wh=30000,
        max_charge_w=2000,
    )
    assert plan.issues == {PlanIssue.INSUFFICIENT_TIME, PlanIssue.UNPRICED_TIME}
    assert plan.windows == (ChargeWindow(start, deadline, 2000),)
    assert plan.cost == pytest.approx(2 * (0.3 + 0.2 + 0.4 + 0.1))
    capped = plan_charge(
        start,
        deadline,
        soc_now=0,
        target_soc=100,
        slots=slots,
        capacity_wh=30000,
        max_charge_w=2000,
        max_price=0.25,
    )
    assert capped.issues == {PlanIssue.INSUFFICIENT_TIME, PlanIssue.PRICE_LIMIT}
    assert [(s.start.hour, s.end.hour) for s in capped.slots] == [(21, 22), (23, 0)]
    full = plan_charge(
        start,
        start + 4 * H,
        soc_now=0,
        target_soc=100,
        slots=slots,
        capacity_wh=30000,
        max_charge_w=2000,
    )
    assert full.issues == {PlanIssue.INSUFFICIENT_TIME}
    assert full.windows == (ChargeWindow(start, start + 4 * H, 2000),)


def test_time_past_the_forecast() -> None:
    """Prices to midnight, deadline 07:00: the rest as late as possible, 30 min early."""
    start = utc(2025, 1, 1, 20)
    slots = hourly(start, [0.3, 0.3, 0.3, 0.3])
    deadline = utc(2025, 1, 2, 7)
    # 5 h at 2 kW = 10 kWh of grid energy: 0 -> 90 % of 10 kWh.
    plan = plan_charge(start, deadline, soc_now=0, target_soc=90, slots=slots, **BATTERY)
    assert plan.issues == {PlanIssue.UNPRICED_TIME}
    assert plan.windows == (
        ChargeWindow(start, utc(2025, 1, 2, 0), 2000),
        ChargeWindow(utc(2025, 1, 2, 5, 30), utc(2025, 1, 2, 6, 30), 2000),
    )
    assert plan.slots[-1].price is None
    assert plan.cost == pytest.approx(4 * 2 * 0.3)
    # 10 h 45 min: all until 06:30, then 15 min of the margin.
    long = plan_charge(
        start,
        deadline,
        soc_now=0,
        target_soc=100,
        slots=slots,
        capacity_wh=19350,
        max_charge_w=2000,
    )
    assert long.issues == {PlanIssue.UNPRICED_TIME}
    assert long.windows == (ChargeWindow(start, utc(2025, 1, 2, 6, 45), 2000),)


def test_gap_inside_the_forecast() -> None:
    start = utc(2025, 1, 1)
    slots = [PriceSlot(start, start + H, 0.5), PriceSlot(start + 2 * H, start + 3 * H, 0.5)]
    plan = plan_charge(
        start, start + 3 * H, soc_now=30, target_soc=84, slots=slots, margin=timedelta(0), **BATTERY
    )
    # Both priced hours, then the unpriced hour between them.
    assert plan.windows == (ChargeWindow(start, start + 3 * H, 2000),)
    assert plan.issues == {PlanIssue.UNPRICED_TIME}
    # With time after the forecast too, the latest unpriced time is taken first.
    later = plan_charge(
        start, start + 6 * H, soc_now=30, target_soc=84, slots=slots, margin=timedelta(0), **BATTERY
    )
    assert later.windows == (
        ChargeWindow(start, start + H, 2000),
        ChargeWindow(start + 2 * H, start + 3 * H, 2000),
        ChargeWindow(start + 5 * H, start + 6 * H, 2000),
    )


def test_no_prices_before_the_deadline() -> None:
    now = utc(2025, 1, 1, 20)
    later = hourly(utc(2025, 1, 3), [0.1, 0.2])
    for slots in (later, []):
        plan = plan_charge(
            now, utc(2025, 1, 2, 7), soc_now=50, target_soc=90, slots=slots, **BATTERY
        )
        assert plan.mode is PlanMode.LATEST
        assert plan.issues == {PlanIssue.NO_PRICES_IN_WINDOW}
        assert plan.slots[0].end == utc(2025, 1, 2, 6, 30)
        assert plan.prices == ()


# --- The plan as state -----------------------------------------------------------------------------


def cheapest_plan() -> ChargePlan:
    return plan_charge(
        utc(2024, 11, 4, 23),
        utc(2024, 11, 5, 7),
        soc_now=30,
        target_soc=84,
        slots=nordpool_slots(),
        **BATTERY,
    )


def test_expected_soc_over_time() -> None:
    plan = cheapest_plan()
    assert plan.expected_soc_at(utc(2024, 11, 5, 0)) == 30
    assert plan.expected_soc_at(utc(2024, 11, 5, 2, 30)) == pytest.approx(30 + 3000 * 0.9 / 100)
    assert plan.expected_soc_at(utc(2024, 11, 5, 6)) == pytest.approx(84)
    assert plan.charged_wh_until(utc(2024, 11, 5, 1, 30)) == pytest.approx(1000)


def test_as_attributes() -> None:
    plan = cheapest_plan()
    attributes = plan.as_attributes()
    assert attributes == {
        "target_soc": 84,
        "deadline": dt_util.as_local(utc(2024, 11, 5, 7)).isoformat(),
        "created": dt_util.as_local(utc(2024, 11, 4, 23)).isoformat(),
        "soc_at_start": 30,
        "mode": "cheapest",
        "slots": [
            {
                "start": dt_util.as_local(slot.start).isoformat(),
                "end": dt_util.as_local(slot.end).isoformat(),
                "power_w": 2000,
                "price": slot.price,
            }
            for slot in plan.slots
        ],
        "energy_wh": 6000,
        "cost": round(2 * (0.07392 + 0.06169 + 0.0646), 4),
        "expected_soc": 84.0,
        "shortfall_wh": 0,
        "impossible": False,
        "issues": [],
    }
    json.dumps(attributes)


def test_store_round_trip() -> None:
    plan = cheapest_plan()
    stored = json.loads(json.dumps(plan.as_dict()))
    assert ChargePlan.from_dict(stored) == plan
    latest = plan_charge(
        utc(2025, 1, 1), utc(2025, 1, 2), soc_now=10, target_soc=100, **BATTERY, slots=[]
    )
    assert ChargePlan.from_dict(json.loads(json.dumps(latest.as_dict()))) == latest


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"created": 5}, TypeError),
        ({"deadline": "2025-01-01T00:00:00"}, ValueError),
        ({"target_soc": True}, TypeError),
        ({"mode": "fastest"}, ValueError),
        ({"slots": [["2024-11-05T01:00:00+00:00"]]}, ValueError),
        ({"issues": ["bored"]}, ValueError),
    ],
)
def test_store_malformed(change: dict[str, Any], error: type[Exception]) -> None:
    data = cheapest_plan().as_dict() | change
    with pytest.raises(error):
        ChargePlan.from_dict(data)
    with pytest.raises(KeyError):
        ChargePlan.from_dict({})


def test_windows_split_on_power() -> None:
    start = utc(2025, 1, 1)
    plan = ChargePlan(
        created=start,
        deadline=start + 3 * H,
        soc_at_start=10,
        target_soc=50,
        capacity_wh=10000,
        efficiency=1,
        needed_wh=4000,
        mode=PlanMode.LATEST,
        slots=(
            PlannedSlot(start, start + H, 2000, None),
            PlannedSlot(start + H, start + 2 * H, 1000, None),
        ),
    )
    assert len(plan.windows) == 2
    assert plan.next_start(start) == start + H


# --- Re-planning -----------------------------------------------------------------------------------


def test_replan_on_forecast_change() -> None:
    plan = cheapest_plan()
    now = utc(2024, 11, 5, 0, 30)
    slots = nordpool_slots()
    assert replan_needed(plan, now, 30, slots) is None
    assert replan_needed(plan, now, 30) is None  # no forecast given: not compared
    changed = [*slots[:5], PriceSlot(slots[5].start, slots[5].end, 0.01), *slots[6:]]
    assert replan_needed(plan, now, 30, changed) is ReplanReason.FORECAST_CHANGED
    # A change before now does not count.
    past = [PriceSlot(slots[0].start, slots[0].end, 9.0), *slots[1:]]
    assert replan_needed(plan, now, 30, past) is None
    # Done or missed plans are not made again.
    assert replan_needed(plan, now, 84, changed) is None
    assert replan_needed(plan, utc(2024, 11, 5, 7), 50, changed) is None


def test_replan_when_prices_arrive() -> None:
    """Planned before tomorrow's prices: the new slots are a change."""
    now = utc(2025, 1, 1, 20)
    today = hourly(now, [0.3, 0.3, 0.3, 0.3])
    plan = plan_charge(now, utc(2025, 1, 2, 7), soc_now=0, target_soc=90, slots=today, **BATTERY)
    assert replan_needed(plan, now + H, 18, today) is None
    tomorrow = hourly(utc(2025, 1, 2), [0.1] * 24)
    assert replan_needed(plan, now + H, 18, today + tomorrow) is ReplanReason.FORECAST_CHANGED
    latest = plan_charge(now, utc(2025, 1, 2, 7), soc_now=50, target_soc=90, **BATTERY)
    assert replan_needed(latest, now + H, 50, tomorrow) is ReplanReason.FORECAST_CHANGED


def test_replan_when_behind_schedule() -> None:
    """At 02:30 the plan expects 30 % + 3 kWh * 0.9 = 57 %; more than 5 points less is behind."""
    plan = cheapest_plan()
    now = utc(2024, 11, 5, 2, 30)
    assert replan_needed(plan, now, 53) is None
    assert replan_needed(plan, now, 51.9) is ReplanReason.BEHIND_SCHEDULE
    assert replan_needed(plan, now, 55, soc_tolerance=1) is ReplanReason.BEHIND_SCHEDULE
    assert replan_needed(plan, now, None) is None
    # Before the first slot, only a SoC that drops (the house used the battery) is behind.
    assert replan_needed(plan, utc(2024, 11, 5, 0), 26) is None
    assert replan_needed(plan, utc(2024, 11, 5, 0), 24) is ReplanReason.BEHIND_SCHEDULE
