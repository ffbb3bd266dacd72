"""End to end: the real integration against the three simulators over loopback HTTP.

Each test sets up an entry through the config flow (real clients, real ``create_backend``),
reads the entities, writes a setpoint or a mode through Home Assistant's services, checks that the
simulator received it in its own terms (sign, units) and that the entities follow.
Simulators run on manual clocks so that command latency, Enode actions and the FEMS API timeout
move only when a test says so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from homeassistant.components.number import ATTR_VALUE, SERVICE_SET_VALUE
from homeassistant.components.select import ATTR_OPTION, SERVICE_SELECT_OPTION
from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigEntryState
from homeassistant.const import (
    ATTR_ENTITY_ID,
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.battery_bridge.battery_store import COMMAND_STORAGE_KEY
from custom_components.battery_bridge.config_flow import CONF_BATTERY_IDS, SECTION_ADVANCED
from custom_components.battery_bridge.const import (
    CONF_API_URL,
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_ENVIRONMENT,
    CONF_ESS_ID,
    CONF_TOKEN_URL,
    DOMAIN,
)
from simulator import enode as enode_sim, fems as fems_sim, flexconnect as flex_sim
from simulator.faults import FAULTS, Fault
from tests.conftest import ManualClock, StartApp

pytestmark = pytest.mark.usefixtures("socket_enabled")

FLEX_A = "90D2A30FA3D2AD48525CD255F469C167ECF8292C"
FLEX_B = "5A1C0E7B33D94F2A8E6B1D0C4F7A9E2B3C5D6E71"


async def _flow(hass: HomeAssistant, backend: str, *steps: dict[str, object]) -> ConfigEntry:
    """Run the user flow for ``backend`` with the given step inputs; return the new entry."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": backend}
    )
    for user_input in steps:
        assert result["type"] is FlowResultType.FORM, result
        result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    return entry


def _entity_id(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
    assert entity_id is not None, unique_id
    return entity_id


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def _poll(entry: ConfigEntry, clock: ManualClock, seconds: float) -> None:
    """Let ``seconds`` pass on the simulator, then poll every battery of the entry once.

    Polls are triggered directly: jumping Home Assistant's clock while requests are in flight
    would fire their timeouts (and the simulator's keep-alive timer) at once.
    """
    clock.now += seconds
    for battery in entry.runtime_data.batteries.values():
        await battery.coordinator.async_refresh()


class Timeline:
    """Home Assistant's timers, fired at a moving point in the future, and a simulator clock.

    Time is not frozen: jumping a frozen clock while requests are in flight would fire their
    timeouts. Firing timers at ``utcnow() + elapsed`` runs exactly the timers due by then.
    """

    def __init__(self, hass: HomeAssistant, clock: ManualClock) -> None:
        self.hass = hass
        self.clock = clock
        self.elapsed = 0.0

    async def tick(self, seconds: float) -> None:
        """Let ``seconds`` pass: the simulator's clock moves, the timers due by then fire."""
        self.elapsed += seconds
        self.clock.now += seconds
        async_fire_time_changed(self.hass, dt_util.utcnow() + timedelta(seconds=self.elapsed))
        await self.hass.async_block_till_done(wait_background_tasks=True)


async def _call(
    hass: HomeAssistant, domain: str, service: str, entity_id: str, **data: object
) -> None:
    await hass.services.async_call(
        domain, service, {ATTR_ENTITY_ID: entity_id, **data}, blocking=True
    )
    await hass.async_block_till_done(wait_background_tasks=True)  # the refresh has finished


# --- FlexConnect ---------------------------------------------------------------------------------


async def test_flexconnect_end_to_end(hass: HomeAssistant, start_app: StartApp) -> None:
    """Two batteries; a charge setpoint reaches the client as +W and applies after the latency."""
    clock = ManualClock()
    app = flex_sim.create_app(batteries=[FLEX_A, FLEX_B], latency=5.0, clock=clock)
    sim = app[flex_sim.FLEXCONNECT]
    server = await start_app(app)
    entry = await _flow(
        hass,
        "flexconnect",
        {CONF_HOST: "127.0.0.1", CONF_PORT: server.port, CONF_BATTERY_IDS: f"{FLEX_A}\n{FLEX_B}"},
    )
    assert len(entry.runtime_data.batteries) == 2

    soc = _entity_id(hass, "sensor", f"flexconnect_{FLEX_A}_state_of_charge")
    setpoint = _entity_id(hass, "number", f"flexconnect_{FLEX_A}_power_setpoint")
    mode = _entity_id(hass, "select", f"flexconnect_{FLEX_A}_control_mode")
    pending = _entity_id(hass, "binary_sensor", f"flexconnect_{FLEX_A}_command_pending")
    battery = sim.batteries[FLEX_A]
    assert float(_state(hass, soc)) == pytest.approx(battery.state_of_charge, abs=0.1)
    assert _entity_id(hass, "sensor", f"flexconnect_{FLEX_B}_state_of_charge")

    await _call(hass, "select", SERVICE_SELECT_OPTION, mode, **{ATTR_OPTION: "power"})
    await _call(hass, "number", SERVICE_SET_VALUE, setpoint, **{ATTR_VALUE: -3000})
    assert battery.desired is not None
    assert battery.desired.mode == 1  # POWER
    assert battery.desired.setpoint_w == 3000  # FlexConnect: + = charging
    assert _state(hass, pending) == STATE_ON

    energy_before = battery.stored_energy_wh
    await _poll(entry, clock, 15)  # the latency has passed: current = desired
    assert _state(hass, pending) == STATE_OFF
    assert float(_state(hass, setpoint)) == -3000
    assert _state(hass, mode) == "power"
    await _poll(entry, clock, 360)  # six minutes of charging at 3 kW
    assert battery.stored_energy_wh == pytest.approx(energy_before + 300, abs=20)
    assert float(_state(hass, soc)) == pytest.approx(battery.state_of_charge, abs=0.1)

    # The client answers with an HTML error page: unavailable, then back with the client.
    app[FAULTS].add(Fault.HTML_ERROR, status=502, count=2)
    await _poll(entry, clock, 15)
    assert _state(hass, soc) == STATE_UNAVAILABLE
    await _poll(entry, clock, 15)
    assert float(_state(hass, soc)) == pytest.approx(battery.state_of_charge, abs=0.1)
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- FEMS ----------------------------------------------------------------------------------------


async def test_fems_end_to_end(hass: HomeAssistant, start_app: StartApp) -> None:
    """A setpoint is written as SetActivePowerEquals, kept alive, and released by auto; a charge
    limit is written as SetActivePowerGreaterOrEquals, kept alive in auto, and released."""
    clock = ManualClock()
    app = fems_sim.create_app(api_timeout=60.0, clock=clock)
    sim = app[fems_sim.SIM]
    timeline = Timeline(hass, clock)
    sim.pv_override = 3000.0  # a hybrid FEMS: all of it DC-PV
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
    assert sim.written == {}  # set-up (including the write probe) changed nothing
    uid = f"fems_{entry.entry_id}_ess0"
    soc = _entity_id(hass, "sensor", f"{uid}_state_of_charge")
    setpoint = _entity_id(hass, "number", f"{uid}_power_setpoint")
    mode = _entity_id(hass, "select", f"{uid}_control_mode")
    power = _entity_id(hass, "sensor", f"{uid}_battery_power")
    assert float(_state(hass, soc)) == pytest.approx(50.0, abs=1.0)
    assert _state(hass, mode) == "auto"

    await _call(hass, "number", SERVICE_SET_VALUE, setpoint, **{ATTR_VALUE: 2000})
    # FEMS: + = discharging; a hybrid's AC setpoint includes its DC-PV (battery = S - PV_dc).
    assert sim.written == {"ess0/SetActivePowerEquals": 5000}
    assert sim.flows().battery == 2000
    assert float(_state(hass, power)) == 2000  # read back from _sum/EssDischargePower
    assert _state(hass, mode) == "power"
    assert float(_state(hass, setpoint)) == 2000
    posts = sim.posts

    # The keepalive rewrites at half the API timeout, so the FEMS never drops the setpoint.
    for _ in range(4):
        await timeline.tick(30)
    assert sim.posts >= posts + 4
    assert sim.written == {"ess0/SetActivePowerEquals": 5000}

    await _call(hass, "select", SERVICE_SELECT_OPTION, mode, **{ATTR_OPTION: "auto"})
    assert sim.written == {}  # released with null
    posts = sim.posts
    await timeline.tick(30)
    await timeline.tick(30)
    assert sim.posts == posts  # no keepalive in auto
    assert _state(hass, mode) == "auto"

    # A charge limit in auto: a GreaterOrEquals bound (with the DC-PV offset) under the FEMS's
    # own control, which would charge about 2.5 kW from the 3 kW of PV; kept alive; max releases.
    charge_limit = _entity_id(hass, "number", f"{uid}_charge_power_limit")
    assert _state(hass, charge_limit) == "5000"  # no limit: the maximum
    assert sim.flows().battery < -1000
    await _call(hass, "number", SERVICE_SET_VALUE, charge_limit, **{ATTR_VALUE: 1000})
    assert sim.written == {"ess0/SetActivePowerGreaterOrEquals": 2000}  # -1000 + 3000 DC-PV
    assert sim.flows().battery >= -1000
    assert sim.flows().battery == -1000
    assert _state(hass, charge_limit) == "1000"
    assert _state(hass, mode) == "auto"
    posts = sim.posts
    for _ in range(4):
        await timeline.tick(30)
    assert sim.posts >= posts + 4  # the keepalive runs in auto while a limit is set
    assert sim.written == {"ess0/SetActivePowerGreaterOrEquals": 2000}
    assert float(_state(hass, power)) == -1000
    await _call(hass, "number", SERVICE_SET_VALUE, charge_limit, **{ATTR_VALUE: 5000})
    assert sim.written == {}  # released with null
    assert sim.flows().battery < -1000
    assert _state(hass, charge_limit) == "5000"
    posts = sim.posts
    await timeline.tick(30)
    await timeline.tick(30)
    assert sim.posts == posts  # no limit, no setpoint: no keepalive

    # Power mode again, then unload: the keepalive stops and the FEMS timeout releases.
    await _call(hass, "number", SERVICE_SET_VALUE, setpoint, **{ATTR_VALUE: -1500})
    assert sim.written == {"ess0/SetActivePowerEquals": 1500}
    assert sim.flows().battery == -1500  # charging
    assert float(_state(hass, power)) == -1500
    assert await hass.config_entries.async_unload(entry.entry_id)
    posts = sim.posts
    await timeline.tick(61)
    assert sim.posts == posts
    sim.advance()
    assert sim.written == {}


# --- Enode ---------------------------------------------------------------------------------------


async def _enode_entry(
    hass: HomeAssistant, start_app: StartApp, clock: ManualClock
) -> tuple[ConfigEntry, enode_sim.EnodeSimulator]:
    """Set up an Enode entry with both batteries of a simulator whose Actions take 30 s."""
    app = enode_sim.create_app(action_delay=30.0, clock=clock)
    sim = app[enode_sim.SIM]
    server = await start_app(app)
    url = str(server.make_url("")).rstrip("/")
    entry = await _flow(
        hass,
        "enode",
        {
            CONF_CLIENT_ID: "demo-client",
            CONF_CLIENT_SECRET: "demo-secret",
            CONF_ENVIRONMENT: "sandbox",
            SECTION_ADVANCED: {CONF_API_URL: url, CONF_TOKEN_URL: f"{url}/oauth2/token"},
        },
        {CONF_BATTERY_IDS: list(sim.batteries)},
    )
    return entry, sim


def _export_capable(sim: enode_sim.EnodeSimulator) -> tuple[str, dict[str, Any]]:
    """Return a battery that can take export focus and is not in it."""
    return next(
        (battery_id, battery)
        for battery_id, battery in sim.batteries.items()
        if battery["capabilities"]["exportFocus"]["isCapable"]
        and battery["config"]["operationMode"] != "EXPORT_FOCUS"
    )


async def test_enode_end_to_end(hass: HomeAssistant, start_app: StartApp) -> None:
    """An operation mode becomes an Action: pending, then confirmed; the select follows."""
    clock = ManualClock()
    timeline = Timeline(hass, clock)
    entry, sim = await _enode_entry(hass, start_app, clock)
    assert len(entry.runtime_data.batteries) == len(sim.batteries) == 2

    battery_id, battery = _export_capable(sim)
    soc = _entity_id(hass, "sensor", f"enode_{battery_id}_state_of_charge")
    mode = _entity_id(hass, "select", f"enode_{battery_id}_operation_mode")
    status = _entity_id(hass, "sensor", f"enode_{battery_id}_command_status")
    assert float(_state(hass, soc)) == pytest.approx(battery["chargeState"]["batteryLevel"])
    assert (
        er.async_get(hass).async_get_entity_id(
            "number", DOMAIN, f"enode_{battery_id}_power_setpoint"
        )
        is None
    )
    before = _state(hass, mode)

    await _call(hass, "select", SERVICE_SELECT_OPTION, mode, **{ATTR_OPTION: "export_focus"})
    assert _state(hass, status) == "pending"
    assert _state(hass, mode) == before  # what the battery reports, until it is confirmed
    assert battery["config"]["operationMode"] != "EXPORT_FOCUS"

    await timeline.tick(60)  # one poll; the action has been confirmed
    assert battery["config"]["operationMode"] == "EXPORT_FOCUS"
    assert _state(hass, status) == "confirmed"
    assert _state(hass, mode) == "export_focus"


async def test_enode_action_survives_a_restart(
    hass: HomeAssistant, start_app: StartApp, hass_storage: dict[str, Any]
) -> None:
    """A pending Action stays visible after Home Assistant restarts and resolves as before."""
    clock = ManualClock()
    timeline = Timeline(hass, clock)
    entry, sim = await _enode_entry(hass, start_app, clock)
    battery_id, battery = _export_capable(sim)
    mode = _entity_id(hass, "select", f"enode_{battery_id}_operation_mode")
    status = _entity_id(hass, "sensor", f"enode_{battery_id}_command_status")
    await _call(hass, "select", SERVICE_SELECT_OPTION, mode, **{ATTR_OPTION: "export_focus"})
    (action_id,) = (a for a, action in sim.actions.items() if action["targetId"] == battery_id)
    (subentry_id,) = (
        runtime.subentry_id
        for runtime in entry.runtime_data.batteries.values()
        if runtime.coordinator.battery_id == battery_id
    )
    stored = hass_storage[COMMAND_STORAGE_KEY]["data"]
    assert stored == {f"{entry.entry_id}/{subentry_id}": {"command_id": action_id}}

    # A restart: a new client, which knows nothing of the Action but what was stored.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert _state(hass, status) == "pending"
    state = hass.states.get(mode)
    assert state is not None
    assert state.attributes["requested_option"] == "export_focus"

    await timeline.tick(60)
    assert battery["config"]["operationMode"] == "EXPORT_FOCUS"
    assert _state(hass, status) == "confirmed"
    assert _state(hass, mode) == "export_focus"

    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert hass_storage[COMMAND_STORAGE_KEY]["data"] == {}


@pytest.mark.parametrize(
    ("stored", "kept"),
    [
        ({"command_id": "no-such-action"}, False),  # Enode forgot it: dropped
        ({"command_id": 7}, True),  # not an id: ignored
        ("not an object", True),
    ],
)
async def test_enode_stored_command_that_cannot_be_resumed(
    hass: HomeAssistant,
    start_app: StartApp,
    hass_storage: dict[str, Any],
    stored: object,
    kept: bool,
) -> None:
    """A stored command id that leads nowhere never stops the set-up; status stays unknown."""
    entry, sim = await _enode_entry(hass, start_app, ManualClock())
    assert await hass.config_entries.async_unload(entry.entry_id)
    keys = [f"{entry.entry_id}/{subentry_id}" for subentry_id in entry.subentries]
    hass_storage[COMMAND_STORAGE_KEY] = {
        "version": 1,
        "key": COMMAND_STORAGE_KEY,
        "data": dict.fromkeys(keys, stored),
    }
    hass.data.pop("battery_bridge_command_store")  # read the store again, as after a restart
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    for battery_id in sim.batteries:
        status = _entity_id(hass, "sensor", f"enode_{battery_id}_command_status")
        assert _state(hass, status) == "unknown"
    assert (hass_storage[COMMAND_STORAGE_KEY]["data"] != {}) is kept
