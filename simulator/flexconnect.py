"""FlexHome FlexConnect development client (FlexCloudClient) simulator.

Serves what the vendor's "First Steps" guide documents (``GET /``, ``/version``, ``/doc``,
``POST /app/v1/<request>``), with protobuf-JSON style replies (zero fields omitted, some 64-bit
numbers as strings, negative and positive scales). Where the guide says nothing, it assumes what
``custom_components/battery_bridge/api/flexconnect.py`` expects (noted at each place).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import json
from pathlib import Path
import re
import time
from typing import Any

from aiohttp import web
from dotenv import dotenv_values

from .faults import new_app

DEMO_BATTERIES = (
    "90D2A30FA3D2AD48525CD255F469C167ECF8292C",
    "5A1C0E7B33D94F2A8E6B1D0C4F7A9E2B3C5D6E71",
)
DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"

MODE_NAMES = {1: "POWER", 2: "PCC", 3: "AUTO"}
CONTROL_STATE_NAMES = {
    1: "INIT",
    2: "POWER",
    3: "PCC",
    4: "AUTO_CONTROLLED",
    5: "AUTO_UNCONTROLLED",
    6: "FAILSAFE",
}
OPERATION_NAMES = {1: "NORMAL", 2: "STANDBY", 3: "TEMPORARILY_NOT_READY", 4: "OFF", 5: "FAILURE"}
CONTROL_STATE_OF_MODE = {1: 2, 2: 3, 3: 4}  # POWER -> POWER, PCC -> PCC, AUTO -> AUTO_CONTROLLED
OPERATION_OFF = 4
OPERATION_FAILURE = 5
OPERATION_NORMAL = 1

_INT_RE = re.compile(r"[+-]?\d{1,19}")


@dataclass(slots=True)
class SimInstruction:
    """A control instruction in FlexConnect terms (setpoint + = charging)."""

    mode: int
    setpoint_w: int
    timestamp_ms: int


@dataclass(slots=True)
class SimBattery:
    """One simulated battery."""

    ski: str
    current: SimInstruction
    usable_capacity_wh: int = 10000
    stored_energy_wh: float = 5000.0
    state_of_health: float = 98.5
    state_of_operation: int = OPERATION_NORMAL
    max_power_w: int = 10000
    desired: SimInstruction | None = None
    desired_at: float | None = None  # clock time of a desired instruction not applied yet
    control_state: int | None = None  # an override (e.g. 6 FAILSAFE); None follows the mode
    last_tick: float = 0.0

    @property
    def state_of_charge(self) -> float:
        """Return the state of charge in percent of the usable capacity."""
        return self.stored_energy_wh / self.usable_capacity_wh * 100


class BadRequestError(Exception):
    """A request the simulated client refuses with HTTP 400."""

    def __init__(self, code: str, message: str) -> None:
        """Store the error code and message of the reply."""
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Canned:
    """A fixed reply: status, a JSON body (or ``raw`` bytes; neither: empty body), headers."""

    status: int = 200
    body: object = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FlexConnectSimulator:
    """The state of the simulated development client and its batteries, plus the test hooks.

    A modify request becomes the desired instruction at once and the current one after
    ``latency`` seconds (not while the battery is off or failed); controlState follows the current
    mode. The stored energy moves with the current setpoint (+ = charging, FlexConnect's sign),
    sped up by ``speedup``, evaluated lazily on each request. There is no meter, so PCC and AUTO
    mode also treat the setpoint as battery power.

    Test hooks: ``set_operation_state``, ``enum_names`` (enums as names: the stateOfOperation
    names NORMAL, STANDBY, TEMPORARILY_NOT_READY, OFF, FAILURE are assumed), ``omit`` (names of
    messages to leave out), ``reply_req_id`` (echo another reqId), ``canned`` (a fixed reply for a
    request name or ``"version"``), ``received`` (request bodies), ``empty_modify_reply`` (answer
    an accepted modify request with an empty 200 body, which the guide calls success, instead of
    the header-only object).
    """

    latency: float = 5.0
    version: str = "1.4.2"
    speedup: float = 1.0
    clock: Callable[[], float] = time.monotonic
    batteries: dict[str, SimBattery] = field(default_factory=dict)
    enum_names: bool = False
    omit: set[str] = field(default_factory=set)
    reply_req_id: int | str | None = None
    canned: dict[str, Canned] = field(default_factory=dict)
    received: list[tuple[str, Any]] = field(default_factory=list)
    empty_modify_reply: bool = False
    _wall_start_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    _clock_start: float = 0.0

    def __post_init__(self) -> None:
        """Anchor the wall-clock timestamps to the simulator's clock."""
        self._clock_start = self.clock()

    def wall_ms(self, at: float) -> int:
        """Return the epoch milliseconds of the simulator clock time ``at``."""
        return self._wall_start_ms + round((at - self._clock_start) * 1000)

    def add_battery(self, ski: str, **kwargs: Any) -> SimBattery:
        """Add a battery (AUTO mode, setpoint 0, desired = current) and return it."""
        now = self.clock()
        current = SimInstruction(3, 0, self.wall_ms(now))
        battery = SimBattery(ski=ski, current=current, last_tick=now, **kwargs)
        battery.desired = SimInstruction(3, 0, current.timestamp_ms)
        self.batteries[ski] = battery
        return battery

    def advance(self, battery: SimBattery) -> None:
        """Bring a battery up to the clock: drift, and apply a due desired instruction."""
        now = self.clock()
        if battery.desired is not None and battery.desired_at is not None:
            due = battery.desired_at + self.latency
            operational = battery.state_of_operation not in (OPERATION_OFF, OPERATION_FAILURE)
            if now >= due and operational:
                applied_at = max(due, battery.last_tick)
                self._drift(battery, applied_at)
                battery.current = SimInstruction(
                    battery.desired.mode, battery.desired.setpoint_w, self.wall_ms(applied_at)
                )
                battery.desired_at = None
        self._drift(battery, now)

    def _drift(self, battery: SimBattery, until: float) -> None:
        seconds = until - battery.last_tick
        if seconds > 0 and battery.state_of_operation == OPERATION_NORMAL:
            power = max(-battery.max_power_w, min(battery.max_power_w, battery.current.setpoint_w))
            energy = battery.stored_energy_wh + power * seconds * self.speedup / 3600
            battery.stored_energy_wh = max(0.0, min(float(battery.usable_capacity_wh), energy))
        battery.last_tick = max(battery.last_tick, until)

    def set_operation_state(self, ski: str, value: int) -> None:
        """Set stateOfOperation (1 normal .. 5 failure) of a battery, from now on."""
        battery = self.batteries[ski]
        self.advance(battery)
        battery.state_of_operation = value

    def modify(self, battery: SimBattery, mode: int | None, setpoint_w: int | None) -> None:
        """Store a new desired instruction; it becomes current after the latency."""
        self.advance(battery)
        base = battery.desired or battery.current
        now = self.clock()
        battery.desired = SimInstruction(
            base.mode if mode is None else mode,
            base.setpoint_w if setpoint_w is None else setpoint_w,
            self.wall_ms(now),
        )
        battery.desired_at = now

    # ---- serialisation ---------------------------------------------------------------------------

    def enum(self, value: int, names: Mapping[int, str]) -> int | str:
        """Return an enum as a number, or as its name when ``enum_names`` is set."""
        return names.get(value, value) if self.enum_names else value

    def state_message(self, battery: SimBattery) -> dict[str, Any]:
        """Return the ``state`` message of a BatteryStateRequest reply."""
        capacity = battery.usable_capacity_wh
        capacity_scale = next(s for s in (3, 2, 1, 0) if capacity % 10**s == 0)
        return {
            "stateOfCharge": scaled(battery.state_of_charge, -1),
            "stateOfHealth": scaled(battery.state_of_health, -1),
            "stateOfEnergy": scaled(battery.stored_energy_wh, 0, as_string=True),
            "usableCapacity": scaled(capacity, capacity_scale),
            "stateOfOperation": self.enum(battery.state_of_operation, OPERATION_NAMES),
        }

    def control_reply(self, battery: SimBattery) -> dict[str, Any]:
        """Return the instructions of a BatteryControlRequest reply (without the header)."""
        reply: dict[str, Any] = {}
        current = battery.current
        control_state = battery.control_state or CONTROL_STATE_OF_MODE[current.mode]
        if "currentControlInstructions" not in self.omit:
            reply["currentControlInstructions"] = {
                "controlState": self.enum(control_state, CONTROL_STATE_NAMES),
                "controlMode": self.enum(current.mode, MODE_NAMES),
                "setpointPower": scaled(current.setpoint_w, 0),
                "timestamp": str(current.timestamp_ms),
            }
        desired = battery.desired
        if desired is not None and "desiredControlInstructions" not in self.omit:
            reply["desiredControlInstructions"] = {
                "controlMode": self.enum(desired.mode, MODE_NAMES),
                "setpointPower": scaled(desired.setpoint_w, 0),
                "timestamp": desired.timestamp_ms,
            }
        return reply


def scaled(value: float, scale: int, *, as_string: bool = False) -> dict[str, Any]:
    """Return ``value`` as a protobuf-JSON scaled number: zero members are omitted."""
    number = round(value / 10**scale)
    out: dict[str, Any] = {}
    if number:
        out["number"] = str(number) if as_string else number
    if scale:
        out["scale"] = scale
    return out


def _int(raw: object, what: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and _INT_RE.fullmatch(raw.strip()):
        return int(raw.strip())
    raise BadRequestError("INVALID_ARGUMENT", f"{what} must be an integer")


def _scaled_value(raw: object) -> float:
    if not isinstance(raw, dict):
        raise BadRequestError("INVALID_ARGUMENT", "setpointPower must be a scaled number")
    number = _int(raw.get("number", 0), "setpointPower.number")
    scale = _int(raw.get("scale", 0), "setpointPower.scale")
    if not -20 <= scale <= 20:
        raise BadRequestError("INVALID_ARGUMENT", "setpointPower.scale out of range")
    return number * 10.0**scale


def _mode(raw: object) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, str) and not _INT_RE.fullmatch(raw.strip()):
        name = raw.strip().upper().removeprefix("CONTROL_MODE_")
        by_name = {n: k for k, n in MODE_NAMES.items()}
        if name not in by_name:
            raise BadRequestError("INVALID_ARGUMENT", "unknown controlMode")
        return by_name[name]
    mode = _int(raw, "controlMode")
    if mode == 0:
        return None  # proto3: unset
    if mode not in MODE_NAMES:
        raise BadRequestError("INVALID_ARGUMENT", "unknown controlMode")
    return mode


FLEXCONNECT = web.AppKey("flexconnect", FlexConnectSimulator)


def _error(status: int, req_id: object, code: str, message: str) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if req_id is not None:
        body = {"header": {"reqId": req_id}, **body}
    return web.json_response(body, status=status)


def _canned(canned: Canned) -> web.Response:
    if canned.raw is None and canned.body is not None:
        return web.json_response(canned.body, status=canned.status, headers=canned.headers)
    return web.Response(
        status=canned.status,
        body=canned.raw or b"",
        content_type=canned.content_type,
        headers=canned.headers,
    )


API_LIST = [
    {
        "id": 1,
        "name": "app",
        "code": "a",
        "version": "1",
        "description": "The application API in version 1.",
        "permissions": [{"permissionTypeId": 1, "permissionCodeId": 1}],
    }
]


def _header_req_id(body: object) -> tuple[dict[str, Any], object]:
    """Return the body and its header.reqId; raise BadRequestError for a malformed header."""
    if not isinstance(body, dict) or not isinstance(body.get("header"), dict):
        raise BadRequestError("INVALID_ARGUMENT", "the body needs a header object")
    header = body["header"]
    req_id = header.get("reqId")
    _int(req_id, "header.reqId")
    if "timeoutMs" in header and _int(header["timeoutMs"], "header.timeoutMs") < 0:
        raise BadRequestError("INVALID_ARGUMENT", "header.timeoutMs must not be negative")
    return body, req_id


def _device_ski(body: dict[str, Any]) -> str:
    """Return deviceId.stringValue; raise BadRequestError unless it is an SKI device id."""
    device = body.get("deviceId")
    if (
        not isinstance(device, dict)
        or not isinstance(device.get("type"), dict)
        or device["type"].get("id") != 2
        or not isinstance(device.get("stringValue"), str)
    ):
        raise BadRequestError("INVALID_ARGUMENT", "deviceId must be an SKI (type id 2)")
    ski: str = device["stringValue"]
    return ski


def _modify(sim: FlexConnectSimulator, battery: SimBattery, body: dict[str, Any]) -> None:
    """Apply a BatteryControlModifyRequest body; raise BadRequestError for invalid values.

    A malformed request is a 400 ``INVALID_ARGUMENT``, a setpoint beyond the battery's power a 400
    ``OUT_OF_RANGE`` (assumed).
    """
    mode = _mode(body.get("controlMode"))
    setpoint: int | None = None
    if body.get("setpointPower") is not None:
        value = _scaled_value(body["setpointPower"])
        if abs(value) > battery.max_power_w:
            raise BadRequestError("OUT_OF_RANGE", "setpointPower exceeds the battery's power")
        setpoint = round(value)
    sim.modify(battery, mode, setpoint)


def _handle(sim: FlexConnectSimulator, name: str, body: object) -> web.Response:
    """Answer one /app/v1 request; raise BadRequestError for a malformed one.

    Assumed, as the client expects (not documented publicly): an unknown battery id gets HTTP 404
    with ``{"header": {"reqId": n}, "error": {"code": "NOT_FOUND", "message": "..."}}``; ids are
    matched exactly (the real ids are upper-case hexadecimal SKIs).
    """
    request, req_id = _header_req_id(body)
    if name in sim.canned:
        return _canned(sim.canned[name])
    echo = req_id if sim.reply_req_id is None else sim.reply_req_id
    reply: dict[str, Any] = {"header": {"reqId": echo}}
    if name == "ApiListRequest":
        reply["apis"] = API_LIST
        return web.json_response(reply)
    battery = sim.batteries.get(_device_ski(request))
    if battery is None:
        return _error(404, req_id, "NOT_FOUND", "device not found")
    if name == "BatteryStateRequest":
        sim.advance(battery)
        if "state" not in sim.omit:
            reply["state"] = sim.state_message(battery)
    elif name == "BatteryControlRequest":
        sim.advance(battery)
        reply.update(sim.control_reply(battery))
    else:  # BatteryControlModifyRequest
        _modify(sim, battery, request)
        if sim.empty_modify_reply:
            return web.Response(status=200, body=b"", content_type="application/json")
    return web.json_response(reply)


async def _app_request(request: web.Request) -> web.Response:
    sim = request.app[FLEXCONNECT]
    name = request.match_info["name"]
    try:
        body: object = json.loads(await request.text())
    except ValueError:
        body = None
    sim.received.append((name, body))
    try:
        return _handle(sim, name, body)
    except BadRequestError as err:
        req_id = body.get("header", {}).get("reqId") if isinstance(body, dict) else None
        return _error(400, req_id if isinstance(req_id, int | str) else None, err.code, err.message)


async def _version(request: web.Request) -> web.Response:
    """``GET /version``: ``{"name": "FlexCloudClient", "version": ...}`` (the shape is assumed)."""
    sim = request.app[FLEXCONNECT]
    if "version" in sim.canned:
        return _canned(sim.canned["version"])
    return web.json_response({"name": "FlexCloudClient", "version": sim.version})


ENDPOINTS = [
    {"uri": "/", "description": "The directory list", "method": "GET"},
    {"uri": "/version", "description": "The version of the development client", "method": "GET"},
    {"uri": "/doc", "description": "Machine-readable JSON documentation", "method": "GET"},
    {"uri": "/app/v1/*", "description": "Requests", "method": "POST"},
]
REQUESTS = {
    "ApiListRequest": "The API list request.",
    "BatteryStateRequest": "Obtain the battery state.",
    "BatteryControlRequest": "Obtain the battery control state and mode.",
    "BatteryControlModifyRequest": "Change the control mode and/or the setpoint power.",
}


async def _directory(request: web.Request) -> web.Response:
    return web.json_response({"name": "FlexCloudClient (simulated)", "uris": ENDPOINTS})


async def _doc(request: web.Request) -> web.Response:
    sim = request.app[FLEXCONNECT]
    paths = {
        f"/app/v1/{name}": {"post": {"operationId": name, "summary": summary}}
        for name, summary in REQUESTS.items()
    }
    return web.json_response(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "FlexHome.Energy FlexConnect JSON API (simulated)",
                "version": sim.version,
            },
            "paths": paths,
        }
    )


def create_app(
    *,
    batteries: list[str] | None = None,
    latency: float = 5.0,
    version: str = "1.4.2",
    speedup: float = 1.0,
    clock: Callable[[], float] | None = None,
    empty_modify_reply: bool = False,
) -> web.Application:
    """Return the simulated development client.

    Args:
        batteries: Battery ids (SKIs); two demo batteries when None.
        latency: Seconds until a desired instruction becomes the current one.
        version: What ``GET /version`` reports.
        speedup: Simulated seconds per real second for the energy drift.
        clock: A monotonic clock in seconds (tests pass a manual one).
        empty_modify_reply: Answer an accepted modify request with an empty body.

    Returns:
        The aiohttp application; its state and test hooks are ``app[FLEXCONNECT]``.
    """
    app = new_app()
    sim = FlexConnectSimulator(
        latency=latency,
        version=version,
        speedup=speedup,
        clock=clock or time.monotonic,
        empty_modify_reply=empty_modify_reply,
    )
    ids = list(DEMO_BATTERIES) if batteries is None else batteries
    for index, ski in enumerate(ids):
        battery = sim.add_battery(ski, stored_energy_wh=5000.0 - 1550.0 * (index % 2))
        if index % 2:
            battery.desired = None  # never commanded: no desired instruction yet
    app[FLEXCONNECT] = sim
    app.router.add_get("/", _directory)
    app.router.add_get("/version", _version)
    app.router.add_get("/doc", _doc)
    app.router.add_post(
        "/app/v1/{name:ApiListRequest|BatteryStateRequest|BatteryControlRequest|BatteryControlModifyRequest}",
        _app_request,
    )
    return app


def env_settings(path: Path | None = None) -> dict[str, str]:
    """Return PORT and HOSTNAME from a ``.env`` file (default: ``./.env``), like the real client.

    Only the file is read, never the process environment: shells and containers often export
    ``HOSTNAME`` with the machine's name.

    Args:
        path: The file to read.

    Returns:
        The keys that the file sets to a non-empty value.
    """
    values = dotenv_values(path if path is not None else Path.cwd() / ".env")
    return {key: value for key in ("PORT", "HOSTNAME") if (value := values.get(key))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options; --port and --host default to PORT / HOSTNAME of ./.env.

    Without ``HOSTNAME`` in ``.env`` the ``--host`` default is left to the top-level option of
    ``python -m simulator`` (127.0.0.1): a sub-command default would override it.

    Args:
        parser: The (sub-)parser of ``python -m simulator flexconnect``.
    """
    env = env_settings()
    parser.add_argument(
        "--port",
        type=int,
        default=env.get("PORT", str(DEFAULT_PORT)),
        help="port to listen on (default: PORT of ./.env, else 8080)",
    )
    parser.add_argument(
        "--host",
        default=env.get("HOSTNAME", argparse.SUPPRESS),
        help="address to listen on (default: HOSTNAME of ./.env, else 127.0.0.1)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=5.0,
        help="seconds until a command is applied (the real one takes up to a minute)",
    )
    parser.add_argument(
        "--speedup", type=float, default=1.0, help="simulated seconds per second for the drift"
    )
    parser.add_argument(
        "--empty-modify-reply",
        action="store_true",
        help="answer an accepted BatteryControlModifyRequest with an empty body",
    )
    parser.add_argument(
        "--battery",
        action="append",
        default=None,
        help="a battery id (SKI, 40 hex characters); repeat for more; default: two demo ids",
    )


def app_from_args(args: argparse.Namespace) -> web.Application:
    """Return the application for parsed command-line arguments.

    Args:
        args: The parsed arguments (see ``add_arguments``).

    Returns:
        The simulator application.
    """
    return create_app(
        batteries=args.battery,
        latency=args.latency,
        speedup=args.speedup,
        empty_modify_reply=args.empty_modify_reply,
    )
