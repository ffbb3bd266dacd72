"""Finish the running demo: Assist exposure, Energy preferences and the "Batteries" dashboard.

Run by scripts/develop in the background once Home Assistant runs (entity registry entries, where
exposure lives, exist only then). Through the websocket API, logged in as the demo user, it

1. exposes every Battery Bridge entity to Assist (conversation);
2. saves the Energy preferences: per battery energy in / out, power (+ = discharge), state of
   charge and capacity; for FEMS also grid import / export and solar where those sensors exist;
3. creates the "Batteries" dashboard (sections view, one section per battery).

Idempotent: what it wrote last is kept in CONFIG/demo_setup.json. A later start exposes only new
entities and rewrites the Energy preferences and the dashboard only while they still are what it
wrote (so new entities show up), never what was changed in the UI. Prints "demo setup: done" or
"demo setup: FAILED ..." (scripts/e2e waits for these lines).

Usage: python scripts/demo_setup.py --url URL --config CONFIG_DIR
       python scripts/demo_setup.py --write-example docs/dashboard.yaml
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
import json
from pathlib import Path
import sys
import time
from typing import Any

import aiohttp
import yaml

DOMAIN = "battery_bridge"
DASHBOARD_URL = "batteries"
DASHBOARD_TITLE = "Batteries"
STATE_FILE = "demo_setup.json"
ASSISTANT = "conversation"
OVERRIDE_DURATION = {"hours": 1}
EXAMPLE_DEVICE_ID = "PUT_THE_DEVICE_ID_HERE"
EXAMPLE_POWER_W = 3000
# Status tiles of a section, in this order (those the battery has).
STATUS_KEYS = (
    "charging",
    "command_pending",
    "command_status",
    "override",
    "override_end",
    "plan",
    "plan_next_start",
)
# Entity keys (the end of the unique id, `<backend>_<battery id>_<key>`) this script uses.
KEYS = (
    "state_of_charge",
    "battery_power",
    "control_mode",
    "operation_mode",
    "power_setpoint",
    *STATUS_KEYS,
    "energy_charged",
    "energy_discharged",
    "usable_capacity",
    "grid_power",
    "pv_power",
    "grid_import_energy",
    "grid_export_energy",
    "pv_energy",
)
OVERRIDE_BUTTONS = (
    ("charge", "Charge 1 h", "mdi:battery-charging-high"),
    ("discharge", "Discharge 1 h", "mdi:battery-arrow-down"),
    ("hold", "Hold 1 h", "mdi:battery-lock"),
)
ENERGY_UNITS_KWH = {"Wh": 0.001, "kWh": 1.0, "MWh": 1000.0}


@dataclass(frozen=True)
class DemoBattery:
    """One battery as the demo set-up sees it: its device and its entities by key."""

    name: str
    device_id: str
    entities: Mapping[str, str]
    override_power_w: int | None = None
    """Power of the dashboard's charge / discharge buttons (None: the battery takes none)."""
    capacity_kwh: float | None = None

    def get(self, key: str) -> str | None:
        """Return the entity id of a key, or None."""
        return self.entities.get(key)


EXAMPLE_BATTERY = DemoBattery(
    name="FEMS",
    device_id=EXAMPLE_DEVICE_ID,
    entities={
        "state_of_charge": "sensor.fems_state_of_charge",
        "battery_power": "sensor.fems_battery_power",
        "control_mode": "select.fems_control_mode",
        "power_setpoint": "number.fems_power_setpoint",
        "override": "sensor.fems_override",
        "override_end": "sensor.fems_override_end",
        "plan": "sensor.fems_plan",
        "plan_next_start": "sensor.fems_plan_next_start",
    },
    override_power_w=EXAMPLE_POWER_W,
)


def entity_key(unique_id: str, keys: Iterable[str] = KEYS) -> str | None:
    """Return the longest key that ends ``unique_id`` after an underscore, or None."""
    found = [key for key in keys if unique_id.endswith(f"_{key}")]
    return max(found, key=len) if found else None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except TypeError, ValueError:
        return None


def override_power(setpoint_state: Mapping[str, Any] | None) -> int | None:
    """Return the button power: the smaller setpoint limit, rounded down to 100 W."""
    if not setpoint_state:
        return None
    attrs = setpoint_state.get("attributes", {})
    low, high = _number(attrs.get("min")), _number(attrs.get("max"))
    if low is None or high is None:
        return None
    power = int(min(abs(low), abs(high)) // 100 * 100)
    return power or None


def capacity_kwh(capacity_state: Mapping[str, Any] | None) -> float | None:
    """Return a usable-capacity state in kWh, or None when it is not a positive energy."""
    if not capacity_state:
        return None
    value = _number(capacity_state.get("state"))
    factor = ENERGY_UNITS_KWH.get(capacity_state.get("attributes", {}).get("unit_of_measurement"))
    if value is None or factor is None or value <= 0:
        return None
    return round(value * factor, 3)


def batteries_from_registry(
    devices: Iterable[Mapping[str, Any]],
    entities: Iterable[Mapping[str, Any]],
    states: Mapping[str, Mapping[str, Any]],
) -> list[DemoBattery]:
    """Return the batteries: devices with enabled Battery Bridge entities, sorted by name."""
    by_device: dict[str, dict[str, str]] = {}
    for entry in entities:
        if (
            entry.get("platform") != DOMAIN
            or entry.get("disabled_by")
            or not entry.get("device_id")
        ):
            continue
        if (key := entity_key(str(entry.get("unique_id", "")))) is not None:
            by_device.setdefault(entry["device_id"], {})[key] = entry["entity_id"]
    batteries = []
    for device in devices:
        keys = by_device.get(device["id"])
        if not keys:
            continue
        setpoint = keys.get("power_setpoint")
        capacity = keys.get("usable_capacity")
        batteries.append(
            DemoBattery(
                name=device.get("name_by_user") or device.get("name") or device["id"],
                device_id=device["id"],
                entities=keys,
                override_power_w=override_power(states.get(setpoint)) if setpoint else None,
                capacity_kwh=capacity_kwh(states.get(capacity)) if capacity else None,
            )
        )
    return sorted(batteries, key=lambda battery: battery.name.casefold())


def _tile(entity_id: str, columns: int = 6, **extra: Any) -> dict[str, Any]:
    # the entity's own (translated) name: the section's heading names the battery
    return {
        "type": "tile",
        "entity": entity_id,
        "name": {"type": "entity"},
        "grid_options": {"columns": columns},
        **extra,
    }


def _button(name: str, icon: str, action: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "button",
        "name": name,
        "icon": icon,
        "show_state": False,
        "tap_action": {
            "action": "perform-action",
            "perform_action": f"{DOMAIN}.{action}",
            "data": data,
        },
        "grid_options": {"columns": 3, "rows": 2},
    }


def battery_section(battery: DemoBattery) -> dict[str, Any]:
    """Return the dashboard section of one battery (only the cards of entities it has)."""
    cards: list[dict[str, Any]] = [
        {"type": "heading", "heading": battery.name, "heading_style": "title"}
    ]
    if soc := battery.get("state_of_charge"):
        cards.append(
            {
                "type": "gauge",
                "entity": soc,
                "name": "State of charge",
                "min": 0,
                "max": 100,
                "severity": {"green": 50, "yellow": 20, "red": 0},
                "grid_options": {"columns": 6},
            }
        )
    if power := battery.get("battery_power"):
        cards.append(_tile(power, name="Power (+ = discharge)", vertical=True))
    modes = [battery.get(key) for key in ("control_mode", "operation_mode")]
    cards += [_tile(mode, 12, features=[{"type": "select-options"}]) for mode in modes if mode]
    if setpoint := battery.get("power_setpoint"):
        cards.append(_tile(setpoint, 12, features=[{"type": "numeric-input", "style": "buttons"}]))
    cards += [_tile(entity_id) for key in STATUS_KEYS if (entity_id := battery.get(key))]
    if battery.get("override"):
        for mode, name, icon in OVERRIDE_BUTTONS:
            data: dict[str, Any] = {
                "device_id": battery.device_id,
                "mode": mode,
                "duration": dict(OVERRIDE_DURATION),
            }
            if battery.override_power_w and mode != "hold":
                data["power"] = battery.override_power_w
            cards.append(_button(name, icon, "start_override", data))
        cards.append(
            _button(
                "Stop override",
                "mdi:stop-circle-outline",
                "stop_override",
                {"device_id": battery.device_id},
            )
        )
    return {"type": "grid", "cards": cards}


def build_dashboard(batteries: Iterable[DemoBattery]) -> dict[str, Any]:
    """Return the Lovelace config of the Batteries dashboard: one sections view."""
    return {
        "title": DASHBOARD_TITLE,
        "views": [
            {
                "type": "sections",
                "title": DASHBOARD_TITLE,
                "path": DASHBOARD_URL,
                "icon": "mdi:home-battery",
                "max_columns": 3,
                "sections": [battery_section(battery) for battery in batteries],
            }
        ],
    }


def example_yaml() -> str:
    """Return docs/dashboard.yaml: the dashboard of one battery (the demo's FEMS)."""
    header = (
        '# Battery Bridge: a "Batteries" dashboard (what scripts/develop creates), for one battery.\n'
        "# Generated by `python scripts/demo_setup.py --write-example docs/dashboard.yaml`.\n"
        "# Paste it in a new dashboard's raw configuration editor, replace the entity ids with\n"
        "# your battery's and PUT_THE_DEVICE_ID_HERE with its device id (the last part of the\n"
        "# address of its device page, /config/devices/device/<device id>). Power: the buttons'\n"
        "# charge / discharge power in W (batteries without a power setpoint, Enode: none).\n"
        "# More batteries: repeat the section (from `- type: grid`).\n"
    )
    body = yaml.safe_dump(build_dashboard([EXAMPLE_BATTERY]), sort_keys=False, allow_unicode=True)
    return header + body


def energy_sources(batteries: Iterable[DemoBattery]) -> list[dict[str, Any]]:
    """Return the Energy preferences' sources: batteries, and grid / solar where sensors exist."""
    sources: list[dict[str, Any]] = []
    grids: list[dict[str, Any]] = []
    solars: list[dict[str, Any]] = []
    for battery in batteries:
        charged, discharged = battery.get("energy_charged"), battery.get("energy_discharged")
        if charged and discharged:
            source: dict[str, Any] = {
                "type": "battery",
                "stat_energy_from": discharged,
                "stat_energy_to": charged,
                "name": battery.name,
            }
            if power := battery.get("battery_power"):
                # + = discharge: HA's "standard" power sensor of a battery
                source["power_config"] = {"stat_rate": power}
            if soc := battery.get("state_of_charge"):
                source["stat_soc"] = soc
            if battery.capacity_kwh:
                source["capacity"] = battery.capacity_kwh
            sources.append(source)
        grid_in, grid_out = battery.get("grid_import_energy"), battery.get("grid_export_energy")
        if grid_in or grid_out:
            grid: dict[str, Any] = {
                "type": "grid",
                "stat_energy_from": grid_in,
                "stat_energy_to": grid_out,
                "stat_cost": None,
                "entity_energy_price": None,
                "number_energy_price": None,
                "stat_compensation": None,
                "entity_energy_price_export": None,
                "number_energy_price_export": None,
                "cost_adjustment_day": 0.0,
                "name": f"{battery.name} grid",
            }
            if grid_power := battery.get("grid_power"):
                # + = from the grid, as HA expects
                grid["power_config"] = {"stat_rate": grid_power}
            grids.append(grid)
        if pv_energy := battery.get("pv_energy"):
            solar: dict[str, Any] = {
                "type": "solar",
                "stat_energy_from": pv_energy,
                "config_entry_solar_forecast": None,
                "name": f"{battery.name} PV",
            }
            if pv_power := battery.get("pv_power"):
                solar["stat_rate"] = pv_power
            solars.append(solar)
    return grids + solars + sources


def as_saved(sources: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return sources as Home Assistant keeps them: stat_rate copied from a power_config."""
    saved = []
    for source in sources:
        if "stat_rate" in (config := source.get("power_config", {})):
            source = {**source, "stat_rate": config["stat_rate"]}
        saved.append(dict(source))
    return saved


def should_write(current: Any, last_written: Any, new: Any) -> bool:
    """Write ``new`` when it differs from ``current`` and ``current`` is empty or ours."""
    if current == new:
        return False
    return not current or current == last_written


# -------------------------------------------------------------------- Home Assistant side


class SetupError(Exception):
    """The set-up cannot go on."""


@dataclass
class Websocket:
    """A logged-in websocket connection with numbered commands."""

    ws: aiohttp.ClientWebSocketResponse
    next_id: int = 1

    async def call(self, kind: str, **payload: Any) -> Any:
        """Send one command and return its result; raise SetupError on an error reply."""
        msg_id = self.next_id
        self.next_id += 1
        await self.ws.send_json({"id": msg_id, "type": kind, **payload})
        while True:
            reply = await self.ws.receive_json(timeout=60)
            if reply.get("id") != msg_id or reply.get("type") != "result":
                continue
            if not reply.get("success"):
                error = reply.get("error", {})
                raise SetupError(f"{kind}: {error.get('code')}: {error.get('message')}")
            return reply.get("result")

    async def try_call(self, kind: str, **payload: Any) -> tuple[Any, str | None]:
        """Like call, but return (None, error code) on an error reply."""
        try:
            return await self.call(kind, **payload), None
        except SetupError as err:
            return None, str(err).split(": ")[1]


async def _login(session: aiohttp.ClientSession, url: str, user: str, password: str) -> dict:
    client_id = f"{url}/"
    async with session.post(
        f"{url}/auth/login_flow",
        json={
            "client_id": client_id,
            "handler": ["homeassistant", None],
            "redirect_uri": f"{client_id}?auth_callback=1",
        },
    ) as response:
        flow = await response.json()
    async with session.post(
        f"{url}/auth/login_flow/{flow['flow_id']}",
        json={"client_id": client_id, "username": user, "password": password},
    ) as response:
        result = await response.json()
    if result.get("type") != "create_entry":
        raise SetupError(f"login as {user} failed: {result.get('errors') or result}")
    async with session.post(
        f"{url}/auth/token",
        data={"grant_type": "authorization_code", "code": result["result"], "client_id": client_id},
    ) as response:
        return dict(await response.json())


async def _wait_for_entries(ws: Websocket, seconds: float) -> None:
    """Wait until every Battery Bridge entry has set up (or failed); retrying ones get 60 s."""
    deadline = time.monotonic() + seconds
    settled = {"loaded", "setup_error", "migration_error", "failed_unload"}
    retry_since: float | None = None
    while True:
        entries = await ws.call("config_entries/get", domain=DOMAIN)
        states = {entry["title"]: entry["state"] for entry in entries}
        if entries and all(state in settled for state in states.values()):
            break
        if entries and all(state in settled | {"setup_retry"} for state in states.values()):
            retry_since = retry_since or time.monotonic()
            if time.monotonic() - retry_since > 60:
                break
        if time.monotonic() > deadline:
            print(f"demo setup: entries not all set up after {seconds:.0f} s: {states}")
            break
        await asyncio.sleep(2)
    not_loaded = {title: state for title, state in states.items() if state != "loaded"}
    if not_loaded:
        print(f"demo setup: entries not loaded (left out): {not_loaded}")


async def _registry(ws: Websocket) -> tuple[list[DemoBattery], list[str], dict[str, Any]]:
    devices = await ws.call("config/device_registry/list")
    entities = [e for e in await ws.call("config/entity_registry/list") if e["platform"] == DOMAIN]
    states = {state["entity_id"]: state for state in await ws.call("get_states")}
    return (
        batteries_from_registry(devices, entities, states),
        [e["entity_id"] for e in entities],
        states,
    )


async def _wait_for_states(ws: Websocket, seconds: float) -> list[DemoBattery]:
    """Return the batteries once every state of charge has a value (or after timeout)."""
    deadline = time.monotonic() + seconds
    while True:
        batteries, _, states = await _registry(ws)
        socs = [b.get("state_of_charge") for b in batteries]
        if batteries and all(
            soc and states.get(soc, {}).get("state") not in (None, "unknown", "unavailable")
            for soc in socs
        ):
            return batteries
        if time.monotonic() > deadline:
            return batteries
        await asyncio.sleep(2)


async def _expose(ws: Websocket, entity_ids: list[str], state: dict[str, Any]) -> None:
    done = set(state.get("exposed", []))
    new = sorted(set(entity_ids) - done)
    if new:
        await ws.call(
            "homeassistant/expose_entity",
            assistants=[ASSISTANT],
            entity_ids=new,
            should_expose=True,
        )
    state["exposed"] = sorted(done | set(entity_ids))
    print(
        f"demo setup: exposed {len(new)} new Battery Bridge entities to Assist ({len(entity_ids)} in all)"
    )


async def _energy(ws: Websocket, batteries: list[DemoBattery], state: dict[str, Any]) -> None:
    prefs, error = await ws.try_call("energy/get_prefs")
    if error not in (None, "not_found"):
        raise SetupError(f"energy/get_prefs: {error}")
    current = (prefs or {}).get("energy_sources", [])
    new = as_saved(energy_sources(batteries))
    if should_write(current, state.get("energy_sources"), new):
        saved = await ws.call("energy/save_prefs", energy_sources=new)
        state["energy_sources"] = saved["energy_sources"]
        print(f"demo setup: saved the Energy preferences ({len(new)} sources)")
    elif current == new:
        state["energy_sources"] = current
    else:
        print("demo setup: the Energy preferences were changed in the UI: left as they are")


async def _dashboard(ws: Websocket, batteries: list[DemoBattery], state: dict[str, Any]) -> None:
    dashboards = await ws.call("lovelace/dashboards/list")
    if not any(d.get("url_path") == DASHBOARD_URL for d in dashboards):
        await ws.call(
            "lovelace/dashboards/create",
            url_path=DASHBOARD_URL,
            title=DASHBOARD_TITLE,
            icon="mdi:home-battery",
            show_in_sidebar=True,
            require_admin=False,
            allow_single_word=True,
        )
        print(f"demo setup: created the dashboard /{DASHBOARD_URL}")
    current, error = await ws.try_call("lovelace/config", url_path=DASHBOARD_URL)
    if error not in (None, "config_not_found"):
        raise SetupError(f"lovelace/config: {error}")
    new = build_dashboard(batteries)
    if should_write(current, state.get("dashboard"), new):
        await ws.call("lovelace/config/save", url_path=DASHBOARD_URL, config=new)
        print(f"demo setup: saved the {DASHBOARD_TITLE} dashboard ({len(batteries)} batteries)")
        state["dashboard"] = new
    elif current == new:
        state["dashboard"] = new
    else:
        print(f"demo setup: the {DASHBOARD_TITLE} dashboard was changed in the UI: left as it is")


async def async_setup_demo(args: argparse.Namespace, state: dict[str, Any]) -> None:
    """Log in, wait for the entries and do the three steps; ``state`` is updated."""
    url = args.url.rstrip("/")
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + args.timeout
        while True:
            try:
                tokens = await _login(session, url, args.username, args.password)
                break
            except (aiohttp.ClientError, ValueError, KeyError) as err:
                if time.monotonic() > deadline:
                    raise SetupError(f"Home Assistant did not answer at {url}: {err}") from err
                await asyncio.sleep(2)
        try:
            async with session.ws_connect(f"{url}/api/websocket") as raw:
                await raw.receive_json()
                await raw.send_json({"type": "auth", "access_token": tokens["access_token"]})
                if (reply := await raw.receive_json()).get("type") != "auth_ok":
                    raise SetupError(f"websocket login failed: {reply}")
                ws = Websocket(raw)
                await _wait_for_entries(ws, args.timeout)
                batteries = await _wait_for_states(ws, 60)
                _, entity_ids, _ = await _registry(ws)
                await _expose(ws, entity_ids, state)
                await _energy(ws, batteries, state)
                await _dashboard(ws, batteries, state)
        finally:
            # Log out again: one refresh token less per start.
            async with session.post(f"{url}/auth/revoke", data={"token": tokens["refresh_token"]}):
                pass


def main() -> int:
    """Run the set-up, or write the example dashboard."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8123")
    parser.add_argument(
        "--config", type=Path, default=Path(__file__).resolve().parents[1] / "config"
    )
    parser.add_argument("--username", default="demo")
    parser.add_argument("--password", default="demo")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for HA")
    parser.add_argument("--write-example", type=Path, help="write the example dashboard YAML")
    args = parser.parse_args()
    if args.write_example:
        args.write_example.write_text(example_yaml(), encoding="utf-8")
        print(f"wrote {args.write_example}")
        return 0
    state_path: Path = args.config / STATE_FILE
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.exists() else {}
    try:
        asyncio.run(async_setup_demo(args, state))
    except (SetupError, aiohttp.ClientError, TimeoutError, OSError) as err:
        print(f"demo setup: FAILED: {err}")
        return 1
    finally:
        state_path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    print("demo setup: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
