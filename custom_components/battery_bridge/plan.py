"""Planned charging, the pure core: price forecasts and the "X % by hh:mm" planner.

No I/O and no ``hass`` here: the caller reads the price entity (its attributes and, where the
tariff integration has one, its action response), the battery's SoC and power, and wires the
plan into overrides and sensors.

Price forecasts, each read in its documented shape (shapes only, no code taken):

- Nord Pool, HA core ``nordpool``: no forecast in attributes (the sensors are current, last,
  next, lowest/highest price with ``start``/``end`` of that one price, and block prices; seen in
  home-assistant/core ``homeassistant/components/nordpool/sensor.py``). The forecast comes only
  from the response of ``nordpool.get_prices_for_date`` or ``get_price_indices_for_date``:
  ``{"<AREA>": [{"start", "end", "price"}]}``, price per MWh (core ``nordpool/services.py``,
  the snapshot ``tests/components/nordpool/snapshots/test_services.ambr``; home-assistant.io
  ``source/_integrations/nordpool.markdown``: "All prices are returned in [Currency]/MWh").
- Nord Pool, custom ``nordpool`` (custom-components/nordpool ``README.md`` "Extra state
  attributes", ``custom_components/nordpool/sensor.py``): ``raw_today`` / ``raw_tomorrow``
  lists of ``{"start", "end", "value"}`` in the sensor's unit: attribute ``unit`` (kWh, MWh or
  Wh) and ``price_in_cents``.
- Tibber, HA core ``tibber``: response of ``tibber.get_prices``:
  ``{"prices": {"<home name>": [{"start_time", "price", "level"}]}}``, per kWh, no end time
  (core ``homeassistant/components/tibber/services.py``, ``tests/components/tibber/
  test_services.py``; home-assistant.io tibber docs, "Response data").
- Octopus Energy, custom BottlecapDave/HomeAssistant-OctopusEnergy ``_docs/entities/
  electricity.md``: the current / next day rates event entities' ``rates`` attribute, items
  ``{"start", "end", "value_inc_vat"}`` in pounds per kWh.
- EPEX Spot, custom mampfes/ha_epex_spot ``README.md`` and ``custom_components/epex_spot/
  sensor.py`` / ``const.py`` / ``localization.py``: attribute ``data``, items ``{"start_time",
  "end_time", ...}`` with ``price_per_kwh`` (since 2024-09) or, before, ``price_eur_per_mwh`` /
  ``price_ct_per_kwh`` (GB: ``price_gbp_per_mwh`` / ``price_pence_per_kwh``).
- ENTSO-e, custom JaccoR/hass-entso-e ``custom_components/entsoe/sensor.py`` and
  ``coordinator.py`` (``get_timestamped_prices``): the average price sensor's ``prices_today``,
  ``prices_tomorrow`` and ``prices`` attributes, items ``{"time", "price"}`` (no end; 15 or
  60 minutes), in the sensor's unit (``unit_of_measurement`` ``<currency>/kWh`` or ``/MWh``);
  its ``entsoe.get_energy_prices`` response ``{"prices": [{"timestamp", "price"}]}``
  (``custom_components/entsoe/services.py``).
- Generic: a list of ``{"start", "end" | "duration", "price"}`` given in the action.

Prices are normalised to currency per kWh where the unit is known (MWh, Wh, cents); a generic
list keeps the caller's unit. Every time is kept in UTC.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from itertools import pairwise
import math
from typing import Any, Final

from homeassistant.util import dt as dt_util

DEFAULT_EFFICIENCY: Final = 0.9
"""Share of the grid energy that ends up in the battery (the charge-efficiency allowance)."""
DEFAULT_MARGIN: Final = timedelta(minutes=30)
"""Safety margin before the deadline for charging placed as late as possible."""
DEFAULT_SOC_TOLERANCE: Final = 5.0
"""Percentage points the SoC may lag the plan's expectation before a re-plan."""

_HOUR: Final = timedelta(hours=1)
_MAX_IMPLICIT_STEP: Final = _HOUR  # a slot without an end lasts until the next start, at most this
_MINUTE: Final = timedelta(minutes=1)


# --- Price forecasts -----------------------------------------------------------------------------


class PriceErrorReason(StrEnum):
    """Why a price forecast could not be read (a translation key for the caller)."""

    NO_FORECAST = "no_forecast"
    """Nothing in a known shape: not a supported tariff entity."""
    EMPTY_FORECAST = "empty_forecast"
    """A known shape without a single price."""
    INVALID_ENTRY = "invalid_entry"
    """A known shape with an entry that cannot be read (placeholder ``entry``)."""
    AMBIGUOUS_SOURCE = "ambiguous_source"
    """Several Nord Pool areas or Tibber homes and none chosen (placeholder ``choices``)."""
    UNKNOWN_SOURCE = "unknown_source"
    """The chosen area or home is not in the response (placeholders ``source``, ``choices``)."""


class PriceFormatError(ValueError):
    """A price forecast that cannot be read; ``reason`` and ``placeholders`` for translation."""

    def __init__(self, reason: PriceErrorReason, message: str, **placeholders: str) -> None:
        """Keep the reason and the placeholders beside the English message."""
        super().__init__(message)
        self.reason = reason
        self.placeholders = placeholders


def _as_utc(value: datetime, name: str = "time") -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} {value!r} has no time zone")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class PriceSlot:
    """A price that holds from ``start`` to ``end`` (aware; kept in UTC)."""

    start: datetime
    end: datetime
    price: float

    def __post_init__(self) -> None:
        """Check the times and keep them in UTC, so that differences are real durations."""
        object.__setattr__(self, "start", _as_utc(self.start, "start"))
        object.__setattr__(self, "end", _as_utc(self.end, "end"))
        if self.end <= self.start:
            raise ValueError(f"slot ends ({self.end}) before it starts ({self.start})")


def _invalid(entry: Any, why: str) -> PriceFormatError:
    text = repr(entry)
    if len(text) > 120:
        text = text[:117] + "..."
    return PriceFormatError(
        PriceErrorReason.INVALID_ENTRY, f"price entry {text}: {why}", entry=text
    )


def _parse_time(value: Any, tz: tzinfo, entry: Any) -> datetime:
    """Read an ISO string or a datetime; a naive one is in ``tz``."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _invalid(entry, f"time {value!r} is not ISO 8601") from None
    else:
        raise _invalid(entry, f"time {value!r} is not a date and time")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def _parse_price(value: Any, entry: Any) -> float | None:
    """Read a price; ``None`` (or not finite) is an hour without a price."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _invalid(entry, f"price {value!r} is not a number")
    try:
        price = float(value)
    except ValueError:
        raise _invalid(entry, f"price {value!r} is not a number") from None
    return price if math.isfinite(price) else None


def _parse_duration(value: Any, entry: Any) -> timedelta:
    """Read a duration: timedelta, seconds (HA's convention), ``HH:MM[:SS]`` or a mapping."""
    duration: timedelta
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        duration = timedelta(seconds=value)
    elif isinstance(value, str):
        parts = value.strip().split(":")
        try:
            numbers = [float(part) for part in parts]
        except ValueError:
            raise _invalid(entry, f"duration {value!r} is not HH:MM[:SS]") from None
        if len(numbers) not in (2, 3):
            raise _invalid(entry, f"duration {value!r} is not HH:MM[:SS]")
        duration = timedelta(hours=numbers[0], minutes=numbers[1])
        if len(numbers) == 3:
            duration += timedelta(seconds=numbers[2])
    elif isinstance(value, Mapping):
        try:
            duration = timedelta(**{str(key): float(number) for key, number in value.items()})
        except TypeError, ValueError:
            raise _invalid(entry, f"duration {value!r} is not days/hours/minutes/seconds") from None
    else:
        raise _invalid(entry, f"duration {value!r} is not a duration")
    if duration <= timedelta(0):
        raise _invalid(entry, "duration is not positive")
    return duration


def _entries(value: Any, name: str) -> list[Mapping[str, Any]]:
    """Return a list of mappings; ``None`` is an empty list."""
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise _invalid(value, f"{name} is not a list")
    for item in value:
        if not isinstance(item, Mapping):
            raise _invalid(item, f"an item of {name} is not a mapping")
    return list(value)


def _closed_slots(points: Iterable[tuple[datetime, float | None]]) -> list[PriceSlot]:
    """Give start-only prices their ends: the next start, else the usual step (at most 1 h)."""
    ordered = sorted(dict(points).items())
    steps = [b[0] - a[0] for a, b in pairwise(ordered)]
    usual = [step for step in steps if step <= _MAX_IMPLICIT_STEP]
    default_step = Counter(usual).most_common(1)[0][0] if usual else _HOUR
    slots: list[PriceSlot] = []
    for index, (start, price) in enumerate(ordered):
        step = steps[index] if index < len(steps) else None
        if step is None or step > _MAX_IMPLICIT_STEP:
            # The last one, or one before a gap: as long as the one before it, else the usual step.
            previous = steps[index - 1] if 0 < index <= len(steps) else None
            step = previous if previous is not None and previous <= _MAX_IMPLICIT_STEP else None
            step = step or default_step
        if price is not None:
            slots.append(PriceSlot(start, start + step, price))
    return slots


def _slots_with_end(
    items: Iterable[Mapping[str, Any]],
    tz: tzinfo,
    start_key: str,
    end_key: str,
    price_of: Callable[[Mapping[str, Any]], float | None],
) -> list[PriceSlot]:
    slots: list[PriceSlot] = []
    for item in items:
        if start_key not in item or end_key not in item:
            raise _invalid(item, f"no {start_key!r} or {end_key!r}")
        start = _parse_time(item[start_key], tz, item)
        end = _parse_time(item[end_key], tz, item)
        price = price_of(item)
        if end <= start:
            raise _invalid(item, "it ends before it starts")
        if price is not None:
            slots.append(PriceSlot(start, end, price))
    return slots


def _points(
    items: Iterable[Mapping[str, Any]], tz: tzinfo, time_key: str, factor: float = 1.0
) -> list[tuple[datetime, float | None]]:
    points: list[tuple[datetime, float | None]] = []
    for item in items:
        if time_key not in item or "price" not in item:
            raise _invalid(item, f"no {time_key!r} or 'price'")
        price = _parse_price(item["price"], item)
        points.append(
            (_parse_time(item[time_key], tz, item), None if price is None else price * factor)
        )
    return points


def _unit_factor(unit: Any) -> float:
    """Return the factor from a price per ``unit`` (``EUR/MWh``, ``kWh``...) to one per kWh."""
    energy = str(unit or "").rsplit("/", 1)[-1].strip().lower()
    return {"mwh": 0.001, "wh": 1000.0}.get(energy, 1.0)


def _choose(mapping: Mapping[str, Any], source: str | None, what: str) -> Any:
    """Pick the area (Nord Pool) or home (Tibber) of a response that holds several."""
    choices = ", ".join(sorted(str(key) for key in mapping))
    if source is not None:
        for key, value in mapping.items():
            if str(key).casefold() == source.casefold():
                return value
        raise PriceFormatError(
            PriceErrorReason.UNKNOWN_SOURCE,
            f"{what} {source!r} is not in the price response ({choices})",
            source=source,
            choices=choices,
        )
    if len(mapping) == 1:
        return next(iter(mapping.values()))
    if not mapping:
        raise PriceFormatError(PriceErrorReason.EMPTY_FORECAST, "the price response is empty")
    raise PriceFormatError(
        PriceErrorReason.AMBIGUOUS_SOURCE,
        f"the price response holds several {what}s ({choices}): choose one",
        choices=choices,
    )


def parse_price_slots(items: Any, *, time_zone: tzinfo | None = None) -> list[PriceSlot]:
    """Read a generic list of ``{start, end | duration, price}`` (the action's own prices)."""
    tz = time_zone or dt_util.get_default_time_zone()
    slots: list[PriceSlot] = []
    for item in _entries(items, "the price list"):
        if "start" not in item or "price" not in item:
            raise _invalid(item, "no 'start' or 'price'")
        start = _parse_time(item["start"], tz, item)
        if item.get("end") is not None:
            end = _parse_time(item["end"], tz, item)
        elif item.get("duration") is not None:
            end = start + _parse_duration(item["duration"], item)
        else:
            raise _invalid(item, "no 'end' or 'duration'")
        if end <= start:
            raise _invalid(item, "it ends before it starts")
        if (price := _parse_price(item["price"], item)) is not None:
            slots.append(PriceSlot(start, end, price))
    return merge_price_slots(slots)


def _parse_response(response: Any, tz: tzinfo, source: str | None, unit: Any) -> list[PriceSlot]:
    if isinstance(response, Sequence) and not isinstance(response, str | bytes):
        return parse_price_slots(response, time_zone=tz)
    if not isinstance(response, Mapping):
        raise PriceFormatError(
            PriceErrorReason.NO_FORECAST, f"the price response {response!r} is not a forecast"
        )
    if "prices" in response:
        prices = response["prices"]
        if isinstance(prices, Mapping):  # Tibber: per home
            items = _entries(_choose(prices, source, "home"), "the Tibber prices")
            return _closed_slots(_points(items, tz, "start_time"))
        # ENTSO-e get_energy_prices
        items = _entries(prices, "the ENTSO-e prices")
        return _closed_slots(_points(items, tz, "timestamp", _unit_factor(unit)))
    # Nord Pool (core): per area, per MWh
    if not response or not all(
        isinstance(value, Sequence) and not isinstance(value, str | bytes)
        for value in response.values()
    ):
        raise PriceFormatError(
            PriceErrorReason.NO_FORECAST, "the price response is not in a known shape"
        )
    items = _entries(_choose(response, source, "area"), "the Nord Pool prices")

    def _per_kwh(item: Mapping[str, Any]) -> float | None:
        price = _parse_price(item.get("price"), item)
        return None if price is None else price / 1000

    return _slots_with_end(items, tz, "start", "end", _per_kwh)


_EPEX_PRICE_KEYS: Final = (
    ("price_per_kwh", 1.0),
    ("price_ct_per_kwh", 0.01),
    ("price_pence_per_kwh", 0.01),
    ("price_eur_per_mwh", 0.001),
    ("price_gbp_per_mwh", 0.001),
)


def _epex_price(item: Mapping[str, Any]) -> float | None:
    for key, factor in _EPEX_PRICE_KEYS:
        if key in item:
            price = _parse_price(item[key], item)
            return None if price is None else price * factor
    raise _invalid(item, "no price (is this the EPEX Spot price sensor?)")


def _has_items_with(value: Any, key: str) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and any(isinstance(item, Mapping) and key in item for item in value)
    )


def _parse_attributes(attributes: Mapping[str, Any], tz: tzinfo) -> list[PriceSlot] | None:
    """Read the forecast in a price entity's attributes; ``None`` when there is none."""
    if "raw_today" in attributes or "raw_tomorrow" in attributes:  # Nord Pool (custom)
        factor = _unit_factor(attributes.get("unit"))
        if attributes.get("price_in_cents") is True:
            factor /= 100

        def _nordpool(item: Mapping[str, Any]) -> float | None:
            price = _parse_price(item.get("value"), item)
            return None if price is None else price * factor

        items = _entries(attributes.get("raw_today"), "raw_today") + _entries(
            attributes.get("raw_tomorrow"), "raw_tomorrow"
        )
        return _slots_with_end(items, tz, "start", "end", _nordpool)
    if "rates" in attributes:  # Octopus Energy: pounds per kWh

        def _octopus(item: Mapping[str, Any]) -> float | None:
            if "value_inc_vat" not in item:
                raise _invalid(item, "no 'value_inc_vat'")
            return _parse_price(item["value_inc_vat"], item)

        return _slots_with_end(_entries(attributes["rates"], "rates"), tz, "start", "end", _octopus)
    if _has_items_with(attributes.get("data"), "start_time"):  # EPEX Spot
        items = _entries(attributes["data"], "data")
        return _slots_with_end(items, tz, "start_time", "end_time", _epex_price)
    keys = [
        key
        for key in ("prices", "prices_today", "prices_tomorrow")
        if isinstance(attributes.get(key), Sequence) and not isinstance(attributes[key], str)
    ]
    if keys:  # ENTSO-e
        factor = _unit_factor(attributes.get("unit_of_measurement"))
        points = [
            point
            for key in keys
            for point in _points(_entries(attributes[key], key), tz, "time", factor)
        ]
        return _closed_slots(points)
    return None


def merge_price_slots(*slot_lists: Iterable[PriceSlot]) -> list[PriceSlot]:
    """Merge forecasts by start (a later list wins); an overlapping slot is cut to fit."""
    by_start: dict[datetime, PriceSlot] = {}
    for slots in slot_lists:
        for slot in slots:
            by_start[slot.start] = slot
    merged: list[PriceSlot] = []
    for slot in sorted(by_start.values(), key=lambda slot: slot.start):
        if merged and slot.start < merged[-1].end:
            if slot.end <= merged[-1].end:
                continue
            slot = PriceSlot(merged[-1].end, slot.end, slot.price)
        merged.append(slot)
    return merged


def parse_price_forecast(
    attributes: Mapping[str, Any] | None,
    response: Any = None,
    *,
    time_zone: tzinfo | None = None,
    source: str | None = None,
) -> list[PriceSlot]:
    """Read a price entity's forecast from its attributes and/or an action response.

    ``source`` picks the Nord Pool area or the Tibber home where the response holds several;
    naive times are in ``time_zone`` (default: Home Assistant's). Both parts are merged, the
    response winning. Raise ``PriceFormatError`` when neither holds a forecast.
    """
    tz = time_zone or dt_util.get_default_time_zone()
    found: list[list[PriceSlot]] = []
    if attributes and (slots := _parse_attributes(attributes, tz)) is not None:
        found.append(slots)
    if response is not None:
        unit = None if attributes is None else attributes.get("unit_of_measurement")
        found.append(_parse_response(response, tz, source, unit))
    if not found:
        raise PriceFormatError(
            PriceErrorReason.NO_FORECAST, "the price entity has no forecast in a known shape"
        )
    if not (merged := merge_price_slots(*found)):
        raise PriceFormatError(PriceErrorReason.EMPTY_FORECAST, "the price forecast is empty")
    return merged


# --- Planning -------------------------------------------------------------------------------------


class PlanMode(StrEnum):
    """How the plan chose its charging time."""

    CHEAPEST = "cheapest"
    """The cheapest slots of a price forecast."""
    LATEST = "latest"
    """No prices: as late as possible, done a safety margin before the deadline."""


class PlanStatus(StrEnum):
    """The state of a plan at a time (the Plan sensor's state; ``IDLE``: no plan)."""

    IDLE = "idle"
    WAITING = "waiting"
    CHARGING = "charging"
    DONE = "done"
    MISSED = "missed"


class PlanIssue(StrEnum):
    """What the response and the Plan sensor should tell the user about a plan."""

    TARGET_REACHED = "target_reached"
    """The SoC is already at the target: nothing to do."""
    DEADLINE_PASSED = "deadline_passed"
    """The deadline is not in the future."""
    INSUFFICIENT_TIME = "insufficient_time"
    """Even full power until the deadline falls short: charge now, all the time that is left."""
    PRICE_LIMIT = "price_limit"
    """``max_price`` leaves too few slots: the target will not be reached."""
    NO_PRICES_IN_WINDOW = "no_prices_in_window"
    """A forecast without a price before the deadline: planned as without prices."""
    UNPRICED_TIME = "unpriced_time"
    """The forecast ends before the deadline and time without a price is part of the plan."""


class ReplanReason(StrEnum):
    """Why a running plan should be made again."""

    FORECAST_CHANGED = "forecast_changed"
    BEHIND_SCHEDULE = "behind_schedule"


@dataclass(frozen=True, slots=True)
class PlannedSlot:
    """Charge at ``power_w`` from ``start`` to ``end``; ``price`` per kWh, ``None`` if unknown."""

    start: datetime
    end: datetime
    power_w: int
    price: float | None

    @property
    def energy_wh(self) -> float:
        """Return the grid energy of the slot."""
        return self.power_w * (self.end - self.start) / _HOUR

    @property
    def cost(self) -> float | None:
        """Return the expected cost of the slot (``None`` without a price)."""
        return None if self.price is None else self.price * self.energy_wh / 1000


@dataclass(frozen=True, slots=True)
class ChargeWindow:
    """Contiguous planned slots: one charging run."""

    start: datetime
    end: datetime
    power_w: int


def _minutes_up(duration: timedelta) -> timedelta:
    return _MINUTE * math.ceil(duration / _MINUTE)


def _floor_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def _iso(value: datetime) -> str:
    return dt_util.as_local(value).isoformat()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargePlan:
    """A plan to charge to ``target_soc`` by ``deadline`` (times in UTC)."""

    created: datetime
    deadline: datetime
    soc_at_start: float
    target_soc: float
    capacity_wh: float
    efficiency: float
    needed_wh: float
    """The grid energy the target takes (with the efficiency allowance)."""
    mode: PlanMode
    slots: tuple[PlannedSlot, ...] = ()
    issues: frozenset[PlanIssue] = frozenset()
    prices: tuple[PriceSlot, ...] = ()
    """The forecast the plan was made on (between ``created`` and the deadline)."""

    @property
    def energy_wh(self) -> float:
        """Return the grid energy the slots draw."""
        return sum(slot.energy_wh for slot in self.slots)

    @property
    def cost(self) -> float | None:
        """Return the expected cost of the priced slots (``None`` when no slot has a price)."""
        costs = [cost for slot in self.slots if (cost := slot.cost) is not None]
        return sum(costs) if costs else None

    @property
    def shortfall_wh(self) -> float:
        """Return the grid energy the plan lacks to reach the target."""
        return max(0.0, self.needed_wh - self.energy_wh)

    @property
    def impossible(self) -> bool:
        """Return True when the target cannot be reached even at full power (charging now)."""
        return PlanIssue.INSUFFICIENT_TIME in self.issues

    @property
    def expected_soc(self) -> float:
        """Return the SoC the plan reaches by the deadline."""
        return self.expected_soc_at(self.deadline)

    @property
    def windows(self) -> tuple[ChargeWindow, ...]:
        """Return the charging runs: contiguous slots of the same power merged."""
        runs: list[ChargeWindow] = []
        for slot in self.slots:
            if runs and runs[-1].end == slot.start and runs[-1].power_w == slot.power_w:
                runs[-1] = ChargeWindow(runs[-1].start, slot.end, slot.power_w)
            else:
                runs.append(ChargeWindow(slot.start, slot.end, slot.power_w))
        return tuple(runs)

    def slot_at(self, when: datetime) -> PlannedSlot | None:
        """Return the slot in force at ``when`` (start included, end excluded)."""
        when = _as_utc(when)
        return next((slot for slot in self.slots if slot.start <= when < slot.end), None)

    def window_at(self, when: datetime) -> ChargeWindow | None:
        """Return the charging run in force at ``when``."""
        when = _as_utc(when)
        return next((run for run in self.windows if run.start <= when < run.end), None)

    def next_start(self, when: datetime) -> datetime | None:
        """Return when the next charging run after ``when`` starts (``None``: no more)."""
        when = _as_utc(when)
        return next((run.start for run in self.windows if run.start > when), None)

    def charged_wh_until(self, when: datetime) -> float:
        """Return the grid energy the plan draws from its creation until ``when``."""
        when = _as_utc(when)
        return sum(
            slot.power_w * (min(slot.end, when) - slot.start) / _HOUR
            for slot in self.slots
            if slot.start < when
        )

    def expected_soc_at(self, when: datetime) -> float:
        """Return the SoC the plan expects at ``when``: charged energy only, at most the target."""
        gained = self.charged_wh_until(when) * self.efficiency / self.capacity_wh * 100
        return min(max(self.target_soc, self.soc_at_start), self.soc_at_start + gained)

    def status_at(self, when: datetime, soc: float | None = None) -> PlanStatus:
        """Return the plan's state at ``when``; done as soon as ``soc`` is at the target."""
        when = _as_utc(when)
        if PlanIssue.TARGET_REACHED in self.issues or (soc is not None and soc >= self.target_soc):
            return PlanStatus.DONE
        if when >= self.deadline:
            return PlanStatus.MISSED
        return PlanStatus.CHARGING if self.slot_at(when) else PlanStatus.WAITING

    def as_attributes(self) -> dict[str, Any]:
        """Return the Plan sensor's attributes (local times, JSON values)."""
        cost = self.cost
        return {
            "target_soc": self.target_soc,
            "deadline": _iso(self.deadline),
            "created": _iso(self.created),
            "soc_at_start": self.soc_at_start,
            "mode": self.mode.value,
            "slots": [
                {
                    "start": _iso(slot.start),
                    "end": _iso(slot.end),
                    "power_w": slot.power_w,
                    "price": slot.price,
                }
                for slot in self.slots
            ],
            "energy_wh": round(self.energy_wh),
            "cost": None if cost is None else round(cost, 4),
            "expected_soc": round(self.expected_soc, 1),
            "shortfall_wh": round(self.shortfall_wh),
            "impossible": self.impossible,
            "issues": sorted(issue.value for issue in self.issues),
        }

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form for a store."""
        return {
            "created": self.created.isoformat(),
            "deadline": self.deadline.isoformat(),
            "soc_at_start": self.soc_at_start,
            "target_soc": self.target_soc,
            "capacity_wh": self.capacity_wh,
            "efficiency": self.efficiency,
            "needed_wh": self.needed_wh,
            "mode": self.mode.value,
            "slots": [
                [slot.start.isoformat(), slot.end.isoformat(), slot.power_w, slot.price]
                for slot in self.slots
            ],
            "issues": sorted(issue.value for issue in self.issues),
            "prices": [
                [slot.start.isoformat(), slot.end.isoformat(), slot.price] for slot in self.prices
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChargePlan:
        """Read the JSON form; raise ``KeyError``, ``TypeError`` or ``ValueError`` when malformed."""

        def time(value: Any) -> datetime:
            if not isinstance(value, str):
                raise TypeError(f"time {value!r}")
            return _as_utc(datetime.fromisoformat(value))

        def number(value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"number {value!r}")
            return float(value)

        return cls(
            created=time(data["created"]),
            deadline=time(data["deadline"]),
            soc_at_start=number(data["soc_at_start"]),
            target_soc=number(data["target_soc"]),
            capacity_wh=number(data["capacity_wh"]),
            efficiency=number(data["efficiency"]),
            needed_wh=number(data["needed_wh"]),
            mode=PlanMode(data["mode"]),
            slots=tuple(
                PlannedSlot(
                    time(start),
                    time(end),
                    int(number(power)),
                    None if price is None else number(price),
                )
                for start, end, power, price in data["slots"]
            ),
            issues=frozenset(PlanIssue(issue) for issue in data["issues"]),
            prices=tuple(
                PriceSlot(time(start), time(end), number(price))
                for start, end, price in data["prices"]
            ),
        )


_Piece = tuple[datetime, datetime, float | None]


def _price_key(price: float | None) -> float:
    return math.inf if price is None else price


def _take_cheapest(pieces: list[_Piece], needed: timedelta) -> tuple[list[_Piece], timedelta]:
    """Take the cheapest pieces (ties: the earlier) until ``needed`` is covered.

    Pieces without a price come last, earliest first. The last piece may be taken in part: at
    its end when the piece after it is taken (one run), else at its start (earlier charging
    leaves time to catch up).
    """
    chosen: list[_Piece] = []
    partial: tuple[_Piece, timedelta] | None = None
    left = needed
    for piece in sorted(pieces, key=lambda piece: (_price_key(piece[2]), piece[0])):
        if left <= timedelta(0):
            break
        length = piece[1] - piece[0]
        if length <= left:
            chosen.append(piece)
            left -= length
        else:
            partial = (piece, min(length, _minutes_up(left)))
            left = timedelta(0)
    if partial is not None:
        (start, end, price), part = partial
        if any(other[0] == end for other in chosen):
            chosen.append((end - part, end, price))
        else:
            chosen.append((start, start + part, price))
    return chosen, left


def _take_latest(pieces: list[_Piece], needed: timedelta) -> tuple[list[_Piece], timedelta]:
    """Take pieces from the latest backwards until ``needed`` is covered."""
    chosen: list[_Piece] = []
    left = needed
    for start, end, price in sorted(pieces, key=lambda piece: piece[0], reverse=True):
        if left <= timedelta(0):
            break
        part = min(end - start, _minutes_up(left))
        chosen.append((end - part, end, price))
        left -= part
    return chosen, left


def _clip(pieces: list[_Piece], start: datetime, end: datetime) -> list[_Piece]:
    return [(max(a, start), min(b, end), price) for a, b, price in pieces if a < end and b > start]


def _gaps(pieces: list[_Piece], start: datetime, end: datetime) -> list[_Piece]:
    """Return the time between ``start`` and ``end`` that no piece covers."""
    gaps: list[_Piece] = []
    cursor = start
    for a, b, _price in sorted(pieces, key=lambda piece: piece[0]):
        if a > cursor:
            gaps.append((cursor, a, None))
        cursor = max(cursor, b)
    if cursor < end:
        gaps.append((cursor, end, None))
    return gaps


def _latest_pieces(
    now: datetime, deadline: datetime, needed: timedelta, margin: timedelta
) -> list[_Piece]:
    """Charge as late as possible, done ``margin`` before the deadline (less margin if short)."""
    end = deadline - margin
    if end - now < needed:  # the margin is partly used up: start now
        return [(now, min(deadline, now + _minutes_up(needed)), None)]
    return [(max(now, _floor_minute(end - needed)), end, None)]


def plan_charge(
    now: datetime,
    deadline: datetime,
    *,
    soc_now: float,
    target_soc: float,
    capacity_wh: float,
    max_charge_w: float,
    slots: Sequence[PriceSlot] | None = None,
    efficiency: float = DEFAULT_EFFICIENCY,
    margin: timedelta = DEFAULT_MARGIN,
    max_price: float | None = None,
) -> ChargePlan:
    """Plan charging from ``soc_now`` to ``target_soc`` (%) by ``deadline``.

    The grid energy is ``(target - soc) * capacity / efficiency``, charged at ``max_charge_w``.
    With ``slots``: the cheapest slot time before the deadline (ties: the earlier), slots above
    ``max_price`` skipped; time the forecast does not cover is used only when the priced slots
    fall short and no ``max_price`` is set, as late as possible. Without slots (or none before
    the deadline): as late as possible, done ``margin`` before the deadline. When even full power
    until the deadline falls short, all the time left is planned (``PlanIssue.INSUFFICIENT_TIME``;
    ``max_price`` still applies). Raise ``ValueError`` on naive times or impossible parameters.
    """
    now, deadline = _as_utc(now, "now"), _as_utc(deadline, "deadline")
    if capacity_wh <= 0 or max_charge_w <= 0 or not 0 < efficiency <= 1:
        raise ValueError("capacity, charge power and efficiency must be positive")
    if not (0 <= soc_now <= 100 and 0 <= target_soc <= 100):
        raise ValueError("state of charge outside 0-100 %")
    if margin < timedelta(0):
        raise ValueError("negative margin")
    needed_wh = max(0.0, (target_soc - soc_now) / 100 * capacity_wh / efficiency)
    prices = (
        ()
        if slots is None
        else tuple(slot for slot in slots if slot.end > now and slot.start < deadline)
    )
    issues: set[PlanIssue] = set()
    pieces: list[_Piece] = []
    mode = PlanMode.CHEAPEST if prices else PlanMode.LATEST
    if needed_wh <= 0:
        issues.add(PlanIssue.TARGET_REACHED)
    elif deadline <= now:
        issues.add(PlanIssue.DEADLINE_PASSED)
    else:
        needed = timedelta(hours=needed_wh / max_charge_w)
        if slots is not None and not prices:
            issues.add(PlanIssue.NO_PRICES_IN_WINDOW)
        if not prices:
            if needed > deadline - now:
                issues.add(PlanIssue.INSUFFICIENT_TIME)
                pieces = [(now, deadline, None)]
            else:
                pieces = _latest_pieces(now, deadline, needed, margin)
        else:
            pieces = _cheapest_pieces(
                now,
                deadline,
                needed,
                margin=margin,
                prices=prices,
                max_price=max_price,
                issues=issues,
            )
    power = round(max_charge_w)
    return ChargePlan(
        created=now,
        deadline=deadline,
        soc_at_start=soc_now,
        target_soc=target_soc,
        capacity_wh=capacity_wh,
        efficiency=efficiency,
        needed_wh=needed_wh,
        mode=mode,
        slots=tuple(
            PlannedSlot(start, end, power, price)
            for start, end, price in sorted(pieces, key=lambda piece: piece[0])
        ),
        issues=frozenset(issues),
        prices=prices,
    )


def _cheapest_pieces(
    now: datetime,
    deadline: datetime,
    needed: timedelta,
    *,
    margin: timedelta,
    prices: Sequence[PriceSlot],
    max_price: float | None,
    issues: set[PlanIssue],
) -> list[_Piece]:
    priced = _clip([(slot.start, slot.end, slot.price) for slot in prices], now, deadline)
    allowed = [
        piece
        for piece in priced
        if max_price is None or (piece[2] is not None and piece[2] <= max_price)
    ]
    gaps = _gaps(priced, now, deadline) if max_price is None else []
    price_limited = len(allowed) < len(priced)
    if needed > deadline - now:
        issues.add(PlanIssue.INSUFFICIENT_TIME)
        if price_limited:
            issues.add(PlanIssue.PRICE_LIMIT)
        if gaps:
            issues.add(PlanIssue.UNPRICED_TIME)
        return allowed + gaps
    chosen, left = _take_cheapest(allowed, needed)
    if left > timedelta(0) and gaps:
        # Unknown prices, as late as possible: first before the margin, then inside it.
        limit = max(now, deadline - margin)
        late, left = _take_latest(_clip(gaps, now, limit), left)
        early, left = _take_cheapest(_clip(gaps, limit, deadline), left)
        chosen += late + early
        issues.add(PlanIssue.UNPRICED_TIME)
    if left > timedelta(0):
        issues.add(PlanIssue.PRICE_LIMIT)
    return chosen


def replan_needed(
    plan: ChargePlan,
    now: datetime,
    soc_now: float | None,
    slots: Sequence[PriceSlot] | None = None,
    *,
    soc_tolerance: float = DEFAULT_SOC_TOLERANCE,
) -> ReplanReason | None:
    """Return why a running plan should be made again, or ``None``.

    ``FORECAST_CHANGED``: ``slots`` (when given) differ from the plan's prices anywhere between
    ``now`` and the deadline (a price changed, a slot appeared or went). ``BEHIND_SCHEDULE``:
    ``soc_now`` is more than ``soc_tolerance`` points below ``plan.expected_soc_at(now)``, the
    SoC at the start plus what the slots so far should have charged (at the plan's efficiency).
    Never for a plan that is done or missed.
    """
    if plan.status_at(now, soc_now) in (PlanStatus.DONE, PlanStatus.MISSED):
        return None
    now = _as_utc(now)
    if slots is not None:

        def ahead(forecast: Iterable[PriceSlot]) -> set[tuple[datetime, datetime, float]]:
            return {
                (slot.start, slot.end, round(slot.price, 9))
                for slot in forecast
                if slot.end > now and slot.start < plan.deadline
            }

        if ahead(plan.prices) != ahead(slots):
            return ReplanReason.FORECAST_CHANGED
    if soc_now is not None and soc_now < plan.expected_soc_at(now) - soc_tolerance:
        return ReplanReason.BEHIND_SCHEDULE
    return None
