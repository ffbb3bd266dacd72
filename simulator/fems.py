"""FENECON FEMS / OpenEMS Edge REST/JSON API (Controller.Api.Rest.ReadWrite), two firmware families.

Reads with :func:`handle_get`, writes with :func:`handle_post`; the error replies follow the
chosen :class:`Firmware` family.
"""

from __future__ import annotations

import argparse
import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
import enum
import json
import math
import re
import time
from typing import Any, Final

from aiohttp import web

from .faults import new_app

ENERGY_UNIT: Final = "Wh_Σ"
START_COUNTERS: Final = {
    "dc_charge": 3_013_394.0,
    "dc_discharge": 3_202_108.0,
    "ac_charge": 3_100_000.0,
    "ac_discharge": 4_900_000.0,
    "grid_buy": 2_200_000.0,
    "grid_sell": 5_400_000.0,
    "production": 9_800_000.0,
    "consumption": 6_600_000.0,
}
_MAX_STEPS: Final = 1000


class Firmware(enum.StrEnum):
    """The two families of REST error replies (``--firmware``), as in the OpenEMS source of each.

    ``2025.3`` (<= 2025.3, Jetty 9/11): OpenEMS exceptions become HTTP 400 (401 for a wrong
    password) with a JSON-RPC error body; other exceptions (unknown channel, invalid regex) escape
    to Jetty's 500 error page, which names the exception in a "CAUSED BY" row. ``2026.x``
    (>= 2025.4, Jetty 12): every exception becomes a 500 Jetty error page whose message is
    ``<java class>: <message>``, as HTML, JSON or plain text by the ``Accept`` header (HTML by
    default); an invalid regex is a 400 with an empty body.
    """

    OLD = "2025.3"  # <= 2025.3: Jetty 9/11, JSON-RPC error bodies with 400/401
    NEW = "2026.x"  # >= 2025.4: Jetty 12, every error a 500 error page

    @property
    def version(self) -> str:
        """Return a ``_meta/Version`` of this family."""
        return "2025.2.3" if self is Firmware.OLD else "2026.10.1"


class Role(enum.IntEnum):
    """OpenEMS user roles (only the ones the simulator knows)."""

    GUEST = 1
    OWNER = 2


@dataclass(slots=True)
class Flows:
    """Powers at one moment, in W (battery + = discharge, grid + = import)."""

    pv: float
    pv_dc: float
    house: float
    battery: float
    ess_ac: float
    grid: float
    allowed_charge: float  # <= 0, like the FEMS
    allowed_discharge: float


ChannelDef = tuple[str, str, str, str, str]  # channel id, type, access mode, unit, text


class FemsSimulator:
    """The simulated FEMS: components, channels, written values and physics.

    Physics are updated lazily on each request from the elapsed (injectable) clock time: PV
    follows a smooth curve, the house load varies, and on a hybrid system the battery power is the
    AC setpoint minus the DC-PV power.
    """

    def __init__(
        self,
        *,
        ess_id: str = "ess0",
        api_timeout: float = 60.0,
        hybrid: bool = True,
        write_app: bool = True,
        capacity_wh: float = 10_000.0,
        soc: float = 50.0,
        soh: float = 100.0,
        max_charge_w: float = 5000.0,
        max_discharge_w: float = 5000.0,
        pv_peak_w: float = 6000.0,
        day_s: float = 3600.0,
        speed: float = 1.0,
        warmup_s: float = 0.0,
        firmware: Firmware = Firmware.NEW,
        version: str | None = "",
        old_units: bool = False,
        reactive_power: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Set up a running FEMS with realistic counter values.

        ``version`` "" is the firmware family's version, None a null ``_meta/Version``;
        ``reactive_power=False`` leaves out the ``SetReactivePower*`` channels (an unmanaged ESS).
        """
        self.firmware = Firmware(firmware)
        self.ess_id = ess_id
        self.api_timeout = api_timeout
        self.hybrid = hybrid
        self.write_app = write_app
        self.capacity_wh = capacity_wh
        self.soh = soh
        self.max_charge_w = max_charge_w
        self.max_discharge_w = max_discharge_w
        self.pv_peak_w = pv_peak_w
        self.day_s = day_s
        self.speed = speed
        self.warmup_s = warmup_s
        self.version = self.firmware.version if version == "" else version
        self.reactive_power = reactive_power
        self.energy_unit = "Wh" if old_units else ENERGY_UNIT
        self.clock = clock
        self.soc_wh = capacity_wh * soc / 100
        self.counters = dict(START_COUNTERS)
        self.written: dict[str, Any] = {}  # address -> value written through the API
        self.null_addresses: set[str] = set()  # channels that report null (test hook)
        self.pv_override: float | None = None  # fixed PV power instead of the curve (test hook)
        self.house_override: float | None = None  # fixed house load (test hook)
        self.sim_time = 0.0  # physics seconds (clock seconds x speed)
        self.last_post: float | None = None
        self.posts = 0
        now = clock()
        self._last_update = now
        self._started = now

    # --------------------------------------------------------------------------------- control

    def restart(self) -> None:
        """Simulate a FEMS restart: written values are lost, counters restart near zero."""
        self.advance()
        self.written.clear()
        self.last_post = None
        self.counters = dict.fromkeys(START_COUNTERS, 1.0)
        self._started = self.clock()

    def write(self, address: str, value: Any) -> None:
        """Queue a value (None or "" releases the channel) and restart the API timer.

        There is ONE API timer; when it runs out, every written value is dropped (``advance``).
        """
        self.advance()
        if value is None or value == "":
            self.written.pop(address, None)
        else:
            self.written[address] = value
        self.last_post = self.clock()
        self.posts += 1

    def _number(self, channel: str) -> float | None:
        value = self.written.get(f"{self.ess_id}/{channel}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def api_worker_log(self) -> str:
        """Return what the ApiWorker applied in the last cycle (``address:value|...``)."""
        parts = []
        for address, value in sorted(self.written.items()):
            if isinstance(value, bool) or not isinstance(value, int | float):
                parts.append(f"{address}-ERROR:cannot convert {value!r}")
            else:
                parts.append(f"{address}:{value}")
        return "|".join(parts)

    # --------------------------------------------------------------------------------- physics

    def flows(self) -> Flows:
        """Return the powers at the current physics time with the current written values."""
        t = self.sim_time
        if self.pv_override is not None:
            pv = self.pv_override
        else:
            # Starts late in the morning, so a fresh simulator already produces.
            phase = t / self.day_s + 0.4
            pv = self.pv_peak_w * (0.5 - 0.5 * math.cos(2 * math.pi * phase))
        if self.house_override is not None:
            house = self.house_override
        else:
            house = (
                300
                + 250 * (0.5 + 0.5 * math.sin(2 * math.pi * t / 97))
                + 150 * (0.5 + 0.5 * math.sin(2 * math.pi * t / 23))
            )
        pv_dc = pv if self.hybrid else 0.0
        charge_limit = self.max_charge_w if self.soc_wh < self.capacity_wh else 0.0
        discharge_limit = self.max_discharge_w if self.soc_wh > 0 else 0.0
        # Self-consumption (the balancing controller): cover the house, store the surplus.
        balance = min(max(house - pv, -charge_limit), discharge_limit)
        setpoint = self._number("SetActivePowerEquals")
        if setpoint is None:
            setpoint = balance + pv_dc
        less = self._number("SetActivePowerLessOrEquals")
        if less is not None:
            setpoint = min(setpoint, less)
        greater = self._number("SetActivePowerGreaterOrEquals")
        if greater is not None:
            setpoint = max(setpoint, greater)
        # The AC setpoint includes the DC-PV on a hybrid: the battery gets S - PV_dc.
        battery = min(max(setpoint - pv_dc, -charge_limit), discharge_limit)
        ess_ac = battery + pv_dc
        return Flows(
            pv=pv,
            pv_dc=pv_dc,
            house=house,
            battery=battery,
            ess_ac=ess_ac,
            grid=house - (pv - pv_dc) - ess_ac,
            allowed_charge=-charge_limit,
            allowed_discharge=discharge_limit,
        )

    def advance(self) -> None:
        """Move the physics to the clock's now; fire the API timer on the way."""
        now = self.clock()
        if self.written and self.last_post is not None and self.api_timeout > 0:
            expiry = self.last_post + self.api_timeout
            if expiry <= now:
                self._integrate(max(expiry, self._last_update))
                self.written.clear()
        self._integrate(now)

    def _integrate(self, until: float) -> None:
        real = until - self._last_update
        if real <= 0:
            return
        span = real * self.speed
        steps = max(1, min(_MAX_STEPS, math.ceil(span)))
        step = span / steps
        hours = step / 3600
        for _ in range(steps):
            f = self.flows()
            self.soc_wh = min(max(self.soc_wh - f.battery * hours, 0.0), self.capacity_wh)
            c = self.counters
            c["dc_charge"] += max(0.0, -f.battery) * hours
            c["dc_discharge"] += max(0.0, f.battery) * hours
            c["ac_charge"] += max(0.0, -f.ess_ac) * hours
            c["ac_discharge"] += max(0.0, f.ess_ac) * hours
            c["grid_buy"] += max(0.0, f.grid) * hours
            c["grid_sell"] += max(0.0, -f.grid) * hours
            c["production"] += f.pv * hours
            c["consumption"] += f.house * hours
            self.sim_time += step
        self._last_update = until

    # -------------------------------------------------------------------------------- channels

    def components(self) -> dict[str, dict[str, tuple[ChannelDef, Any]]]:
        """Return every component's channels (definition and current value), in FEMS order."""
        f = self.flows()
        soc = round(100 * self.soc_wh / self.capacity_wh)
        c = self.counters
        power, energy, level = "W", self.energy_unit, ""

        def ro(channel: str, type_: str, unit: str, value: Any, text: str = "") -> tuple[str, Any]:
            return channel, ((channel, type_, "RO", unit, text), value)

        def wo(channel: str, unit: str, text: str) -> tuple[str, Any]:
            return channel, ((channel, "INTEGER", "WO", unit, text), None)

        state = ro("State", "INTEGER", level, 0, "0:Ok, 1:Info, 2:Warning, 3:Fault")
        grid_mode = ro("GridMode", "INTEGER", level, 1, "-1:Undefined, 1:On-Grid, 2:Off-Grid")
        sum_channels = [
            state,
            ro("EssSoc", "INTEGER", "%", soc, "Range 0..100"),
            ro("EssActivePower", "INTEGER", power, round(f.ess_ac)),
            ro("EssDischargePower", "INTEGER", power, round(f.battery)),
            ro("EssCapacity", "INTEGER", "Wh", round(self.capacity_wh)),
            ro("GridActivePower", "INTEGER", power, round(f.grid), "Grid exchange power"),
            ro("ProductionActivePower", "INTEGER", power, round(f.pv), "Total production"),
            ro("ProductionDcActualPower", "INTEGER", power, round(f.pv_dc)),
            ro("ProductionAcActivePower", "INTEGER", power, round(f.pv - f.pv_dc)),
            ro("ConsumptionActivePower", "INTEGER", power, round(f.house)),
            ro("EssDcChargeEnergy", "LONG", energy, round(c["dc_charge"])),
            ro("EssDcDischargeEnergy", "LONG", energy, round(c["dc_discharge"])),
            ro("EssActiveChargeEnergy", "LONG", energy, round(c["ac_charge"])),
            ro("EssActiveDischargeEnergy", "LONG", energy, round(c["ac_discharge"])),
            ro("GridBuyActiveEnergy", "LONG", energy, round(c["grid_buy"])),
            ro("GridSellActiveEnergy", "LONG", energy, round(c["grid_sell"])),
            ro("ProductionActiveEnergy", "LONG", energy, round(c["production"])),
            ro("ConsumptionActiveEnergy", "LONG", energy, round(c["consumption"])),
            grid_mode,
        ]
        text = "Write command for a charge power (-) or discharge power (+)"
        ess_channels = [
            state,
            ro("Soc", "INTEGER", "%", soc),
            ro("Capacity", "INTEGER", "Wh", round(self.capacity_wh)),
            ro("ActivePower", "INTEGER", power, round(f.ess_ac)),
            grid_mode,
            ro("MaxApparentPower", "INTEGER", "VA", round(self.max_discharge_w)),
            ro("AllowedChargePower", "INTEGER", power, round(f.allowed_charge)),
            ro("AllowedDischargePower", "INTEGER", power, round(f.allowed_discharge)),
            ro("DebugSetActivePower", "INTEGER", power, round(f.ess_ac)),
            wo("SetActivePowerEquals", power, text),
            wo("SetActivePowerLessOrEquals", power, text),
            wo("SetActivePowerGreaterOrEquals", power, text),
        ]
        if self.reactive_power:
            ess_channels += [
                wo("SetReactivePowerEquals", "var", "Reactive power"),
                wo("SetReactivePowerLessOrEquals", "var", "Reactive power"),
                wo("SetReactivePowerGreaterOrEquals", "var", "Reactive power"),
            ]
        if self.hybrid:
            ess_channels += [
                ro("DcDischargePower", "INTEGER", power, round(f.battery)),
                ro("DcChargeEnergy", "LONG", energy, round(c["dc_charge"])),
                ro("DcDischargeEnergy", "LONG", energy, round(c["dc_discharge"])),
            ]
        components = {
            "_sum": dict(sum_channels),
            self.ess_id: dict(ess_channels),
            "battery0": dict(
                [state, ro("Soc", "INTEGER", "%", soc), ro("Soh", "INTEGER", "%", self.soh)]
            ),
            "meter0": dict([state, ro("ActivePower", "INTEGER", power, round(f.grid))]),
            "_meta": dict([state, ro("Version", "STRING", "", self.version)]),
        }
        if self.hybrid:
            components["charger0"] = dict(
                [state, ro("ActualPower", "INTEGER", power, round(f.pv_dc))]
            )
        if self.write_app:
            timeout: float = self.api_timeout
            components["ctrlApiRest0"] = dict(
                [
                    state,
                    ro(
                        "_PropertyApiTimeout",
                        "INTEGER",
                        "",
                        int(timeout) if timeout.is_integer() else timeout,
                    ),
                    ro("_PropertyPort", "INTEGER", "", 8084),
                    ro("ApiWorkerLog", "STRING", "", self.api_worker_log()),
                ]
            )
        return components

    def channel_object(self, component: str, definition: ChannelDef, value: Any) -> dict[str, Any]:
        """Return a channel as the REST API shows it (write-only channels have no value)."""
        channel, type_, access, unit, text = definition
        address = f"{component}/{channel}"
        obj: dict[str, Any] = {
            "address": address,
            "type": type_,
            "accessMode": access,
            "text": text,
            "unit": unit,
        }
        if access != "WO":
            warming = self.clock() - self._started < self.warmup_s
            obj["value"] = None if warming or address in self.null_addresses else value
        return obj


SIM = web.AppKey("fems_sim", FemsSimulator)
PASSWORDS = web.AppKey("fems_passwords", dict[str, Role])

_NAMED: Final = "io.openems.common.exceptions.OpenemsError$OpenemsNamedException"
_GENERIC: Final = "io.openems.common.exceptions.OpenemsException"
_ACCESS_NAMES: Final = {"RO": "READ_ONLY", "RW": "READ_WRITE", "WO": "WRITE_ONLY"}
_IMPLEMENTATIONS: Final = {
    "_sum": "io.openems.edge.core.sum.SumImpl",
    "_meta": "io.openems.edge.core.meta.MetaImpl",
    "ctrlApiRest0": "io.openems.edge.controller.api.rest.readwrite.ControllerApiRestReadWriteImpl",
}
_ESS_IMPLEMENTATION: Final = "io.openems.edge.ess.generic.symmetric.EssGenericManagedSymmetricImpl"


class JavaError(Exception):
    """An exception the OpenEMS REST handler throws; ``str()`` is Java's ``toString()``.

    ``code`` is the OpenEMS error code (``None``: not an OpenEMS exception, which the old family
    does not catch), ``params`` the JSON-RPC ``data``.
    """

    def __init__(
        self, java_class: str, message: str, code: int | None = None, params: tuple[str, ...] = ()
    ) -> None:
        """Store the exception's class, message and OpenEMS error."""
        super().__init__(message)
        self.java_class = java_class
        self.message = message
        self.code = code
        self.params = params

    def __str__(self) -> str:
        """Return ``<class>: <message>``, like ``Throwable.toString()``."""
        return f"{self.java_class}: {self.message}"


def _generic(message: str) -> JavaError:
    return JavaError(_GENERIC, message, 1, (message,))


def _authentication_failed() -> JavaError:
    return JavaError(_NAMED, "Authentication failed", 1003)


def _channel_string(definition: ChannelDef, value: Any) -> str:
    """Return ``Channel.toString()``: ``Channel [ID=Soc, type=INTEGER, activeValue=50 %, ...]``."""
    channel, type_, access, unit, _ = definition
    if value is None:
        active = "UNDEFINED"
    elif unit:
        active = f"{value} {unit}"
    else:
        active = str(value)
    access_name = _ACCESS_NAMES[access]
    return f"Channel [ID={channel}, type={type_}, activeValue={active}, access={access_name}]"


def restart(app: web.Application) -> None:
    """Test hook: restart the simulated FEMS (written values lost, counters near zero)."""
    app[SIM].restart()


def _sanitize(text: str) -> str:
    """Jetty's ``StringUtil.sanitizeXmlString``."""
    for char, entity in (
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ('"', "&quot;"),
        ("'", "&apos;"),
    ):
        text = text.replace(char, entity)
    return text


def _accepted(request: web.Request) -> list[str]:
    """Return the Accept header's media types, best first (Jetty's most-specific ordering)."""
    items = [item for header in request.headers.getall("Accept", []) for item in header.split(",")]
    ranked: list[tuple[float, int, int, str]] = []
    for position, item in enumerate(items):
        media, *params = (piece.strip() for piece in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media and quality > 0:
            wildcard = 2 if media == "*/*" else 1 if media.endswith("/*") else 0
            ranked.append((-quality, wildcard, position, media.lower()))
    return [media for *_, media in sorted(ranked)]


_STACK_FRAME: Final = (
    "\tat io.openems.edge.controller.api.rest.RestHandler.handle(RestHandler.java:93)"
)


def _html_page(status: int, uri: str, message: str, cause: str | None) -> str:
    """Jetty's HTML error page; with ``cause``, Jetty 11's (CAUSED BY row and stack trace)."""
    rows = [("URI", uri), ("STATUS", str(status)), ("MESSAGE", message)]
    if cause is None:  # Jetty 12
        charset, body, trace = "ISO-8859-1", "<body>\n", ""
        powered = '<hr/><a href="https://jetty.org/">Powered by Jetty:// 12.0.16</a><hr/>\n'
    else:  # Jetty 11
        rows += [("SERVLET", "-"), ("CAUSED BY", cause)]
        charset, body = "utf-8", "<body>"
        trace = f"<h3>Caused by:</h3><pre>{_sanitize(cause)}\n{_STACK_FRAME}\n</pre>\n"
        powered = '<hr><a href="https://eclipse.org/jetty">Powered by Jetty:// 11.0.24</a><hr/>\n'
    table = "".join(
        f"<tr><th>{name}:</th><td>{_sanitize(value)}</td></tr>\n" for name, value in rows
    )
    title = f"{status} {_sanitize(message)}"
    return (
        f'<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html;charset={charset}"/>\n'
        f"<title>Error {title}</title>\n</head>\n{body}<h2>HTTP ERROR {title}</h2>\n"
        f"<table>\n{table}</table>\n{trace}{powered}\n</body>\n</html>\n"
    )


def _json_page(status: int, uri: str, message: str, cause: str | None) -> str:
    """Jetty's JSON error object (``status`` is a string; values XML-sanitised)."""
    fields = {"url": uri, "status": str(status), "message": message}
    if cause is not None:
        fields["cause0"] = cause
    return json.dumps({key: _sanitize(value) for key, value in fields.items()}, indent=0)


def _plain_page(status: int, uri: str, message: str, cause: str | None) -> str:
    """Jetty's plain-text error page."""
    text = f"HTTP ERROR {status} {_sanitize(message)}\n"
    text += f"URI: {uri}\nSTATUS: {status}\nMESSAGE: {message}\n"
    if cause is not None:
        text += f"SERVLET: null\nCAUSED BY {cause}\n"
    return text


_PAGES: Final = {
    "text/html": (_html_page, "text/html;charset=iso-8859-1"),
    "text/*": (_html_page, "text/html;charset=iso-8859-1"),
    "*/*": (_html_page, "text/html;charset=iso-8859-1"),
    "application/json": (_json_page, "application/json"),
    "text/json": (_json_page, "text/json"),
    "text/plain": (_plain_page, "text/plain;charset=iso-8859-1"),
}


def _jetty_page(request: web.Request, status: int, message: str, cause: str | None) -> web.Response:
    """Return Jetty's error page in the first form the Accept header takes (no header: HTML).

    ``cause`` set: Jetty 11 (<= 2025.3), which adds the exception to the page.
    """
    accepted = _accepted(request) if "Accept" in request.headers else ["text/html"]
    for media in accepted:
        if media in _PAGES:
            page, content_type = _PAGES[media]
            text = page(status, request.rel_url.raw_path, message, cause)  # as sent
            return web.Response(
                status=status,
                body=text.encode("latin-1", "replace"),
                headers={"Content-Type": content_type},
            )
    return web.Response(status=status)  # nothing acceptable: no body


def _error_reply(request: web.Request, error: JavaError) -> web.Response:
    """Answer an exception of the REST handler the way the firmware family does."""
    if request.app[SIM].firmware is Firmware.NEW:
        # Jetty 12: handle() passes every exception to callback.failed(); showCauses is off.
        return _jetty_page(request, 500, str(error), None)
    if error.code is None:
        # Not an OpenemsNamedException: handle() does not catch it.
        return _jetty_page(request, 500, "Server Error", str(error))
    body = {
        "jsonrpc": "2.0",
        "id": "00000000-0000-0000-0000-000000000000",
        "error": {"code": error.code, "message": error.message, "data": list(error.params)},
    }
    status = 401 if error.code == 1003 else 400  # OpenEMS sends no WWW-Authenticate challenge
    return web.Response(
        status=status, text=json.dumps(body, separators=(",", ":")), content_type="application/json"
    )


def _role(request: web.Request) -> Role:
    """Return the role of the request's Basic credentials (the user name is ignored)."""
    passwords = request.app[PASSWORDS]
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise _authentication_failed()
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except binascii.Error, UnicodeDecodeError:
        raise _authentication_failed() from None
    _, sep, password = decoded.partition(":")
    role = passwords.get(password) if sep else None
    if role is None:
        raise _authentication_failed()
    return role


def _pattern_error(err: re.error, pattern: str) -> JavaError:
    position = err.pos or 0
    message = f"{err.msg} near index {position}\n{pattern}\n{' ' * position}^"
    return JavaError("java.util.regex.PatternSyntaxException", message)


async def handle_get(request: web.Request) -> web.StreamResponse:
    """``GET /rest/channel/<componentRegex>/<channelRegex>``: read channels (any role).

    The regexes must match in full; one match is an object, several an array, none a 404 with an
    empty body.
    """
    try:
        _role(request)  # every role may read
        patterns = []
        for key in ("component", "channel"):
            pattern = request.match_info[key]
            try:
                patterns.append(re.compile(pattern))
            except re.error as err:
                if request.app[SIM].firmware is Firmware.NEW:
                    return web.Response(status=400)  # caught: 400 with an empty body
                raise _pattern_error(err, pattern) from None
    except JavaError as err:
        return _error_reply(request, err)
    component_re, channel_re = patterns
    sim = request.app[SIM]
    sim.advance()
    matches = [
        sim.channel_object(component, definition, value)
        for component, channels in sim.components().items()
        if component_re.fullmatch(component)
        for channel, (definition, value) in channels.items()
        if channel_re.fullmatch(channel)
    ]
    if not matches:
        return web.Response(status=404)
    # One match is an object, several an array ("for compatibility to previous versions").
    return web.json_response(matches[0] if len(matches) == 1 else matches)


async def handle_post(request: web.Request) -> web.StreamResponse:
    """``POST /rest/channel/<component>/<channel>`` ``{"value": x}`` (owner only); null releases."""
    try:
        await _post(request)
    except JavaError as err:
        return _error_reply(request, err)
    return web.json_response({})


async def _post(request: web.Request) -> None:
    """Check and queue a write, in the order of the OpenEMS RestHandler and ApiWorker."""
    role = _role(request)
    sim = request.app[SIM]
    if not sim.write_app:
        raise _generic("REST-Api is in Read-Only mode")
    if role < Role.OWNER:
        message = f"Access to this resource [HTTP POST] is denied for User with Role [{role.name}]"
        raise JavaError(_NAMED, message, 1002, ("HTTP POST", role.name))
    text = await request.text()
    try:
        body = json.loads(text)
    except ValueError:
        raise _generic(f"Unable to parse: {text[:100]}") from None
    if not isinstance(body, dict) or "value" not in body:
        raise _generic("Value is missing")
    component, channel = request.match_info["component"], request.match_info["channel"]
    channels = sim.components().get(component)
    if channels is None:
        raise JavaError(
            _NAMED, f"Unable to find OpenEMS Component with ID [{component}]", 2000, (component,)
        )
    if channel not in channels:
        implementation = _IMPLEMENTATIONS.get(component, _ESS_IMPLEMENTATION)
        raise JavaError(
            "java.lang.IllegalArgumentException",
            f"Channel [{channel}] is not defined for ID [{component}]. "
            f"Implementation [{implementation}]",
        )
    definition, value = channels[channel]
    if definition[2] == "RO":
        raise _generic(f"[{_channel_string(definition, value)}] is not a Write Channel")
    sim.write(f"{component}/{channel}", body["value"])


def create_app(
    *,
    password_guest: str = "user",  # noqa: S107 (the FEMS factory default)
    password_owner: str = "owner",  # noqa: S107
    write_app: bool = True,
    api_timeout: float = 60.0,
    hybrid: bool = True,
    **options: Any,
) -> web.Application:
    """Return the FEMS simulator app; ``options`` (``firmware=`` ...) go to :class:`FemsSimulator`.

    ``app[SIM]`` is the simulator (test hooks: ``written``, ``null_addresses``, ``pv_override``,
    ``house_override``, ``restart()``); ``app[FAULTS]`` the fault injector.
    """
    app = new_app()
    app[SIM] = FemsSimulator(api_timeout=api_timeout, hybrid=hybrid, write_app=write_app, **options)
    app[PASSWORDS] = {password_guest: Role.GUEST, password_owner: Role.OWNER}
    app.router.add_get("/rest/channel/{component:[^/]+}/{channel:[^/]+}", handle_get)
    app.router.add_post("/rest/channel/{component:[^/]+}/{channel:[^/]+}", handle_post)
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the FEMS simulator's command-line options."""
    parser.add_argument("--port", type=int, default=8084, help="port (a FEMS serves 80 and 8084)")
    parser.add_argument("--api-timeout", type=float, default=60.0, help="seconds; 0 = none")
    parser.add_argument("--no-write-app", action="store_true", help="read-only REST API")
    parser.add_argument("--ac-coupled", action="store_true", help="no DC-PV (not hybrid)")
    parser.add_argument("--password-guest", default="user")
    parser.add_argument("--password-owner", default="owner")
    parser.add_argument("--ess-id", default="ess0")
    parser.add_argument("--capacity", type=float, default=10_000.0, help="Wh")
    parser.add_argument("--soc", type=float, default=50.0, help="initial %%")
    parser.add_argument("--speed", type=float, default=1.0, help="physics speed-up factor")
    parser.add_argument("--day", type=float, default=3600.0, help="PV curve period, seconds")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds of null values")
    parser.add_argument("--old-units", action="store_true", help="'Wh' instead of 'Wh_Σ'")
    parser.add_argument(
        "--firmware",
        type=Firmware,
        choices=list(Firmware),
        default=Firmware.NEW,
        help="error replies: 2025.3 (JSON-RPC, 400/401) or 2026.x (Jetty 12, 500 pages)",
    )
    parser.add_argument(
        "--no-reactive-power", action="store_true", help="ESS without SetReactivePower* channels"
    )


def app_from_args(args: argparse.Namespace) -> web.Application:
    """Build the app from parsed command-line options."""
    return create_app(
        password_guest=args.password_guest,
        password_owner=args.password_owner,
        write_app=not args.no_write_app,
        api_timeout=args.api_timeout,
        hybrid=not args.ac_coupled,
        ess_id=args.ess_id,
        capacity_wh=args.capacity,
        soc=args.soc,
        speed=args.speed,
        day_s=args.day,
        warmup_s=args.warmup,
        old_units=args.old_units,
        firmware=args.firmware,
        reactive_power=not args.no_reactive_power,
    )
