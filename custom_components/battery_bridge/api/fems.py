"""FENECON FEMS / OpenEMS Edge over its REST/JSON API (``Controller.Api.Rest``).

One regex GET of ``READ_CHANNELS`` per poll; commands are POSTs to the ESS's write-only channels,
which the FEMS drops after its API timeout (``_ApiTimer``). Error replies are classified by what
they say, for both firmware families (``_FemsRest.error``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
import html
import logging
import math
import re
import time
from typing import ClassVar, Final

import aiohttp
from yarl import URL

from ._http import decode_json, parse_retry_after, scrub, send
from ._json import loads_strict
from .backend import (
    SETPOINT_OVERRIDES,
    SETTING_CAN_WRITE,
    SETTING_HOST,
    SETTING_PASSWORD,
    SETTING_PORT,
    BackendSpec,
    ConfigField,
    ControlPolicy,
    FieldType,
    Settings,
)
from .errors import (
    AuthError,
    BackendError,
    CannotConnectError,
    CommandRejectedError,
    NotSupportedError,
    ProtocolError,
    RateLimitedError,
    UnknownBatteryError,
)
from .models import (
    BackendKind,
    BatteryInfo,
    BatterySnapshot,
    BatteryState,
    Capabilities,
    ControlCommand,
    ControlInstruction,
    ControlMode,
    ControlStatus,
    Feature,
    GridMode,
    SystemState,
)

_LOGGER = logging.getLogger(__name__)

# Indirections the tests replace to control time.
_monotonic = time.monotonic


def _utcnow() -> datetime:
    return datetime.now(UTC)


SUM: Final = "_sum"
META: Final = "_meta"
BATTERY: Final = "battery0"
CTRL_API_REST: Final = "ctrlApiRest0"
ESS: Final = "{ess}"  # stands for the configured ESS component id

DEFAULT_API_TIMEOUT_S: Final = 60.0  # FEMS default when ctrlApiRest0/_PropertyApiTimeout is unknown
# What every FEMS reports; with write access it takes a setpoint and limits too (``_capabilities``).
_READ_CAPABILITIES: Final = Capabilities(
    features=frozenset(
        {
            Feature.MEASURES_POWER,
            Feature.STATE_OF_HEALTH,
            Feature.SYSTEM_STATE,
            Feature.ALLOWED_POWER,
            Feature.ENERGY_COUNTERS,
            Feature.SITE_METERS,
        }
    )
)


class ChannelKind(Enum):
    """How a channel's value is read (decides the accepted units and the Python type)."""

    POWER = "power"  # W
    ENERGY = "energy"  # Wh (Wh_Σ for cumulated counters)
    PERCENT = "percent"  # %
    LEVEL = "level"  # an integer enum (State, GridMode)
    TEXT = "text"  # a string
    SECONDS = "seconds"  # a configuration property in seconds


_UNIT_FACTORS: Final[dict[ChannelKind, dict[str, float]]] = {
    ChannelKind.POWER: {"": 1.0, "W": 1.0, "kW": 1000.0},
    ChannelKind.ENERGY: {"": 1.0, "Wh": 1.0, "Wh_Σ": 1.0, "kWh": 1000.0, "kWh_Σ": 1000.0},
    ChannelKind.PERCENT: {"": 1.0, "%": 1.0},
    ChannelKind.SECONDS: {"": 1.0, "s": 1.0, "sec": 1.0},
}


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """One channel of the FEMS: a component id (or ``ESS``) and a channel id."""

    component: str
    channel: str
    kind: ChannelKind

    def address(self, ess_id: str) -> str:
        """Return ``component/channel`` with ``ESS`` replaced by the configured ESS id."""
        component = ess_id if self.component == ESS else self.component
        return f"{component}/{self.channel}"


# Channels read by every poll.
SOC = ChannelSpec(SUM, "EssSoc", ChannelKind.PERCENT)
BATTERY_POWER = ChannelSpec(SUM, "EssDischargePower", ChannelKind.POWER)  # real battery power
CAPACITY = ChannelSpec(SUM, "EssCapacity", ChannelKind.ENERGY)
GRID_POWER = ChannelSpec(SUM, "GridActivePower", ChannelKind.POWER)
PV_POWER = ChannelSpec(SUM, "ProductionActivePower", ChannelKind.POWER)
DC_PV_POWER = ChannelSpec(SUM, "ProductionDcActualPower", ChannelKind.POWER)
HOUSE_POWER = ChannelSpec(SUM, "ConsumptionActivePower", ChannelKind.POWER)
DC_CHARGE_ENERGY = ChannelSpec(SUM, "EssDcChargeEnergy", ChannelKind.ENERGY)
DC_DISCHARGE_ENERGY = ChannelSpec(SUM, "EssDcDischargeEnergy", ChannelKind.ENERGY)
GRID_BUY_ENERGY = ChannelSpec(SUM, "GridBuyActiveEnergy", ChannelKind.ENERGY)
GRID_SELL_ENERGY = ChannelSpec(SUM, "GridSellActiveEnergy", ChannelKind.ENERGY)
PRODUCTION_ENERGY = ChannelSpec(SUM, "ProductionActiveEnergy", ChannelKind.ENERGY)
SUM_STATE = ChannelSpec(SUM, "State", ChannelKind.LEVEL)
GRID_MODE = ChannelSpec(SUM, "GridMode", ChannelKind.LEVEL)
ESS_STATE = ChannelSpec(ESS, "State", ChannelKind.LEVEL)  # tells whether the ESS exists
ALLOWED_CHARGE = ChannelSpec(ESS, "AllowedChargePower", ChannelKind.POWER)  # <= 0 on the wire
ALLOWED_DISCHARGE = ChannelSpec(ESS, "AllowedDischargePower", ChannelKind.POWER)
APPLIED_SETPOINT = ChannelSpec(ESS, "DebugSetActivePower", ChannelKind.POWER)
SOH = ChannelSpec(BATTERY, "Soh", ChannelKind.PERCENT)
VERSION = ChannelSpec(META, "Version", ChannelKind.TEXT)
API_TIMEOUT = ChannelSpec(CTRL_API_REST, "_PropertyApiTimeout", ChannelKind.SECONDS)

READ_CHANNELS: Final[tuple[ChannelSpec, ...]] = (
    SOC,
    BATTERY_POWER,
    CAPACITY,
    GRID_POWER,
    PV_POWER,
    DC_PV_POWER,
    HOUSE_POWER,
    DC_CHARGE_ENERGY,
    DC_DISCHARGE_ENERGY,
    GRID_BUY_ENERGY,
    GRID_SELL_ENERGY,
    PRODUCTION_ENERGY,
    SUM_STATE,
    GRID_MODE,
    ESS_STATE,
    ALLOWED_CHARGE,
    ALLOWED_DISCHARGE,
    APPLIED_SETPOINT,
    SOH,
    VERSION,
    API_TIMEOUT,
)

# Write-only channels of the ESS (+ = discharge, - = charge). LessOrEquals / GreaterOrEquals carry
# the discharge / charge limits.
SET_ACTIVE_POWER_EQUALS = ChannelSpec(ESS, "SetActivePowerEquals", ChannelKind.POWER)
SET_ACTIVE_POWER_LESS_OR_EQUALS = ChannelSpec(ESS, "SetActivePowerLessOrEquals", ChannelKind.POWER)
SET_ACTIVE_POWER_GREATER_OR_EQUALS = ChannelSpec(
    ESS, "SetActivePowerGreaterOrEquals", ChannelKind.POWER
)
SET_REACTIVE_POWER_EQUALS = ChannelSpec(ESS, "SetReactivePowerEquals", ChannelKind.POWER)

_SYSTEM_STATES: Final = {
    0: SystemState.OK,
    1: SystemState.INFO,
    2: SystemState.WARNING,
    3: SystemState.FAULT,
}
_GRID_MODES: Final = {
    -1: GridMode.UNDEFINED,
    1: GridMode.ON_GRID,
    2: GridMode.OFF_GRID,
    3: GridMode.OFF_GRID_GENSET,
}


@dataclass(frozen=True, slots=True)
class FemsChannel:
    """One channel object of a GET reply, as the FEMS sent it.

    ``value`` is whatever JSON the FEMS sent (``None`` for ``null`` and for write-only channels,
    which have no ``value`` key; then ``has_value`` is False). It is type-checked when read.
    """

    address: str
    value: object = None
    unit: str = ""
    type: str | None = None
    access_mode: str | None = None
    has_value: bool = True


def _optional_str(item: dict[str, object], key: str) -> str | None:
    value = item.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ProtocolError(f"FEMS channel field {key!r} is not a string")


def parse_channels(data: object) -> dict[str, FemsChannel]:
    """Index the reply of a channel GET (one object or an array of them) by address.

    Raises:
        ProtocolError: the reply is not a channel object or a list of them.
    """
    if isinstance(data, dict):
        items: list[object] = [data]
    elif isinstance(data, list):
        items = data
    else:
        raise ProtocolError("FEMS channel reply is neither an object nor an array")
    channels: dict[str, FemsChannel] = {}
    for item in items:
        if not isinstance(item, dict):
            raise ProtocolError("FEMS channel reply contains a non-object")
        address = item.get("address")
        if not isinstance(address, str) or "/" not in address:
            raise ProtocolError("FEMS channel object without a valid address")
        channels[address] = FemsChannel(
            address=address,
            value=item.get("value"),
            unit=_optional_str(item, "unit") or "",
            type=_optional_str(item, "type"),
            access_mode=_optional_str(item, "accessMode"),
            has_value="value" in item,
        )
    return channels


def _number(channel: FemsChannel | None, kind: ChannelKind) -> float | None:
    """Return a numeric channel value in the base unit of ``kind``; None when unavailable."""
    if channel is None or channel.value is None:
        return None
    value = channel.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"FEMS channel {channel.address} has a non-numeric value")
    factor = _UNIT_FACTORS[kind].get(channel.unit)
    if factor is None:
        raise ProtocolError(
            f"FEMS channel {channel.address} has the unexpected unit {channel.unit!r}"
        )
    try:
        number = float(value) * factor
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ProtocolError(f"FEMS channel {channel.address} has an out-of-range value")
    return number


def _level(channel: FemsChannel | None) -> int | None:
    """Return an integer enum value; None when unavailable."""
    if channel is None or channel.value is None:
        return None
    value = channel.value
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ProtocolError(f"FEMS channel {channel.address} is not an integer")
    return int(value)


def _text(channel: FemsChannel | None) -> str | None:
    if channel is None or channel.value is None:
        return None
    if not isinstance(channel.value, str):
        raise ProtocolError(f"FEMS channel {channel.address} is not a string")
    return channel.value


@dataclass(frozen=True, slots=True)
class FemsReadings:
    """What one poll tells about the FEMS, already normalised.

    ``state`` lacks ``reachable`` and ``last_updated`` (the backend adds them).
    ``api_timeout_s`` is None when the FEMS keeps written values forever (API timeout 0).
    """

    state: BatteryState
    ess_present: bool
    sw_version: str | None = None
    dc_pv_w: float | None = None
    applied_setpoint_w: float | None = None
    api_timeout_s: float | None = DEFAULT_API_TIMEOUT_S


def read_channels(channels: dict[str, FemsChannel], ess_id: str) -> FemsReadings:
    """Turn indexed channels into normalised readings.

    Raises:
        ProtocolError: a channel we use has a value of the wrong type or unit.
    """

    def get(spec: ChannelSpec) -> FemsChannel | None:
        return channels.get(spec.address(ess_id))

    def number(spec: ChannelSpec) -> float | None:
        return _number(get(spec), spec.kind)

    soc = number(SOC)
    capacity = number(CAPACITY)
    pv = number(PV_POWER)
    house = number(HOUSE_POWER)
    allowed_charge = number(ALLOWED_CHARGE)
    allowed_discharge = number(ALLOWED_DISCHARGE)
    state_level = _level(get(SUM_STATE))
    grid_level = _level(get(GRID_MODE))
    timeout = number(API_TIMEOUT)
    state = BatteryState(
        state_of_charge=soc,
        state_of_health=number(SOH),
        stored_energy_wh=soc / 100 * capacity if soc is not None and capacity is not None else None,
        usable_capacity_wh=capacity,
        power_w=number(BATTERY_POWER),
        system_state=_SYSTEM_STATES.get(state_level) if state_level is not None else None,
        grid_mode=_GRID_MODES.get(grid_level) if grid_level is not None else None,
        # AllowedChargePower is <= 0 on the wire (a positive value forces a discharge).
        max_charge_power_w=max(0.0, -allowed_charge) if allowed_charge is not None else None,
        max_discharge_power_w=max(0.0, allowed_discharge)
        if allowed_discharge is not None
        else None,
        grid_power_w=number(GRID_POWER),
        # "always positive" says the doc, but real systems report e.g. -9 W at night.
        pv_power_w=max(0.0, pv) if pv is not None else None,
        house_power_w=max(0.0, house) if house is not None else None,
        energy_charged_wh=number(DC_CHARGE_ENERGY),
        energy_discharged_wh=number(DC_DISCHARGE_ENERGY),
        grid_import_energy_wh=number(GRID_BUY_ENERGY),
        grid_export_energy_wh=number(GRID_SELL_ENERGY),
        pv_energy_wh=number(PRODUCTION_ENERGY),
    )
    if timeout is None:
        api_timeout: float | None = DEFAULT_API_TIMEOUT_S
    elif timeout <= 0:
        api_timeout = None  # 0 = written values persist until overwritten or released
    else:
        api_timeout = timeout
    dc_pv = number(DC_PV_POWER)
    return FemsReadings(
        state=state,
        ess_present=ESS_STATE.address(ess_id) in channels,
        sw_version=_text(get(VERSION)),
        dc_pv_w=max(0.0, dc_pv) if dc_pv is not None else None,
        applied_setpoint_w=number(APPLIED_SETPOINT),
        api_timeout_s=api_timeout,
    )


def channel_regexes(specs: tuple[ChannelSpec, ...], ess_id: str) -> tuple[str, str]:
    """Return the component and channel regexes (Java syntax) that match every spec."""
    components: dict[str, None] = {}
    names: dict[str, None] = {}
    for spec in specs:
        component, _, name = spec.address(ess_id).partition("/")
        components[re.escape(component)] = None
        names[re.escape(name)] = None
    return f"({'|'.join(components)})", f"({'|'.join(names)})"


# What the OpenEMS exceptions say (both families), lower case.
_AUTH_FAILED: Final = "authentication failed"
_ROLE_DENIED: Final = "is denied for user with role"
_READ_ONLY_MODE: Final = "read-only mode"
_NOT_WRITE_CHANNEL: Final = "is not a write channel"
_NO_COMPONENT: Final = "unable to find openems component"
_NO_CHANNEL: Final = "is not defined for id"
_OPENEMS_EXCEPTION: Final = "io.openems."
# The rows of a Jetty error page that carry the exception (HTML: "MESSAGE:</th><td>...", text:
# "MESSAGE: ..."); Jetty 11 puts it in CAUSED BY and only "Server Error" in MESSAGE.
_PAGE_ROWS: Final = re.compile(
    r"(?:<th>)?(CAUSED BY|MESSAGE):?(?:</th><td>|\s)([^<\n]*)", re.IGNORECASE
)
_TAGS: Final = re.compile(r"<[^>]*>")


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """What an error reply says: a JSON-RPC error code, the exception message and all its text.

    ``message`` is the JSON-RPC message or the exception of a Jetty error page ("" if none);
    ``text`` is every text of the body (tags removed, entities decoded), for the classification.
    """

    code: int | None
    message: str
    text: str


def parse_error_reply(body: bytes) -> ErrorReply:
    """Read a JSON-RPC error (<= 2025.3) or a Jetty error page (HTML, JSON or plain text)."""
    try:
        data = loads_strict(body)
    except ValueError, RecursionError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):  # JSON-RPC: {"error": {"code": C, "message": M, ...}}
            code = error.get("code")
            message = error.get("message")
            text = message if isinstance(message, str) else ""
            number = code if isinstance(code, int) and not isinstance(code, bool) else None
            return ErrorReply(number, text, text)
        # Jetty's JSON form: {"url": ..., "status": "500", "message": M}; Jetty 11 adds "cause0".
        texts = {
            key: html.unescape(value)
            for key, value in data.items()
            if isinstance(value, str) and (key == "message" or key.startswith("cause"))
        }
        message = texts.get("cause0") or texts.get("message") or ""
        return ErrorReply(None, message, " ".join(texts.values()))
    if data is not None:
        return ErrorReply(None, "", "")  # JSON of another shape
    page = body.decode("utf-8", "replace")
    rows = {name.upper(): html.unescape(value).strip() for name, value in _PAGE_ROWS.findall(page)}
    message = rows.get("CAUSED BY") or rows.get("MESSAGE") or ""
    text = " ".join(html.unescape(_TAGS.sub(" ", page)).split())
    return ErrorReply(None, message, text)


class _FemsRest:
    """The REST/JSON transport of one FEMS, and what its error replies mean.

    HTTP Basic auth is sent up front on every request (the FEMS never sends a challenge; it ignores
    the user name). Requests are serialised with a lock, so at most one kept-alive connection of
    the injected session is used (the FEMS accepts few connections and throttles new ones).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: URL,
        username: str,
        password: str,
        request_timeout: float,
    ) -> None:
        self._session = session
        self._password = password
        # JSON also for the Jetty 12 error pages (they follow the Accept header; HTML otherwise).
        self._headers = {
            "Authorization": aiohttp.encode_basic_auth(username.replace(":", ""), password),
            "Accept": "application/json",
        }
        self.base = base.with_user(None).with_path(base.path.rstrip("/"))
        self._request_timeout = request_timeout
        self._lock = asyncio.Lock()

    async def async_request(
        self, method: str, component: str, channel: str, payload: dict[str, object] | None = None
    ) -> object:
        """Send one request and return the decoded JSON of a 200 reply."""
        url = self.base / "channel" / component / channel
        where = f"{method} {url.path}"
        async with self._lock:
            reply = await send(
                self._session,
                method,
                url,
                f"FEMS {where}",
                request_timeout=self._request_timeout,
                headers=self._headers,
                json=payload,
            )
        if reply.status != 200:
            raise self.error(reply.status, reply.body, method, where, reply.retry_after)
        return decode_json(reply, f"FEMS {where}")

    def _scrub(self, text: str) -> str:
        return scrub(text, (self._password,))

    def error(
        self, status: int, body: bytes, method: str, where: str, retry_after: str | None = None
    ) -> BackendError:
        """Map a non-200 reply to the error taxonomy, by what it says (both firmware families).

        <= 2025.3 answers with a JSON-RPC error (HTTP 400, 401 for a wrong password); >= 2025.4
        (Jetty 12) with a 500 error page whose message names the OpenEMS exception (HTML, JSON or
        plain text). A 404 on a GET means no channel matched: not a FEMS REST API here, or the
        REST/JSON app is missing. 502/503/504: the FEMS web server cannot reach the API.
        """
        reply = parse_error_reply(body)
        code, text = reply.code, reply.text.lower()
        said = f": {self._scrub(reply.message)}" if reply.message else ""
        if status == 401 or code == 1003 or _AUTH_FAILED in text:
            return AuthError(f"FEMS rejected the password ({where}: HTTP {status})")
        if code == 1002 or _ROLE_DENIED in text:
            return CommandRejectedError(
                f"FEMS refused {where}: writing needs the owner password and the FEMS App "
                "REST/JSON write access (role access denied)"
            )
        if _READ_ONLY_MODE in text:
            return CommandRejectedError(
                f"FEMS refused {where}: REST-Api is in Read-Only mode (the FEMS App REST/JSON "
                "write access is not installed)"
            )
        if _NOT_WRITE_CHANNEL in text:
            return CommandRejectedError(f"FEMS refused {where}: the channel is read-only")
        if code == 2000 or _NO_COMPONENT in text:
            return UnknownBatteryError(f"FEMS has no such component ({where})")
        if _NO_CHANNEL in text:
            return NotSupportedError(f"FEMS has no such channel ({where})")
        if status == 404:
            return NotSupportedError(
                f"FEMS has no such channels ({where}: HTTP 404); check that the REST/JSON app "
                "is installed, the port and the ESS id"
            )
        if status == 429:
            return RateLimitedError(
                f"FEMS asked to slow down ({where})", parse_retry_after(retry_after)
            )
        if status in (502, 503, 504):
            return CannotConnectError(f"FEMS API unavailable ({where}: HTTP {status})")
        if method == "POST" and (code is not None or _OPENEMS_EXCEPTION in text):
            number = f" (code {code})" if code is not None else ""
            return CommandRejectedError(f"FEMS refused {where}{number}{said}")
        if body.lstrip().startswith(b"<"):
            return ProtocolError(
                f"FEMS answered {where} with an HTML error page (HTTP {status}){said}"
            )
        return ProtocolError(f"FEMS answered {where} with HTTP {status}{said}")


class _ApiTimer:
    """What this client wrote, and the FEMS API timer that drops it.

    The FEMS keeps written values for its API timeout (one timer for the whole API, restarted by
    every accepted POST) and then drops all of them; the Home Assistant layer rewrites the command
    as a keepalive.
    """

    def __init__(self) -> None:
        self.timeout_s: float | None = DEFAULT_API_TIMEOUT_S
        # monotonic and wall time of the last accepted POST (the FEMS API timer restarts there)
        self.last_post: tuple[float, datetime] | None = None
        self.written: ControlInstruction | None = None
        # the limit channels this client wrote a value to (released with null when the limit goes)
        self.limits_written: set[ChannelSpec] = set()

    def restart(self) -> None:
        """Note an accepted POST."""
        self.last_post = (_monotonic(), _utcnow())

    def desired(self) -> ControlInstruction | None:
        """Return the last written command; a POWER not rewritten within the API timeout is AUTO.

        The FEMS drops every written value when its API timer (restarted by each POST of this
        client, the write probe included) runs out, so the battery is back in self-consumption.
        Writes by other clients of the same API restart the timer too; we cannot see them.
        """
        written = self.written
        if written is None:
            return None
        timeout = self.timeout_s
        last_post = self.last_post
        if (
            written.mode is ControlMode.POWER
            and timeout is not None
            and last_post is not None
            and _monotonic() - last_post[0] >= timeout
        ):
            return ControlInstruction(
                mode=ControlMode.AUTO, timestamp=last_post[1] + timedelta(seconds=timeout)
            )
        return written


class FemsBackend:
    """One FEMS (one ESS) over the REST/JSON API.

    The battery id is the ESS component id. Battery-level values come from ``_sum`` (on a
    multi-ESS site they add up every ESS); limits and the applied setpoint come from the ESS.
    """

    kind: ClassVar[BackendKind] = BackendKind.FEMS

    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        port: int,
        password: str,
        *,
        username: str = "x",
        ess_id: str = "ess0",
        can_write: bool = True,
        base_url: str | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        """Store the settings; no I/O happens here.

        Args:
            session: the shared aiohttp session (never closed here).
            host: host name or address of the FEMS.
            port: 80 (the FEMS web server forwards /rest) or 8084 (the API itself).
            password: "user" (guest: read only) or "owner" (needed to write).
            username: ignored by the FEMS, sent anyway.
            ess_id: the ESS component, usually "ess0".
            can_write: whether write access was found at set-up; False makes the entry read-only.
            base_url: overrides ``http://{host}:{port}/rest``.
            request_timeout: seconds per request.
        """
        base = URL(base_url or f"http://{host}:{port}/rest")
        self._rest = _FemsRest(session, base, username, password, request_timeout)
        self._ess_id = ess_id
        self._can_write = can_write
        self._read_path = channel_regexes(READ_CHANNELS, ess_id)
        self._dc_pv_w: float | None = None
        self._timer = _ApiTimer()
        self._last_raw: dict[str, object] = {}

    @property
    def ess_id(self) -> str:
        """Return the ESS component id (the battery id)."""
        return self._ess_id

    async def _get(self, specs: tuple[ChannelSpec, ...]) -> dict[str, FemsChannel]:
        """Read channels with one regex GET, ``<base>/channel/(<components>)/(<channels>)``.

        The reply is indexed by ``address`` because the cross product of the two regexes also
        matches channels we did not ask for (``ess0/State``, ``ess0/GridMode`` ...).
        """
        component, channel = (
            self._read_path if specs is READ_CHANNELS else channel_regexes(specs, self._ess_id)
        )
        return parse_channels(await self._rest.async_request("GET", component, channel))

    async def _post(self, spec: ChannelSpec, value: int | None) -> None:
        """Write a channel: ``POST <base>/channel/<ess>/<channel> {"value": v}``; null releases it."""
        component, _, channel = spec.address(self._ess_id).partition("/")
        data = await self._rest.async_request("POST", component, channel, {"value": value})
        if not isinstance(data, dict):
            raise ProtocolError(f"FEMS answered a write to {spec.channel} with a non-object")
        self._timer.restart()

    def _check_battery(self, battery_id: str) -> None:
        if battery_id != self._ess_id:
            raise UnknownBatteryError(
                f"this FEMS entry serves {self._ess_id!r}, not {battery_id!r}"
            )

    def _no_ess(self) -> UnknownBatteryError:
        return UnknownBatteryError(f"the FEMS has no component {self._ess_id!r}")

    # ---------------------------------------------------------------------------------- protocol

    async def async_validate(self) -> None:
        """Read ``_sum/State`` and ``<ess>/State`` (the guest password is enough).

        Raises:
            AuthError: wrong password (either firmware family).
            UnknownBatteryError: the configured ESS does not exist.
            NotSupportedError: HTTP 404, no channel matched (no REST/JSON app, or the wrong port).
            ProtocolError: the reply is not an OpenEMS channel reply.
        """
        channels = await self._get((SUM_STATE, ESS_STATE))
        if SUM_STATE.address(self._ess_id) not in channels:
            raise ProtocolError("the reply has no _sum/State: not an OpenEMS REST API")
        if ESS_STATE.address(self._ess_id) not in channels:
            raise self._no_ess()

    async def async_list_batteries(self) -> list[BatteryInfo]:
        """Return the one battery of this FEMS: its ESS."""
        readings = await self._poll()
        return [self._info(readings.sw_version)]

    def _info(self, sw_version: str | None) -> BatteryInfo:
        return BatteryInfo(
            battery_id=self._ess_id,
            name="FEMS",
            manufacturer="FENECON",
            model=None,  # the REST channels do not name the product
            sw_version=sw_version,
        )

    async def _poll(self) -> FemsReadings:
        channels = await self._get(READ_CHANNELS)
        readings = read_channels(channels, self._ess_id)
        if not readings.ess_present:
            raise self._no_ess()
        self._dc_pv_w = readings.dc_pv_w
        self._timer.timeout_s = readings.api_timeout_s
        self._last_raw = {
            address: channel.value for address, channel in channels.items() if channel.has_value
        }
        return readings

    async def async_get_snapshot(self, battery_id: str) -> BatterySnapshot:
        """Poll the FEMS with one regex GET."""
        self._check_battery(battery_id)
        readings = await self._poll()
        now = _utcnow()
        state = replace(readings.state, reachable=True, last_updated=now)
        current = None
        if readings.applied_setpoint_w is not None:
            current = ControlInstruction(
                mode=None,  # the FEMS cannot tell which controller set the power
                setpoint_w=round(readings.applied_setpoint_w - (readings.dc_pv_w or 0.0)),
                timestamp=now,
            )
        return BatterySnapshot(
            info=self._info(readings.sw_version),
            state=state,
            control=ControlStatus(current=current, desired=self._timer.desired()),
            capabilities=self._capabilities(readings),
            raw=dict(self._last_raw),
        )

    def _capabilities(self, readings: FemsReadings) -> Capabilities:
        if not self._can_write:
            return _READ_CAPABILITIES
        max_charge = readings.state.max_charge_power_w
        max_discharge = readings.state.max_discharge_power_w
        return replace(
            _READ_CAPABILITIES,
            modes=(ControlMode.AUTO, ControlMode.POWER),
            setpoint_modes=frozenset({ControlMode.POWER}),
            min_power_w=-round(max_charge) if max_charge is not None else None,
            max_power_w=round(max_discharge) if max_discharge is not None else None,
            command_timeout_s=readings.api_timeout_s,
            charge_discharge_limits=True,
        )

    async def async_apply(self, battery_id: str, command: ControlCommand) -> None:
        """Write a command: POWER sets ``SetActivePowerEquals``, AUTO releases it at once.

        A battery power B (+ = discharge) is written as ``S = B + DC-PV`` (from the latest poll,
        0 if unknown) because the setpoint of a hybrid inverter (FEMS Home) is AC-side and
        includes the DC-PV power. Rewriting is harmless and restarts the FEMS API timer (the
        keepalive).

        The limits are bounds on the same AC power, which the FEMS's own control respects in every
        mode; they are written with the command in both modes, with the same DC-PV offset:
        ``SetActivePowerGreaterOrEquals = -charge_limit + DC-PV`` and
        ``SetActivePowerLessOrEquals = discharge_limit + DC-PV``. A limit that is ``None`` is
        released with ``null`` only when this client wrote it before (since it was created), so a
        command without limits costs one POST as before, and one with limits one POST per limit
        more. A limit left by an earlier run of this client expires with the API timeout.

        Raises:
            NotSupportedError: read-only entry, or a mode other than AUTO / POWER.
            CommandRejectedError: POWER without a setpoint, a negative limit, or the FEMS refused
                the write.
        """
        self._check_battery(battery_id)
        if not self._can_write:
            raise NotSupportedError("this FEMS entry is read-only (no write access at set-up)")
        if command.mode not in (ControlMode.POWER, ControlMode.AUTO):
            raise NotSupportedError(f"the FEMS cannot take the mode {command.mode.value!r}")
        if command.mode is ControlMode.POWER and command.setpoint_w is None:
            raise CommandRejectedError("power mode needs a setpoint")
        limits = (
            (SET_ACTIVE_POWER_GREATER_OR_EQUALS, -1, command.charge_limit_w),
            (SET_ACTIVE_POWER_LESS_OR_EQUALS, 1, command.discharge_limit_w),
        )
        if any(limit is not None and limit < 0 for _, _, limit in limits):
            raise CommandRejectedError("a power limit is a magnitude (>= 0 W)")
        offset = self._dc_pv_w or 0.0
        if command.setpoint_w is not None and command.mode is ControlMode.POWER:
            await self._post(SET_ACTIVE_POWER_EQUALS, round(command.setpoint_w + offset))
            instruction = ControlInstruction(ControlMode.POWER, command.setpoint_w)
        else:
            await self._post(SET_ACTIVE_POWER_EQUALS, None)
            instruction = ControlInstruction(ControlMode.AUTO)
        for spec, sign, limit in limits:
            if limit is not None:
                await self._post(spec, round(sign * limit + offset))
                self._timer.limits_written.add(spec)
            elif spec in self._timer.limits_written:
                await self._post(spec, None)
                self._timer.limits_written.discard(spec)
        self._timer.written = replace(instruction, timestamp=_utcnow())

    async def async_probe_write(self) -> bool:
        """Find out whether writes are accepted, without changing what the battery does.

        Writes ``null`` to ``<ess>/SetReactivePowerEquals``: null only releases a value, and the
        reactive power channels are unused on home systems (FENECON: "cannot currently be used for
        home systems"), so nothing is released that anyone set. Releasing ``SetActivePowerEquals``
        instead would end an active setpoint. The POST does restart the FEMS API timer, which at
        worst keeps an active setpoint of this client alive a little longer (and is accounted for).

        Returns:
            True when the write was accepted; False for every "no write access" answer (a
            read-only API, a password without the owner role, a channel that is not writable) and
            for an ESS without the probe channel (not a managed ESS) or no such ESS, in both
            firmware families.

        Raises:
            AuthError: wrong password.
            CannotConnectError: the FEMS cannot be reached.
            ProtocolError: a reply that says none of this (an unknown error page).
        """
        try:
            await self._post(SET_REACTIVE_POWER_EQUALS, None)
        except (CommandRejectedError, NotSupportedError) as err:
            _LOGGER.debug("FEMS write probe refused: %s", err)
            return False
        return True


# --------------------------------------------------------------------------------------------------
# The spec (api/registry.py)
# --------------------------------------------------------------------------------------------------

SETTING_ESS_ID: Final = "ess_id"
DEFAULT_PORT: Final = 80
DEFAULT_ESS_ID: Final = "ess0"


def create_backend(settings: Settings, session: aiohttp.ClientSession) -> FemsBackend:
    """Build the client for config entry settings.

    A FEMS accepts few connections: the backend serialises its requests, so it holds at most one
    (kept-alive) connection of the shared session.
    """
    return FemsBackend(
        session,
        settings[SETTING_HOST],
        settings.get(SETTING_PORT, DEFAULT_PORT),
        settings[SETTING_PASSWORD],
        ess_id=settings.get(SETTING_ESS_ID, DEFAULT_ESS_ID),
        can_write=settings.get(SETTING_CAN_WRITE, True),
    )


SPEC: Final = BackendSpec(
    kind=BackendKind.FEMS,
    create=create_backend,
    fields=(
        ConfigField(SETTING_HOST, FieldType.HOST),
        ConfigField(SETTING_PORT, FieldType.PORT, default=DEFAULT_PORT),
        ConfigField(SETTING_PASSWORD, FieldType.PASSWORD, secret=True),
        ConfigField(SETTING_ESS_ID, default=DEFAULT_ESS_ID, advanced=True, reconfigurable=False),
    ),
    # The REST API exposes no serial number: the address is the best key there is.
    unique_id=lambda settings: str(settings[SETTING_HOST]).lower(),
    title=lambda settings: f"FEMS {settings[SETTING_HOST]}",
    poll_interval=timedelta(seconds=10),
    min_poll_interval=timedelta(seconds=5),
    # A setpoint overrides the FEMS's own control: writing one means mode "power"; "auto" releases
    # it. A FEMS reports no mode: without an intent of ours it runs its own control, so that is
    # what an override returns to.
    control_policy=ControlPolicy(
        setpoint_mode=ControlMode.POWER,
        mode_keeps_setpoint=False,
        override_modes=SETPOINT_OVERRIDES,
        release_mode=ControlMode.AUTO,
        reported_setpoint_is_a_command=False,
    ),
    battery_id_setting=SETTING_ESS_ID,
    battery_ids_unique=False,  # "ess0" on nearly every FEMS
    commands_expire=True,  # the FEMS API timeout
    redact=frozenset({SETTING_HOST, SETTING_PASSWORD}),  # the address and the credential
)
