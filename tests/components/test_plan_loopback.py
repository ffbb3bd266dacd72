"""A charge plan end to end: the real integration against the FEMS and FlexConnect simulators.

Home Assistant's clock is frozen and moved in steps (only while nothing is in flight); each
simulator runs on a manual clock moved in step, so hours of a plan pass in a second or two and
the simulated state of charge follows the plan's writes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.battery_bridge.config_flow import CONF_BATTERY_IDS, SECTION_ADVANCED
from custom_components.battery_bridge.const import CONF_ESS_ID, DOMAIN
from simulator import fems as fems_sim, flexconnect as flex_sim
from tests.conftest import ManualClock, StartApp

from .test_simulators import FLEX_A, _flow

pytestmark = pytest.mark.usefixtures("socket_enabled")
H = timedelta(hours=1)
STEP = timedelta(seconds=15)
# A start off the whole second, fixed so that every run takes the same steps. The test harness's
# async_fire_time_changed also fires timers due up to 0.5 s later, so the last check before the
# deadline stays two steps clear of it (with the wall clock as start, a run that landed within
# 0.5 s of the deadline saw the hold end "early" and failed now and then).
START = "2026-12-03T14:15:14.8+00:00"


def _device_id(hass: HomeAssistant, entry: ConfigEntry) -> str:
    (device,) = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    return device.id


async def _plan(hass: HomeAssistant, entry: ConfigEntry, **data: Any) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN,
        "plan_charge",
        {"device_id": _device_id(hass, entry), **data},
        blocking=True,
        return_response=True,
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    assert isinstance(response, dict)
    return response


async def _run(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    clock: ManualClock,
    span: timedelta,
    check: Any = None,
) -> None:
    """Move both clocks by ``span`` in steps; fire what is due; call ``check`` after each."""
    end = dt_util.utcnow() + span
    while dt_util.utcnow() < end:
        freezer.tick(STEP)
        clock.now += STEP.total_seconds()
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)
        if check is not None:
            check()


def _plan_state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


async def test_fems_plan_reaches_target_with_keepalive(
    hass: HomeAssistant, start_app: StartApp, freezer: FrozenDateTimeFactory
) -> None:
    """The cheapest hour charges the FEMS to the target; the keepalive never lapses."""
    freezer.move_to(START)
    clock = ManualClock()
    app = fems_sim.create_app(api_timeout=60.0, clock=clock, soc=50.0)
    sim = app[fems_sim.SIM]
    sim.pv_override = 0.0
    sim.house_override = 500.0
    lapses: list[float] = []
    advance = sim.advance

    def _advance() -> None:
        if sim.written and sim.last_post is not None and sim.last_post + 60 <= clock():
            lapses.append(clock())
        advance()

    sim.advance = _advance  # type: ignore[method-assign]
    server = await start_app(app)
    entry = await _flow(
        hass,
        "fems",
        {
            CONF_HOST: "127.0.0.1",
            CONF_PORT: server.port,
            CONF_PASSWORD: "owner",
            SECTION_ADVANCED: {CONF_ESS_ID: "ess0"},
        },
    )
    plan = next(
        state.entity_id
        for state in hass.states.async_all("sensor")
        if state.entity_id.endswith("_plan")
    )
    now = dt_util.utcnow().replace(minute=0, second=0, microsecond=0)
    prices = [
        {"start": (now + i * H).isoformat(), "duration": "01:00", "price": price}
        for i, price in enumerate([0.30, 0.30, 0.10, 0.30])
    ]
    deadline = now + 4 * H
    response = await _plan(hass, entry, until_soc=80, deadline=deadline.isoformat(), prices=prices)
    assert response["status"] == "waiting"
    assert response["slots"][0]["start"] == dt_util.as_local(now + 2 * H).isoformat()
    assert sim.written == {}  # nothing before the slot

    def _check() -> None:
        if _plan_state(hass, plan) == "charging":
            assert sim.flows().battery < 0  # charging
        if _plan_state(hass, plan) == "waiting" and dt_util.utcnow() < now + 2 * H:
            assert sim.written == {}  # the FEMS's own control before the slot

    await _run(hass, freezer, clock, deadline - dt_util.utcnow() - 2 * STEP, _check)
    assert deadline - 2 * STEP <= dt_util.utcnow() < deadline - STEP
    assert _plan_state(hass, plan) == "done"
    assert round(sim.soc_wh / sim.capacity_wh * 100) >= 80  # the FEMS reports whole percent
    assert sim.written  # held until the deadline
    assert lapses == []
    await _run(hass, freezer, clock, 3 * STEP)
    assert dt_util.utcnow() >= deadline
    assert sim.written == {}  # the fallback: the FEMS's own control
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_flexconnect_plan_reaches_target(
    hass: HomeAssistant, start_app: StartApp, freezer: FrozenDateTimeFactory
) -> None:
    """Without prices the FlexConnect charges as late as possible and is full in time."""
    freezer.move_to(START)
    clock = ManualClock()
    app = flex_sim.create_app(batteries=[FLEX_A], latency=5.0, clock=clock)
    sim = app[flex_sim.FLEXCONNECT]
    battery = sim.batteries[FLEX_A]
    server = await start_app(app)
    entry = await _flow(
        hass,
        "flexconnect",
        {CONF_HOST: "127.0.0.1", CONF_PORT: server.port, CONF_BATTERY_IDS: FLEX_A},
    )
    target = round(battery.state_of_charge) + 20
    deadline = dt_util.utcnow() + 3 * H
    response = await _plan(hass, entry, until_soc=target, deadline=deadline.isoformat(), power=3000)
    assert response["mode"] == "latest"
    plan = next(
        state.entity_id
        for state in hass.states.async_all("sensor")
        if state.entity_id.endswith("_plan")
    )
    await _run(hass, freezer, clock, deadline - dt_util.utcnow() - 2 * STEP)
    assert dt_util.utcnow() < deadline - STEP
    assert battery.state_of_charge >= target
    assert _plan_state(hass, plan) == "done"
    assert await hass.config_entries.async_unload(entry.entry_id)
