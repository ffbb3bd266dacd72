"""FlexHome FlexConnect: the local development client (FlexCloudClient) over HTTP/JSON.

The development client is a local HTTP bridge to the FlexCloud platform (``_FlexConnectClient``).
Replies follow the protobuf JSON mapping, so the parsers here are defensive. FlexConnect's
``setpointPower`` is positive when the battery CHARGES; Battery Bridge's when it discharges.
What is not documented publicly is noted where it is assumed (``simulator/flexconnect.py``
mirrors it; see ``/work/shared/research/flexconnect.md``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
import logging
import math
import random
import re
from typing import Any, ClassVar, Final

import aiohttp

from ._http import HttpReply, decode_json, parse_retry_after, scrub, send, try_decode_json
from ._json import loads_strict, parse_rfc3339, type_name
from .backend import (
    SETPOINT_OVERRIDES,
    SETTING_HOST,
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
    CommandStatus,
    ControlCommand,
    ControlInstruction,
    ControlMode,
    ControlState,
    ControlStatus,
    Feature,
    OperationState,
)

_LOGGER = logging.getLogger(__name__)

STATE_REQUEST: Final = "BatteryStateRequest"
CONTROL_REQUEST: Final = "BatteryControlRequest"
MODIFY_REQUEST: Final = "BatteryControlModifyRequest"
VERSION_PATH: Final = "/version"
DEVICE_ID_TYPE_SKI: Final = 2  # deviceId.type.id of an SKI, as in the vendor's examples

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_SCALE_MIN: Final = -128  # SPINE's scale is an int8
_SCALE_MAX: Final = 127
_REQ_ID_MAX: Final = 2**31 - 1
_MAX_NUMBER_STRING: Final = 64

# controlMode 1..3 (vendor documentation "controlMode values")
_MODE_BY_NUMBER: Final[dict[int, ControlMode]] = {
    1: ControlMode.POWER,
    2: ControlMode.PCC,
    3: ControlMode.AUTO,
}
_MODE_NUMBER: Final[dict[ControlMode, int]] = {mode: n for n, mode in _MODE_BY_NUMBER.items()}
_MODE_NAMES: Final[dict[str, int]] = {"POWER": 1, "PCC": 2, "AUTO": 3}

# controlState 1..6 (vendor documentation "controlState values")
_CONTROL_STATE_BY_NUMBER: Final[dict[int, ControlState]] = {
    1: ControlState.INIT,
    2: ControlState.POWER,
    3: ControlState.PCC,
    4: ControlState.AUTO_CONTROLLED,
    5: ControlState.AUTO_UNCONTROLLED,
    6: ControlState.FAILSAFE,
}
_CONTROL_STATE_NAMES: Final[dict[str, int]] = {
    "INIT": 1,
    "POWER": 2,
    "PCC": 3,
    "AUTO_CONTROLLED": 4,
    "AUTO_UNCONTROLLED": 5,
    "FAILSAFE": 6,
}

# stateOfOperation 1..5 ("1 normal, 2 standby, 3 temporarily not ready, 4 off, 5 failure"); the
# documentation gives no code names, these are the obvious spellings.
_OPERATION_BY_NUMBER: Final[dict[int, OperationState]] = {
    1: OperationState.NORMAL,
    2: OperationState.STANDBY,
    3: OperationState.NOT_READY,
    4: OperationState.OFF,
    5: OperationState.FAILURE,
}
_OPERATION_NAMES: Final[dict[str, int]] = {
    "NORMAL": 1,
    "STANDBY": 2,
    "NOT_READY": 3,
    "TEMPORARILY_NOT_READY": 3,
    "OFF": 4,
    "FAILURE": 5,
}

_INT_RE: Final = re.compile(r"[+-]?\d+")
_DECIMAL_RE: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]+")

CAPABILITY_MODES: Final = (ControlMode.POWER, ControlMode.PCC, ControlMode.AUTO)
# What every FlexConnect battery reports besides its state of charge and stored energy.
_FEATURES: Final = frozenset(
    {Feature.STATE_OF_HEALTH, Feature.OPERATION_STATE, Feature.COMMAND_STATUS}
)


# --------------------------------------------------------------------------------------------------
# Parsing helpers (pure functions: arbitrary JSON in, a value or ProtocolError out)
# --------------------------------------------------------------------------------------------------


def _decimal(raw: object, field: str) -> Decimal:
    """Return a JSON number (or numeric string) as a Decimal; None (proto3 default) is 0."""
    if raw is None:
        return Decimal(0)
    if isinstance(raw, bool):
        raise ProtocolError(f"{field}: expected a number, got a boolean")
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise ProtocolError(f"{field}: not a finite number")
        return Decimal(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > _MAX_NUMBER_STRING or not _DECIMAL_RE.fullmatch(text):
            raise ProtocolError(f"{field}: not a number")
        return Decimal(text)
    raise ProtocolError(f"{field}: expected a number, got {type_name(raw)}")


def _integer(raw: object, field: str, low: int, high: int) -> int:
    """Return an integral JSON number (or numeric string) within low..high; None is 0."""
    value = _decimal(raw, field)
    if not low <= value <= high or value != value.to_integral_value():
        raise ProtocolError(f"{field}: not an integer in {low}..{high}")
    return int(value)


def parse_scaled_number(value: object, field: str = "scaled number") -> float:
    """Return the value of a SPINE/FlexConnect scaled number ``{number, scale}``.

    The value is ``number * 10^scale``. Either member may be missing or null (protobuf JSON omits
    zero fields), which counts as 0; ``number`` may be a JSON number or a string (64-bit integers
    in protobuf JSON); ``scale`` is an integer in -128..127.

    Args:
        value: The decoded JSON value.
        field: The name used in error messages.

    Returns:
        The value as a float.

    Raises:
        ProtocolError: The value is not an object, or a member has the wrong type or range.
    """
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{field}: expected an object, got {type_name(value)}")
    number = _decimal(value.get("number"), f"{field}.number")
    if not INT64_MIN <= number <= INT64_MAX:
        raise ProtocolError(f"{field}.number: out of the 64-bit range")
    scale = _integer(value.get("scale"), f"{field}.scale", _SCALE_MIN, _SCALE_MAX)
    # |number| < 2^63 and |scale| <= 128 keep this exact and finite (at most ~1e146).
    return float(number.scaleb(scale))


def encode_scaled_number(value: int) -> dict[str, int]:
    """Return an integer as a scaled number, with a positive scale only if it exceeds 64 bits.

    Args:
        value: The integer to encode.

    Returns:
        ``{"number": n, "scale": s}`` with ``n * 10^s`` equal to ``value`` (rounded when s > 0).
    """
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    scale = 0
    while magnitude > INT64_MAX:
        magnitude = (magnitude + 5) // 10
        scale += 1
    return {"number": sign * magnitude, "scale": scale}


def _enum_number(raw: object, names: Mapping[str, int], field: str) -> int:
    """Return an enum value given as a number or a (possibly prefixed) name; 0 when unknown.

    Names are case-insensitive (``"POWER"``, ``"CONTROL_MODE_POWER"``); unknown values read as 0
    (and so as ``None``) instead of failing.
    """
    if raw is None:
        return 0
    if isinstance(raw, str):
        text = raw.strip()
        if _INT_RE.fullmatch(text):
            return _integer(text, field, INT64_MIN, INT64_MAX)
        name = text.upper().replace("-", "_").replace(" ", "_")
        if name in names:
            return names[name]
        for code in sorted(names, key=len, reverse=True):
            if name.endswith(f"_{code}"):
                return names[code]
        return 0  # an unknown or UNSPECIFIED name: keep going, report None
    return _integer(raw, field, INT64_MIN, INT64_MAX)


def _timestamp(raw: object, field: str) -> datetime | None:
    """Return ms since the epoch (number or string) or an RFC 3339 string as an aware datetime.

    0 or missing means "not set" (None).
    """
    if raw is None:
        return None
    if isinstance(raw, str) and not _DECIMAL_RE.fullmatch(raw.strip()):
        try:
            return parse_rfc3339(raw)
        except ValueError as err:
            raise ProtocolError(f"{field}: not a timestamp") from err
    millis = _decimal(raw, field)
    if millis == 0:
        return None
    try:
        return datetime.fromtimestamp(float(millis) / 1000, UTC)
    except (OverflowError, OSError, ValueError) as err:
        raise ProtocolError(f"{field}: timestamp out of range") from err


def _object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{field}: expected an object, got {type_name(value)}")
    return value


def _optional_object(parent: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = parent.get(key)
    return None if value is None else _object(value, key)


def _optional_scaled(parent: Mapping[str, Any], key: str) -> float | None:
    value = parent.get(key)
    return None if value is None else parse_scaled_number(value, key)


def parse_battery_state(reply: object) -> BatteryState:
    """Return the BatteryState of a ``BatteryStateRequest`` reply.

    A missing ``state`` message, or a missing member of it, reads as ``None``. FlexConnect reports
    no battery power, so ``power_w`` is always ``None``.

    Args:
        reply: The decoded JSON reply.

    Returns:
        The normalised state.

    Raises:
        ProtocolError: The reply or one of its members has the wrong type.
    """
    state = _optional_object(_object(reply, STATE_REQUEST), "state")
    if state is None:
        return BatteryState()
    operation = _enum_number(state.get("stateOfOperation"), _OPERATION_NAMES, "stateOfOperation")
    return BatteryState(
        state_of_charge=_optional_scaled(state, "stateOfCharge"),
        state_of_health=_optional_scaled(state, "stateOfHealth"),
        stored_energy_wh=_optional_scaled(state, "stateOfEnergy"),
        usable_capacity_wh=_optional_scaled(state, "usableCapacity"),
        operation_state=_OPERATION_BY_NUMBER.get(operation),
    )


def _instruction(raw: Mapping[str, Any], field: str) -> ControlInstruction:
    mode = _enum_number(raw.get("controlMode"), _MODE_NAMES, f"{field}.controlMode")
    setpoint = raw.get("setpointPower")
    theirs = 0.0 if setpoint is None else parse_scaled_number(setpoint, f"{field}.setpointPower")
    return ControlInstruction(
        mode=_MODE_BY_NUMBER.get(mode),
        # FlexConnect: + = charging (vendor: "Positive values represent a charging operation");
        # ours: + = discharging.
        setpoint_w=-round(theirs),
        timestamp=_timestamp(raw.get("timestamp"), f"{field}.timestamp"),
    )


def parse_control_status(reply: object) -> ControlStatus:
    """Return the ControlStatus of a ``BatteryControlRequest`` reply.

    ``current`` is ``currentControlInstructions`` (what the battery applied), ``desired`` is
    ``desiredControlInstructions`` (what was requested); setpoints are converted to + = discharge.
    A missing ``setpointPower`` inside an instruction is 0 (protobuf JSON). ``command_status`` is
    PENDING while a desired instruction differs from the current one (mode or setpoint), CONFIRMED
    when they match, ``None`` without a desired instruction.

    Args:
        reply: The decoded JSON reply.

    Returns:
        The normalised control status.

    Raises:
        ProtocolError: The reply or one of its members has the wrong type.
    """
    body = _object(reply, CONTROL_REQUEST)
    current_raw = _optional_object(body, "currentControlInstructions")
    desired_raw = _optional_object(body, "desiredControlInstructions")
    current = None
    control_state = None
    if current_raw is not None:
        current = _instruction(current_raw, "currentControlInstructions")
        state = _enum_number(
            current_raw.get("controlState"),
            _CONTROL_STATE_NAMES,
            "currentControlInstructions.controlState",
        )
        control_state = _CONTROL_STATE_BY_NUMBER.get(state)
    desired = (
        None if desired_raw is None else _instruction(desired_raw, "desiredControlInstructions")
    )
    status = None
    if desired is not None:
        matches = (
            current is not None
            and current.mode == desired.mode
            and current.setpoint_w == desired.setpoint_w
        )
        status = CommandStatus.CONFIRMED if matches else CommandStatus.PENDING
    return ControlStatus(
        current=current,
        desired=desired,
        control_state=control_state,
        command_status=status,
    )


def parse_version(text: str) -> str:
    """Return the client version from the body of ``GET /version``.

    Accepts a JSON object with a ``version`` member (string or number), a JSON string, or a short
    plain-text line (assumed: the reply is not documented publicly).

    Args:
        text: The body as text.

    Returns:
        The version string.

    Raises:
        ProtocolError: The body is an HTML page, empty, or JSON without a version.
    """
    stripped = text.strip()
    if not stripped or stripped.startswith("<"):
        raise ProtocolError("/version: not a version (empty or an HTML page)")
    if stripped[0] in '{["':
        try:
            decoded: object = loads_strict(stripped)
        except (ValueError, RecursionError) as err:
            raise ProtocolError("/version: malformed JSON") from err
        if isinstance(decoded, Mapping):
            for key in ("version", "clientVersion", "appVersion"):
                candidate = decoded.get(key)
                if isinstance(candidate, str) and candidate.strip():
                    return candidate.strip()[:64]
                if isinstance(candidate, int | float) and not isinstance(candidate, bool):
                    return str(candidate)
        elif isinstance(decoded, str) and decoded.strip():
            return decoded.strip()[:64]
        raise ProtocolError("/version: no version in the reply")
    line = stripped.splitlines()[0].strip()
    if len(line) > 64 or not line.isprintable():
        raise ProtocolError("/version: not a version line")
    return line


def _short(text: object) -> str:
    """Return a server-supplied text shortened to one line for logs and messages."""
    return scrub(str(text))


def _error_details(payload: object) -> tuple[str, str] | None:
    """Return (code, message) of a JSON error body, or None when there is none."""
    if not isinstance(payload, Mapping):
        return None
    error = payload.get("error")
    if error is None:
        header = payload.get("header")
        if isinstance(header, Mapping):
            error = header.get("error")
    if error is None or error in ({}, ""):
        return None
    if isinstance(error, Mapping):
        code = error.get("code", error.get("status", ""))
        message = error.get("message", error.get("description", ""))
        return _short(code), _short(message)
    return "", _short(error)


def _is_not_found(code: str, message: str) -> bool:
    upper = code.upper()
    lower = message.lower()
    return (
        "NOT_FOUND" in upper
        or "UNKNOWN_DEVICE" in upper
        or upper == "404"
        or ("not found" in lower and ("device" in lower or "battery" in lower))
    )


def _normalise_id(battery_id: str) -> str:
    """Return the id as sent on the wire: SKIs upper-case, anything else unchanged but stripped.

    Battery ids are SKIs (hexadecimal); upper-case as in the vendor's examples (assumed).
    """
    stripped = battery_id.strip()
    return stripped.upper() if _HEX_RE.fullmatch(stripped) else stripped


class _FlexConnectClient:
    """The HTTP side of one development client: request bodies, request ids, replies and errors.

    Every request is ``POST {base}/app/v1/<RequestName>`` with a JSON body ``{"header": {"reqId",
    "timeoutMs"}, "deviceId": {"type": {"id": 2}, "stringValue": "<SKI>"}, ...}``; the reply echoes
    ``header.reqId``.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        request_timeout: float,
        command_timeout_ms: int,
    ) -> None:
        self._session = session
        self.base_url = base_url
        self._request_timeout = request_timeout
        self._timeout_ms = max(1, min(command_timeout_ms, int(request_timeout * 1000)))
        self._req_id = random.randint(1, 2**30)  # noqa: S311 - a correlation id, not a secret

    def _next_req_id(self) -> int:
        self._req_id = self._req_id + 1 if self._req_id < _REQ_ID_MAX else 1
        return self._req_id

    async def _async_request(
        self, method: str, path: str, what: str, body: dict[str, Any] | None = None
    ) -> HttpReply:
        """Return the reply of one HTTP exchange."""
        return await send(
            self._session,
            method,
            f"{self.base_url}{path}",
            f"FlexConnect {what}",
            request_timeout=self._request_timeout,
            json=body,
        )

    @staticmethod
    def _error(
        what: str, reply: HttpReply, payload: object, *, battery_request: bool
    ) -> BackendError:
        """Return the error for a failed reply (HTTP status and/or JSON error body).

        An unknown battery id is answered with HTTP 404 and a JSON error body such as
        ``{"header": {"reqId": 1}, "error": {"code": "NOT_FOUND", "message": "..."}}`` (assumed, not
        documented publicly; ``simulator/flexconnect.py`` does the same). Any JSON error body
        whose code says ``NOT_FOUND`` (at any status, also inside a 200 reply) is treated the
        same. A 404 without a JSON body means the endpoint is missing: not a FlexConnect client.
        """
        status = reply.status
        details = _error_details(payload)
        code, message = details if details is not None else ("", "")
        described = f"FlexConnect {what}: HTTP {status}"
        if details is not None:
            described += f" ({'; '.join(part for part in (code, message) if part)})"
        if battery_request and (
            (details is not None and _is_not_found(code, message))
            or (status == 404 and isinstance(payload, Mapping))
        ):
            return UnknownBatteryError(f"{described}: unknown battery")
        if status in (401, 403) or code.upper() in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return AuthError(f"{described}: the FlexCloud refused the client's credentials")
        if status == 429:
            return RateLimitedError(
                f"{described}: rate limited", parse_retry_after(reply.retry_after)
            )
        if status == 408 or status >= 500:
            return CannotConnectError(f"{described}: the client or the cloud is unavailable")
        if status == 404:
            return ProtocolError(f"{described}: no such endpoint (is this a FlexConnect client?)")
        if what == MODIFY_REQUEST and (details is not None or 400 <= status < 500):
            return CommandRejectedError(f"{described}: command rejected")
        return ProtocolError(f"{described}: request refused")

    async def async_post(
        self, name: str, wire_id: str, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST one request for one battery; return the reply object (header checked).

        An empty 200 (or 204) reply is success for a modify request only ("An empty response
        represents a successful operation"); the read requests need their reply object. Empty,
        HTML, non-JSON (``NaN`` included) and over-1-MiB bodies are a ``ProtocolError``.
        """
        req_id = self._next_req_id()
        body: dict[str, Any] = {
            "header": {"reqId": req_id, "timeoutMs": self._timeout_ms},
            "deviceId": {"type": {"id": DEVICE_ID_TYPE_SKI}, "stringValue": wire_id},
        }
        if extra:
            body.update(extra)
        reply = await self._async_request("POST", f"/app/v1/{name}", name, body)
        if reply.status not in (200, 204):
            payload = try_decode_json(reply)
            raise self._error(name, reply, payload, battery_request=True)
        if name == MODIFY_REQUEST and reply.is_empty:
            return {}
        decoded = decode_json(reply, f"FlexConnect {name}")
        if not isinstance(decoded, dict):
            raise ProtocolError(f"FlexConnect {name}: expected an object, got {type_name(decoded)}")
        if _error_details(decoded) is not None:
            raise self._error(name, reply, decoded, battery_request=True)
        header = decoded.get("header")
        if header is not None:
            if not isinstance(header, Mapping):
                raise ProtocolError(f"FlexConnect {name}: header is not an object")
            echoed = header.get("reqId")
            if (
                echoed is not None
                and _integer(echoed, "header.reqId", INT64_MIN, INT64_MAX) != req_id
            ):
                raise ProtocolError(f"FlexConnect {name}: reply to another request (reqId)")
        return decoded

    async def async_fetch_version(self) -> str:
        """Return the client version of ``GET /version``."""
        reply = await self._async_request("GET", VERSION_PATH, "version")
        if reply.status != 200:
            payload = try_decode_json(reply)
            raise self._error("version", reply, payload, battery_request=False)
        if "html" in reply.content_type.lower():
            raise ProtocolError("FlexConnect version: an HTML page instead of a version")
        try:
            text = reply.body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ProtocolError("FlexConnect version: reply is not UTF-8") from err
        return parse_version(text)


# --------------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------------


class FlexConnectBackend:
    """Battery Bridge backend for the FlexConnect development client (FlexCloudClient).

    One instance talks to one development client and serves every battery id given to it; the API
    cannot list batteries, so the ids come from the user (FlexHome's instructions email).
    """

    kind: ClassVar[BackendKind] = BackendKind.FLEXCONNECT

    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        port: int = 8080,
        *,
        base_url: str | None = None,
        request_timeout: float = 15.0,
        command_timeout_ms: int = 10000,
        max_power_w: int | None = None,
    ) -> None:
        """Store the connection settings; no I/O happens here.

        Args:
            session: The shared aiohttp session (never closed by this client).
            host: Host name or address of the development client.
            port: Its port (the ``PORT`` of its ``.env``; 8080 by default).
            base_url: Overrides ``http://{host}:{port}`` (e.g. behind a reverse proxy).
            request_timeout: Seconds to wait for each HTTP reply.
            command_timeout_ms: ``header.timeoutMs`` sent with every request (how long the client
                waits for the cloud); capped at ``request_timeout`` so the client answers first.
            max_power_w: Optional symmetric setpoint bound in W (the API reports none).
        """
        if base_url is None:
            netloc = f"[{host}]" if ":" in host and not host.startswith("[") else host
            base_url = f"http://{netloc}:{port}"
        self._client = _FlexConnectClient(
            session, base_url.rstrip("/"), request_timeout, command_timeout_ms
        )
        self._max_power_w = max_power_w
        self._version: str | None = None
        self._version_known = False
        # The batteries' first polls run at once: one of them asks for the version, the others wait.
        self._version_lock = asyncio.Lock()
        self._last_setpoint: dict[str, int] = {}

    @property
    def base_url(self) -> str:
        """Return the base URL requests go to (without a trailing slash)."""
        return self._client.base_url

    @property
    def capabilities(self) -> Capabilities:
        """Return what every FlexConnect battery can be told (the API reports no limits)."""
        bound = self._max_power_w
        return Capabilities(
            modes=CAPABILITY_MODES,
            setpoint_modes=frozenset(CAPABILITY_MODES),
            min_power_w=None if bound is None else -bound,
            max_power_w=bound,
            command_timeout_s=None,
            features=_FEATURES,
        )

    # ---- public API ------------------------------------------------------------------------------

    async def async_validate(self) -> None:
        """Check that a FlexConnect development client answers ``GET /version``.

        Raises:
            CannotConnectError: Nothing answered, or it timed out.
            ProtocolError: Something answered that is not a FlexConnect client.
            AuthError: The client reported that the FlexCloud refused its credentials.
        """
        self._version = await self._client.async_fetch_version()
        self._version_known = True

    async def async_list_batteries(self) -> list[BatteryInfo]:
        """Raise NotSupportedError: the FlexConnect API has no list of batteries.

        Raises:
            NotSupportedError: Always; the ids come from FlexHome's instructions email.
        """
        raise NotSupportedError("FlexConnect cannot list batteries; enter their identifiers")

    async def async_get_snapshot(self, battery_id: str) -> BatterySnapshot:
        """Poll the state and the control instructions of one battery.

        Args:
            battery_id: The battery's identifier (SKI).

        Returns:
            State, control, capabilities and the raw replies.

        Raises:
            UnknownBatteryError: The client does not know this battery.
            CannotConnectError: The client (or the cloud behind it) did not answer.
            ProtocolError: A reply was not what the API documents.
            AuthError: The client reported that the FlexCloud refused its credentials.
        """
        wire_id = _normalise_id(battery_id)
        state_reply = await self._client.async_post(STATE_REQUEST, wire_id)
        control_reply = await self._client.async_post(CONTROL_REQUEST, wire_id)
        state = parse_battery_state(state_reply)
        control = parse_control_status(control_reply)
        known = control.desired or control.current
        if known is not None and known.setpoint_w is not None:
            self._last_setpoint[wire_id] = known.setpoint_w
        if not self._version_known:
            await self._async_try_version()
        info = BatteryInfo(
            battery_id=battery_id,
            name=f"FlexConnect {wire_id[-6:]}",
            manufacturer="FlexHome",
            model="FlexConnect battery",
            sw_version=self._version,
        )
        raw: dict[str, Any] = {STATE_REQUEST: state_reply, CONTROL_REQUEST: control_reply}
        if self._version is not None:
            raw["version"] = self._version
        return BatterySnapshot(
            info=info,
            state=state,
            control=control,
            capabilities=self.capabilities,
            raw=raw,
        )

    async def async_apply(self, battery_id: str, command: ControlCommand) -> None:
        """Send a ``BatteryControlModifyRequest`` (mode and setpoint, + = discharge).

        The setpoint travels with every mode. When ``command.setpoint_w`` is None, the last known
        setpoint of this battery is reused (the desired one of the last snapshot or the last
        command), else 0. The battery applies the command later (up to a minute); the next
        snapshot shows it as pending until then.

        Args:
            battery_id: The battery's identifier (SKI).
            command: The mode (power, pcc or auto) and the setpoint in W.

        Raises:
            NotSupportedError: The mode is not a FlexConnect control mode.
            UnknownBatteryError: The client does not know this battery.
            CommandRejectedError: The client refused the command, or it exceeds ``max_power_w``.
            CannotConnectError: The client (or the cloud behind it) did not answer.
            ProtocolError: The reply was not what the API documents.
        """
        mode_number = _MODE_NUMBER.get(command.mode)
        if mode_number is None:
            raise NotSupportedError(f"FlexConnect has no control mode {command.mode.value!r}")
        wire_id = _normalise_id(battery_id)
        setpoint = command.setpoint_w
        if setpoint is None:
            setpoint = self._last_setpoint.get(wire_id, 0)
        if self._max_power_w is not None and abs(setpoint) > self._max_power_w:
            raise CommandRejectedError(f"setpoint {setpoint} W is outside ±{self._max_power_w} W")
        extra = {
            "controlMode": mode_number,
            # FlexConnect: + = charging; ours: + = discharging.
            "setpointPower": encode_scaled_number(-setpoint),
        }
        await self._client.async_post(MODIFY_REQUEST, wire_id, extra)
        self._last_setpoint[wire_id] = setpoint

    # ---- the version, for the device info ----------------------------------------------------

    async def _async_try_version(self) -> None:
        """Fetch the version for the device info; a failure only leaves it unknown."""
        async with self._version_lock:
            if not self._version_known:
                await self._async_fetch_version_once()

    async def _async_fetch_version_once(self) -> None:
        try:
            self._version = await self._client.async_fetch_version()
        except CannotConnectError as err:
            _LOGGER.debug("FlexConnect version not available yet: %s", err)
            return
        except BackendError as err:
            _LOGGER.debug("FlexConnect version unreadable, not asking again: %s", err)
        self._version_known = True


# --------------------------------------------------------------------------------------------------
# The spec (api/registry.py)
# --------------------------------------------------------------------------------------------------

DEFAULT_PORT: Final = 8080


def create_backend(settings: Settings, session: aiohttp.ClientSession) -> FlexConnectBackend:
    """Build the client for config entry settings."""
    return FlexConnectBackend(
        session, settings[SETTING_HOST], settings.get(SETTING_PORT, DEFAULT_PORT)
    )


SPEC: Final = BackendSpec(
    kind=BackendKind.FLEXCONNECT,
    create=create_backend,
    fields=(
        ConfigField(SETTING_HOST, FieldType.HOST),
        ConfigField(SETTING_PORT, FieldType.PORT, default=DEFAULT_PORT),
    ),
    # One FlexCloudClient per address.
    unique_id=lambda settings: f"{settings[SETTING_HOST]}:{settings[SETTING_PORT]}".lower(),
    title=lambda settings: f"FlexConnect {settings[SETTING_HOST]}",
    poll_interval=timedelta(seconds=15),
    min_poll_interval=timedelta(seconds=5),
    pending_poll_interval=timedelta(seconds=5),  # while current != desired
    # A control request carries mode and setpoint together: keep the other one.
    control_policy=ControlPolicy(
        setpoint_mode=None, mode_keeps_setpoint=True, override_modes=SETPOINT_OVERRIDES
    ),
    # The API cannot list batteries: their ids (SKIs, case-insensitive) are typed.
    normalize_battery_id=_normalise_id,
    redact=frozenset({SETTING_HOST}),  # the address (no credential)
)
