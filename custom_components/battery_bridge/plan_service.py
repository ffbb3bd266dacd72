"""The plan_charge action: check the request, read the prices, plan, start the plan's chain.

Everything is checked before anything is written: a battery that cannot be charged by an
override, an unknown state of charge or capacity, a target already reached, a deadline in the
past or more than ``MAX_HORIZON`` ahead, a power beyond the battery's charge bound (the default
power is clamped to it), a price entity without a forecast. Not enough time even at full power is no error: the
plan charges now and says so (``insufficient_time`` in the response and the Plan sensor).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any, Final

from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.util import dt as dt_util
import probatio as vol

from .api import OverrideMode
from .const import DOMAIN
from .control import limit_maxima, setpoint_bounds, settable_modes
from .plan import PlanIssue, PriceFormatError, parse_price_slots, plan_charge
from .plan_runner import PlanRunner, async_plan_slots
from .plan_store import PlanSettings
from .price_source import price_error
from .runtime import BatteryRuntime

ATTR_UNTIL_SOC: Final = "until_soc"
ATTR_DEADLINE: Final = "deadline"
ATTR_PRICE_ENTITY: Final = "price_entity"
ATTR_PRICE_SOURCE: Final = "price_source"
ATTR_PRICES: Final = "prices"
ATTR_POWER: Final = "power"
ATTR_MAX_PRICE: Final = "max_price"
ATTR_HOLD_BETWEEN: Final = "hold_between"

MAX_HORIZON: Final = timedelta(days=7)
"""How far ahead a deadline may be (Nord Pool is asked once per day up to it, at every change)."""

WARNINGS: Final = frozenset(
    {
        PlanIssue.INSUFFICIENT_TIME,
        PlanIssue.PRICE_LIMIT,
        PlanIssue.NO_PRICES_IN_WINDOW,
        PlanIssue.UNPRICED_TIME,
    }
)
"""The plan's issues that the response lists as warnings."""

PLAN_CHARGE_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): cv.string,
        vol.Required(ATTR_UNTIL_SOC): vol.All(vol.Coerce(float), vol.Range(min=0, max=100)),
        vol.Required(ATTR_DEADLINE): vol.Any(cv.time, cv.datetime),
        vol.Optional(ATTR_PRICE_ENTITY): cv.entity_id,
        vol.Optional(ATTR_PRICE_SOURCE): cv.string,
        vol.Optional(ATTR_PRICES): vol.All(cv.ensure_list, [dict]),
        vol.Optional(ATTR_POWER): vol.All(vol.Coerce(float), vol.Range(min=1)),
        vol.Optional(ATTR_MAX_PRICE): vol.Coerce(float),
        vol.Optional(ATTR_HOLD_BETWEEN): cv.boolean,
    }
)
CANCEL_PLAN_SCHEMA: Final = vol.Schema({vol.Required(ATTR_DEVICE_ID): cv.string})


def _invalid(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders or None,
    )


def resolve_deadline(value: time | datetime, now: datetime) -> datetime:
    """Return the deadline: a time of day is its next occurrence (local), a naive datetime local."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt_util.get_default_time_zone())
        return dt_util.as_utc(value)
    local = dt_util.as_local(now)
    candidate = datetime.combine(local.date(), value, tzinfo=local.tzinfo)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), value, tzinfo=local.tzinfo)
    return dt_util.as_utc(candidate)


def _settings(battery: BatteryRuntime, data: Mapping[str, Any]) -> PlanSettings:
    """Check that the battery can run a plan; return the settings with their defaults."""
    controller = battery.controller
    snapshot, name = battery.coordinator.data, battery.coordinator.battery_name
    capabilities, overrides = snapshot.capabilities, controller.policy.override_modes
    if not settable_modes(capabilities):
        raise _invalid("override_read_only", battery=name)

    def supported(mode: OverrideMode) -> bool:
        return overrides.get(mode) in capabilities.modes

    if not supported(OverrideMode.CHARGE):
        raise _invalid("override_not_supported", battery=name, mode=OverrideMode.CHARGE)
    hold = data.get(ATTR_HOLD_BETWEEN, supported(OverrideMode.HOLD))
    if hold and not supported(OverrideMode.HOLD):
        raise _invalid("plan_hold_not_supported", battery=name)
    power = data.get(ATTR_POWER)
    # Where the charge override writes a setpoint, the controller refuses one beyond the bound.
    bounded = overrides.get(OverrideMode.CHARGE) in capabilities.setpoint_modes
    bound = limit_maxima(capabilities)[0]
    if power is None:
        state = snapshot.state
        power = state.max_charge_power_w or (
            bound if capabilities.min_power_w is not None else None
        )
        if power and bounded:
            power = min(power, bound)
    elif bounded and round(power) > bound:
        low, high = setpoint_bounds(capabilities)
        raise _invalid(
            "setpoint_out_of_range", value=str(-round(power)), min=str(low), max=str(high)
        )
    if not power:
        raise _invalid("plan_power_required", battery=name)
    try:
        given = tuple(parse_price_slots(data.get(ATTR_PRICES)))
    except PriceFormatError as err:
        raise price_error(err, ATTR_PRICES) from err
    return PlanSettings(
        power_w=float(power),
        hold_between=bool(hold),
        max_price=data.get(ATTR_MAX_PRICE),
        price_entity=data.get(ATTR_PRICE_ENTITY),
        price_source=data.get(ATTR_PRICE_SOURCE),
        prices=given,
    )


async def async_plan_charge(
    hass: HomeAssistant, battery: BatteryRuntime, data: Mapping[str, Any]
) -> dict[str, Any]:
    """Plan and start charging to ``until_soc`` by ``deadline``; return the plan's summary."""
    settings = _settings(battery, data)
    state, name = battery.coordinator.data.state, battery.coordinator.battery_name
    soc, capacity = state.state_of_charge, state.usable_capacity_wh
    if soc is None or not capacity:
        raise _invalid("plan_battery_unknown", battery=name)
    now = dt_util.utcnow()
    deadline = resolve_deadline(data[ATTR_DEADLINE], now)
    target = data[ATTR_UNTIL_SOC]
    if deadline <= now:
        raise _invalid("plan_deadline_passed", deadline=dt_util.as_local(deadline).isoformat())
    if deadline > now + MAX_HORIZON:
        raise _invalid(
            "plan_deadline_too_far",
            deadline=dt_util.as_local(deadline).isoformat(),
            days=str(MAX_HORIZON.days),
        )
    if soc >= target:
        raise _invalid("plan_target_reached", soc=f"{soc:g}", until_soc=f"{target:g}")
    slots = await async_plan_slots(hass, settings, now, deadline)
    plan = plan_charge(
        now,
        deadline,
        soc_now=soc,
        target_soc=target,
        capacity_wh=capacity,
        max_charge_w=settings.power_w,
        slots=slots,
        max_price=settings.max_price,
    )
    runner: PlanRunner = battery.planner
    await runner.async_start(plan, settings)
    next_start = runner.next_start()
    return {
        "status": runner.status().value,
        "next_start": None if next_start is None else dt_util.as_local(next_start).isoformat(),
        "warnings": sorted(issue.value for issue in plan.issues & WARNINGS),
        **(runner.attributes() or {}),
    }
