"""Enode: batteries of any supported vendor through the Enode cloud API (version 2024-10-01).

OAuth 2.0 client credentials (``_EnodeApi``); reads ``GET /batteries`` and ``GET /batteries/{id}``;
writes an operation mode, which Enode turns into an Action that the snapshots track
(``_ActionTracker``).
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
import logging
import math
import time
from typing import Any, ClassVar, Final
from urllib.parse import quote

import aiohttp

from ._http import (
    MAX_MESSAGE,
    HttpReply,
    decode_json,
    parse_retry_after,
    scrub,
    send,
    try_decode_json,
)
from ._json import parse_rfc3339, type_name
from .backend import BackendSpec, ConfigField, ControlPolicy, FieldType, OverrideMode, Settings
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
    ChargeStatus,
    CommandStatus,
    ControlCommand,
    ControlInstruction,
    ControlMode,
    ControlStatus,
    Feature,
)

_LOGGER = logging.getLogger(__name__)

# Indirection the tests replace to control time.
_monotonic = time.monotonic

ENVIRONMENTS: Final[dict[str, tuple[str, str]]] = {
    # environment: (API base URL, OAuth token URL)
    "production": (
        "https://enode-api.production.enode.io",
        "https://oauth.production.enode.io/oauth2/token",
    ),
    "sandbox": (
        "https://enode-api.sandbox.enode.io",
        "https://oauth.sandbox.enode.io/oauth2/token",
    ),
}
# The API version the parsers follow, sent as Enode-Version on every API request (pinned: the
# client's dashboard default may be another one).
API_VERSION: Final = "2024-10-01"
OPERATION_MODE_SCOPE: Final = "battery:control:operation_mode"
PAGE_SIZE: Final = 50
MAX_PAGES: Final = 1000
DEFAULT_TOKEN_LIFETIME_S: Final = 3599.0  # when the token reply has no expires_in
TOKEN_MARGIN_S: Final = 60.0
_MAX_TOKENS_REMEMBERED: Final = 4

# Enode operationMode <-> ControlMode; UNKNOWN is readable only.
_MODE_BY_WIRE: Final[dict[str, ControlMode]] = {
    "SELF_RELIANCE": ControlMode.SELF_RELIANCE,
    "TIME_OF_USE": ControlMode.TIME_OF_USE,
    "IMPORT_FOCUS": ControlMode.IMPORT_FOCUS,
    "EXPORT_FOCUS": ControlMode.EXPORT_FOCUS,
    "UNKNOWN": ControlMode.UNKNOWN,
}
WIRE_MODES: Final[dict[ControlMode, str]] = {
    ControlMode.SELF_RELIANCE: "SELF_RELIANCE",
    ControlMode.TIME_OF_USE: "TIME_OF_USE",
    ControlMode.IMPORT_FOCUS: "IMPORT_FOCUS",
    ControlMode.EXPORT_FOCUS: "EXPORT_FOCUS",
}
# capabilities.<key> of a battery, in the order the modes are offered
CAPABILITY_KEYS: Final[tuple[tuple[str, ControlMode], ...]] = (
    ("selfReliance", ControlMode.SELF_RELIANCE),
    ("timeOfUse", ControlMode.TIME_OF_USE),
    ("importFocus", ControlMode.IMPORT_FOCUS),
    ("exportFocus", ControlMode.EXPORT_FOCUS),
)
# What every Enode battery reports (its settable modes come from its capabilities object).
_REPORTS: Final = Capabilities(
    features=frozenset(
        {
            Feature.MEASURES_POWER,
            Feature.CHARGE_STATUS,
            Feature.COMMAND_STATUS,
            Feature.REACHABILITY,
            Feature.RESERVE,
        }
    )
)
_CHARGE_STATUS: Final[dict[str, ChargeStatus]] = {
    "CHARGING": ChargeStatus.CHARGING,
    "DISCHARGING": ChargeStatus.DISCHARGING,
    "IDLE": ChargeStatus.IDLE,
    "FAULT": ChargeStatus.FAULT,
    "UNKNOWN": ChargeStatus.UNKNOWN,
}
_ACTION_STATES: Final[dict[str, CommandStatus]] = {
    "PENDING": CommandStatus.PENDING,
    "CONFIRMED": CommandStatus.CONFIRMED,
    "FAILED": CommandStatus.FAILED,
    "CANCELLED": CommandStatus.CANCELLED,
}


# --------------------------------------------------------------------------------------------------
# Parsed objects and pure parsers (arbitrary JSON in, a value or ProtocolError out)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnodeAction:
    """An operation-mode Action (``OperationModeAction``) as Enode reports it."""

    id: str
    state: CommandStatus
    target_id: str | None
    target_mode: ControlMode
    created_at: datetime | None = None
    completed_at: datetime | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class EnodeBattery:
    """A battery object, normalised (``current`` is None while the operation mode is unknown)."""

    info: BatteryInfo
    state: BatteryState
    current: ControlInstruction | None
    capabilities: Capabilities


def _object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProtocolError(f"Enode {field}: expected an object, got {type_name(value)}")
    return value


def _optional_object(parent: Mapping[str, Any], key: str, field: str) -> Mapping[str, Any]:
    """Return ``parent[key]`` as an object; a missing or null member is an empty object."""
    value = parent.get(key)
    return {} if value is None else _object(value, f"{field}.{key}")


def _optional_str(parent: Mapping[str, Any], key: str, field: str) -> str | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"Enode {field}.{key}: expected a string, got {type_name(value)}")
    return value


def _required_str(parent: Mapping[str, Any], key: str, field: str) -> str:
    value = _optional_str(parent, key, field)
    if not value:
        raise ProtocolError(f"Enode {field}.{key}: missing")
    return value


def _optional_bool(parent: Mapping[str, Any], key: str, field: str) -> bool | None:
    value = parent.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise ProtocolError(f"Enode {field}.{key}: expected a boolean, got {type_name(value)}")


def _optional_number(
    parent: Mapping[str, Any], key: str, field: str, factor: float = 1.0
) -> float | None:
    """Return a JSON number times ``factor``; null is None; non-numbers and overflow fail."""
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"Enode {field}.{key}: expected a number, got {type_name(value)}")
    try:
        result = float(value) * factor
    except OverflowError as err:  # an integer beyond the float range
        raise ProtocolError(f"Enode {field}.{key}: out of range") from err
    if not math.isfinite(result):
        raise ProtocolError(f"Enode {field}.{key}: out of range")
    return result + 0.0  # -0.0 -> 0.0


def _optional_time(parent: Mapping[str, Any], key: str, field: str) -> datetime | None:
    """Return an RFC 3339 timestamp in any form (``Z``/``z``/offsets, ``T``/``t``, any fraction).

    One without an offset is read as UTC; anything else is a ``ProtocolError``.
    """
    text = _optional_str(parent, key, field)
    if text is None:
        return None
    try:
        return parse_rfc3339(text)
    except ValueError as err:
        raise ProtocolError(f"Enode {field}.{key}: not an RFC 3339 timestamp") from err


def _mode(value: str | None) -> ControlMode | None:
    """Return the ControlMode of an operationMode; unknown names read as UNKNOWN."""
    if value is None:
        return None
    return _MODE_BY_WIRE.get(value.strip().upper(), ControlMode.UNKNOWN)


def parse_battery(data: object) -> EnodeBattery:
    """Return the normalised battery of an Enode battery object.

    Args:
        data: The decoded JSON of ``GET /batteries/{id}`` (or one item of the list).

    Returns:
        Info, state, the current operation mode and the settable modes. Enode units are kW, kWh
        and percent; ``chargeRate`` is positive while the battery CHARGES, so ``power_w`` is
        ``-chargeRate * 1000``. Every nullable field reads as None. A mode is settable when
        ``capabilities.<mode>.isCapable`` is true and, when the battery lists its ``scopes``, the
        scope ``battery:control:operation_mode`` was granted.

    Raises:
        ProtocolError: The object has no id, or a member has the wrong type.
    """
    battery = _object(data, "battery")
    battery_id = _required_str(battery, "id", "battery")
    information = _optional_object(battery, "information", "battery")
    charge = _optional_object(battery, "chargeState", "battery")
    config = _optional_object(battery, "config", "battery")
    capabilities = _optional_object(battery, "capabilities", "battery")

    brand = _optional_str(information, "brand", "battery.information")
    model = _optional_str(information, "model", "battery.information")
    site = _optional_str(information, "siteName", "battery.information")
    vendor = _optional_str(battery, "vendor", "battery")
    manufacturer = brand or (vendor.title() if vendor else None) or "Enode"
    name = site or " ".join(part for part in (brand, model) if part) or f"Enode {battery_id[:8]}"
    info = BatteryInfo(battery_id=battery_id, name=name, manufacturer=manufacturer, model=model)

    where = "battery.chargeState"
    level = _optional_number(charge, "batteryLevel", where)
    capacity_wh = _optional_number(charge, "batteryCapacity", where, 1000.0)
    rate_w = _optional_number(charge, "chargeRate", where, 1000.0)
    status = _optional_str(charge, "status", where)
    stored_wh = None
    if level is not None and capacity_wh is not None:
        stored_wh = capacity_wh * level / 100
        if not math.isfinite(stored_wh):
            raise ProtocolError("Enode battery.chargeState: stored energy out of range")
    state = BatteryState(
        state_of_charge=level,
        stored_energy_wh=stored_wh,
        usable_capacity_wh=capacity_wh,
        power_w=None if rate_w is None else -rate_w + 0.0,  # Enode: + = charging
        charge_status=(
            None if status is None else _CHARGE_STATUS.get(status.upper(), ChargeStatus.UNKNOWN)
        ),
        reserve_pct=_optional_number(charge, "dischargeLimit", where),
        reachable=_optional_bool(battery, "isReachable", "battery"),
        last_updated=_optional_time(charge, "lastUpdated", where),
    )

    mode = _mode(_optional_str(config, "operationMode", "battery.config"))
    mode_updated = _optional_time(config, "lastUpdated", "battery.config")
    current = None if mode is None else ControlInstruction(mode=mode, timestamp=mode_updated)

    scopes_raw = battery.get("scopes")
    controllable = True
    if scopes_raw is not None:
        if not isinstance(scopes_raw, list) or not all(isinstance(s, str) for s in scopes_raw):
            raise ProtocolError("Enode battery.scopes: expected a list of strings")
        controllable = OPERATION_MODE_SCOPE in scopes_raw
    modes: list[ControlMode] = []
    for key, capability_mode in CAPABILITY_KEYS:
        capability = _optional_object(capabilities, key, "battery.capabilities")
        capable = _optional_bool(capability, "isCapable", f"battery.capabilities.{key}")
        if capable and controllable:
            modes.append(capability_mode)
    return EnodeBattery(
        info=info, state=state, current=current, capabilities=replace(_REPORTS, modes=tuple(modes))
    )


def _failure_reason(value: object) -> str | None:
    """Return ``failureReason`` (``{type, detail}`` or a string) as text; parsed leniently."""
    if value is None:
        return None
    if isinstance(value, str):
        return value[:MAX_MESSAGE] or None
    reason = _object(value, "action.failureReason")
    kind = _optional_str(reason, "type", "action.failureReason")
    detail = _optional_str(reason, "detail", "action.failureReason")
    text = ": ".join(part for part in (kind, detail) if part)
    return text[:MAX_MESSAGE] or None


def parse_action(data: object) -> EnodeAction:
    """Return the Action of an ``OperationModeAction`` object.

    Args:
        data: The decoded JSON of an Action (as created or as got).

    Returns:
        The action; a missing or unknown target mode reads as ``ControlMode.UNKNOWN``.

    Raises:
        ProtocolError: No id, an unknown state, or a member of the wrong type.
    """
    action = _object(data, "action")
    action_id = _required_str(action, "id", "action")
    state_text = _required_str(action, "state", "action")
    state = _ACTION_STATES.get(state_text.upper())
    if state is None:
        raise ProtocolError("Enode action.state: not an action state")
    target_state = _optional_object(action, "targetState", "action")
    target = _mode(_optional_str(target_state, "operationMode", "action.targetState"))
    return EnodeAction(
        id=action_id,
        state=state,
        target_id=_optional_str(action, "targetId", "action"),
        target_mode=ControlMode.UNKNOWN if target is None else target,
        created_at=_optional_time(action, "createdAt", "action"),
        completed_at=_optional_time(action, "completedAt", "action"),
        failure_reason=_failure_reason(action.get("failureReason")),
    )


def _problem_message(payload: object) -> str:
    """Return the ``detail`` (else ``title``) of a problem document, or ''."""
    if not isinstance(payload, Mapping):
        return ""
    for key in ("detail", "title", "error_description", "error"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


# --------------------------------------------------------------------------------------------------
# The authorised request sender (OAuth token cache, error classification)
# --------------------------------------------------------------------------------------------------


class _Target(Enum):
    """What a request is about (decides what a 404 means)."""

    LIST = "list"
    BATTERY = "battery"
    ACTION = "action"


class _EnodeApi:
    """Sends API requests with a cached client-credentials token and maps failed replies to errors.

    ``POST <token URL>`` with HTTP Basic ``client_id:client_secret`` and the form
    ``grant_type=client_credentials`` returns ``{access_token, expires_in, token_type: "bearer"}``.
    Error replies are problem documents (``type``, ``title``, ``detail``); messages never contain
    the client secret, an access token or an Authorization header (texts are scrubbed).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client_id: str,
        client_secret: str,
        *,
        api_url: str,
        token_url: str,
        request_timeout: float,
    ) -> None:
        self._session = session
        self.api_url = api_url
        self.token_url = token_url
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        self._basic = f"Basic {basic}"
        self._request_timeout = request_timeout
        self._token_lock = asyncio.Lock()
        self._token: str | None = None
        self._token_expires = 0.0
        self._secrets: tuple[str, ...] = tuple(s for s in (client_secret, basic) if s)
        self._tokens: deque[str] = deque(maxlen=_MAX_TOKENS_REMEMBERED)

    def forget_token(self) -> None:
        """Drop the cached token: the next request fetches a new one."""
        self._token = None

    async def async_request(
        self,
        method: str,
        path: str,
        what: str,
        target: _Target,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: object = None,
    ) -> object:
        """Send an API request with the bearer token and return the JSON of its 200 reply.

        Empty, HTML, non-JSON and over-1-MiB bodies are a ``ProtocolError``. A 401 drops the
        token and the request is retried once with a new one. Every request
        carries ``Enode-Version`` (``API_VERSION``), so the client's default version (set in the
        Enode dashboard) does not matter.
        """
        url = f"{self.api_url}{path}"

        async def send_with(token: str) -> HttpReply:
            return await self._async_send(
                method,
                url,
                what,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json",
                    "Enode-Version": API_VERSION,
                },
                params=params,
                json_body=json_body,
            )

        token = await self._async_token()
        reply = await send_with(token)
        if reply.status == 401:
            _LOGGER.debug("Enode %s: token refused, fetching a new one", what)
            if self._token == token:
                self._token = None
            reply = await send_with(await self._async_token())
        if reply.status != 200:
            raise self._error(reply, what, target, command=method == "POST")
        return decode_json(reply, f"Enode {what}")

    def _scrub(self, text: str) -> str:
        """Return a server text cut short, without secrets or tokens."""
        return scrub(text, (*self._secrets, *self._tokens))

    async def _async_send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str | int] | None = None,
        json_body: object = None,
        form: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """Send one request and return its status, body, content type and Retry-After."""
        return await send(
            self._session,
            method,
            url,
            f"Enode {what}",
            request_timeout=self._request_timeout,
            headers=headers,
            params=params,
            json=json_body,
            data=form,
        )

    def _error(self, reply: HttpReply, what: str, target: _Target, command: bool) -> BackendError:
        """Return the error of a reply with an unexpected status (``command``: a refused write).

        401/403 -> auth; 404 -> unknown battery, unknown action or no Enode API here (by
        ``target``); 429 -> rate limited with ``Retry-After``; 408 and 5xx -> cannot connect; other
        4xx of a write -> rejected; the rest (HTML, not a problem document) -> protocol error.
        """
        payload = try_decode_json(reply)
        message = self._scrub(_problem_message(payload))
        status = reply.status
        described = f"Enode {what}: HTTP {status}{f': {message}' if message else ''}"
        if status in (401, 403):
            return AuthError(described)
        if status == 404:
            if target is _Target.BATTERY:
                return UnknownBatteryError(f"{described} (unknown battery)")
            if target is _Target.ACTION:
                return NotSupportedError(f"{described} (unknown action)")
            return ProtocolError(f"{described} (is this the Enode API URL?)")
        if status == 429:
            return RateLimitedError(described, parse_retry_after(reply.retry_after))
        if status == 408 or status >= 500:
            return CannotConnectError(described)
        if payload is None and not reply.is_empty:
            described += " (not a problem document)"
        if command and 400 <= status < 500:
            return CommandRejectedError(described)
        return ProtocolError(described)

    async def _async_token(self) -> str:
        """Return a cached access token, fetching a new one when it is (nearly) expired.

        The token is kept until 60 s (or 10 % of its lifetime, whichever is less) before it
        expires; fetches are serialised with a lock. A 400/401/403 of the token endpoint is an
        ``AuthError``.
        """
        async with self._token_lock:
            if self._token is not None and _monotonic() < self._token_expires:
                return self._token
            self._token = None
            requested = _monotonic()
            reply = await self._async_send(
                "POST",
                self.token_url,
                "token",
                headers={"Authorization": self._basic, "Accept": "application/json"},
                form={"grant_type": "client_credentials"},
            )
            if reply.status in (400, 401, 403):
                message = self._scrub(_problem_message(try_decode_json(reply)))
                raise AuthError(
                    f"Enode rejected the client credentials (HTTP {reply.status}"
                    f"{f': {message}' if message else ''})"
                )
            if reply.status != 200:
                raise self._error(reply, "token", _Target.LIST, command=False)
            token, lifetime = _parse_token(decode_json(reply, "Enode token"))
            self._tokens.append(token)
            self._token = token
            self._token_expires = requested + lifetime - min(TOKEN_MARGIN_S, lifetime * 0.1)
            return token


def _parse_token(payload: object) -> tuple[str, float]:
    """Return the access token and its lifetime in seconds of a token reply."""
    body = _object(payload, "token")
    token = body.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise ProtocolError("Enode token: no access_token in the reply")
    token_type = body.get("token_type")
    if token_type is not None and (
        not isinstance(token_type, str) or token_type.lower() != "bearer"
    ):
        raise ProtocolError("Enode token: token_type is not bearer")
    lifetime = _optional_number(body, "expires_in", "token")
    if lifetime is None:
        lifetime = DEFAULT_TOKEN_LIFETIME_S
    if lifetime <= 0:
        raise ProtocolError("Enode token: expires_in is not positive")
    return token, lifetime


# --------------------------------------------------------------------------------------------------
# Action tracking
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tracked:
    action: EnodeAction
    raw: object


class _ActionTracker:
    """The last Action this client created per battery, with its raw reply, as last seen.

    A new Action replaces the tracked one (Enode cancels the previous one itself). Snapshots poll
    a tracked Action while it is PENDING and afterwards keep reporting its final state (CONFIRMED,
    FAILED or CANCELLED) without polling it again.
    """

    def __init__(self) -> None:
        self._tracked: dict[str, _Tracked] = {}

    def get(self, battery_id: str) -> _Tracked | None:
        """Return what is tracked for a battery."""
        return self._tracked.get(battery_id)

    def track(self, battery_id: str, action: EnodeAction, raw: object) -> None:
        """Track a new Action of a battery (replacing the previous one)."""
        self._tracked[battery_id] = _Tracked(action, raw)

    def update(self, action: EnodeAction, raw: object) -> None:
        """Record a newer state of an Action wherever it is tracked."""
        for battery_id, tracked in list(self._tracked.items()):
            if tracked.action.id == action.id:
                self._tracked[battery_id] = _Tracked(action, raw)

    def forget(self, battery_id: str) -> None:
        """Stop tracking a battery's Action (Enode no longer knows it)."""
        self._tracked.pop(battery_id, None)

    def control(self, current: ControlInstruction | None, battery_id: str) -> ControlStatus:
        """Return the control status of a battery: its current mode and the tracked Action.

        ``desired`` is the Action's target only while it is PENDING, because the controller builds
        new commands on ``desired``; a FAILED or CANCELLED target never took effect.
        """
        tracked = self._tracked.get(battery_id)
        if tracked is None:
            return ControlStatus(current=current)
        action = tracked.action
        desired = None
        if action.state is CommandStatus.PENDING:
            desired = ControlInstruction(mode=action.target_mode, timestamp=action.created_at)
        return ControlStatus(
            current=current, desired=desired, command_status=action.state, command_id=action.id
        )


# --------------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------------


class EnodeBackend:
    """One Enode API client (client credentials), serving every battery linked to it."""

    kind: ClassVar[BackendKind] = BackendKind.ENODE

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client_id: str,
        client_secret: str,
        *,
        environment: str = "production",
        api_url: str | None = None,
        token_url: str | None = None,
        request_timeout: float = 15.0,
    ) -> None:
        """Store the settings; no I/O happens here.

        Args:
            session: The shared aiohttp session (never closed here).
            client_id: The Enode API client id.
            client_secret: Its secret.
            environment: "production" or "sandbox" (selects the default URLs).
            api_url: Overrides the environment's API base URL.
            token_url: Overrides the environment's OAuth token URL.
            request_timeout: Seconds per HTTP request.

        Raises:
            ValueError: The environment is not "production" or "sandbox".
        """
        if environment not in ENVIRONMENTS:
            raise ValueError(f"unknown Enode environment {environment!r}")
        default_api, default_token = ENVIRONMENTS[environment]
        self._environment = environment
        self._api = _EnodeApi(
            session,
            client_id,
            client_secret,
            api_url=(api_url or default_api).rstrip("/"),
            token_url=(token_url or default_token).rstrip("/"),
            request_timeout=request_timeout,
        )
        self._actions = _ActionTracker()
        # Action ids of an earlier run, per battery, read again by the next snapshot.
        self._resume: dict[str, str] = {}
        # The last battery object parsed per battery (a snapshot or the list): its capabilities
        # decide whether a mode can be written.
        self._batteries: dict[str, EnodeBattery] = {}

    @property
    def environment(self) -> str:
        """Return the environment ("production" or "sandbox")."""
        return self._environment

    @property
    def api_url(self) -> str:
        """Return the API base URL (without a trailing slash)."""
        return self._api.api_url

    @property
    def token_url(self) -> str:
        """Return the OAuth token URL."""
        return self._api.token_url

    # ---- public API ------------------------------------------------------------------------------

    async def async_validate(self) -> None:
        """Fetch a token and list one battery.

        Raises:
            AuthError: The client credentials were rejected.
            CannotConnectError: Enode could not be reached.
            ProtocolError: The reply was not an Enode battery list.
        """
        self._api.forget_token()
        await self._async_list_page({"pageSize": 1})

    async def async_list_batteries(self) -> list[BatteryInfo]:
        """Return every battery of the client (all pages of ``GET /batteries``).

        The opaque cursor ``pagination.after`` is followed until null; a repeated cursor is a
        ``ProtocolError`` (and so are more than ``MAX_PAGES`` pages).

        Raises:
            AuthError: The credentials or the token were rejected.
            CannotConnectError: Enode could not be reached.
            ProtocolError: A page was not what the API documents, or the cursors loop.
        """
        infos: list[BatteryInfo] = []
        seen: set[str] = set()
        params: dict[str, str | int] = {"pageSize": PAGE_SIZE}
        for _ in range(MAX_PAGES):
            batteries, after = await self._async_list_page(params)
            for battery in batteries:
                self._batteries[battery.info.battery_id] = battery
                infos.append(battery.info)
            if after is None:
                return infos
            if after in seen:
                raise ProtocolError("Enode list batteries: the pagination cursor repeats")
            seen.add(after)
            params = {"pageSize": PAGE_SIZE, "after": after}
        raise ProtocolError(f"Enode list batteries: more than {MAX_PAGES} pages")

    async def async_get_snapshot(self, battery_id: str) -> BatterySnapshot:
        """Poll one battery and, while it is PENDING, the Action last created for it.

        Args:
            battery_id: The Enode battery id.

        Returns:
            Info, state, control (current mode, pending target, command status), capabilities
            and the raw replies (``battery``, ``action``).

        Raises:
            UnknownBatteryError: Enode does not know this battery.
            AuthError: The credentials or the token were rejected.
            CannotConnectError: Enode could not be reached.
            ProtocolError: A reply was not what the API documents.
        """
        raw_battery = await self._async_get_battery_raw(battery_id)
        battery = parse_battery(raw_battery)
        self._batteries[battery_id] = battery
        await self._async_resume(battery_id)
        tracked = self._actions.get(battery_id)
        if tracked is not None and tracked.action.state is CommandStatus.PENDING:
            try:
                await self.async_get_action(tracked.action.id)
            except NotSupportedError:
                _LOGGER.debug("Enode forgot action %s; no longer tracked", tracked.action.id)
                self._actions.forget(battery_id)
            tracked = self._actions.get(battery_id)
        raw: dict[str, Any] = {"battery": raw_battery}
        if tracked is not None:
            raw["action"] = tracked.raw
        return BatterySnapshot(
            info=battery.info,
            state=battery.state,
            control=self._actions.control(battery.current, battery_id),
            capabilities=battery.capabilities,
            raw=raw,
        )

    async def async_apply(self, battery_id: str, command: ControlCommand) -> None:
        """Request an operation mode; Enode creates an Action, tracked by the next snapshots.

        ``POST /batteries/{id}/operation-mode {"operationMode": ...}``: Enode retries the Action
        until the battery reports the mode (or times out). The mode is first checked against the
        capabilities of the last battery object this client parsed; without one it GETs the
        battery.

        Args:
            battery_id: The Enode battery id.
            command: One of the four operation modes, without a setpoint.

        Raises:
            NotSupportedError: Not an operation mode, a setpoint, or a mode the battery cannot take.
            UnknownBatteryError: Enode does not know this battery.
            CommandRejectedError: Enode refused the request (its problem detail is the message).
            AuthError: The credentials or the token were rejected.
            CannotConnectError: Enode could not be reached.
            ProtocolError: The reply was not an Action.
        """
        wire_mode = WIRE_MODES.get(command.mode)
        if wire_mode is None:
            raise NotSupportedError(f"Enode has no operation mode {command.mode.value!r}")
        if command.setpoint_w is not None:
            raise NotSupportedError("Enode operation modes take no power setpoint")
        battery = self._batteries.get(battery_id)
        if battery is None:
            battery = parse_battery(await self._async_get_battery_raw(battery_id))
            self._batteries[battery_id] = battery
        if command.mode not in battery.capabilities.modes:
            raise NotSupportedError(
                f"Enode battery {battery_id} cannot be set to {command.mode.value!r} "
                "(not capable, or the operation-mode scope is missing)"
            )
        payload = await self._api.async_request(
            "POST",
            f"/batteries/{_quote(battery_id)}/operation-mode",
            "set operation mode",
            _Target.BATTERY,
            json_body={"operationMode": wire_mode},
        )
        self._actions.track(battery_id, parse_action(payload), payload)

    async def async_get_action(self, action_id: str) -> EnodeAction:
        """Return an Action (``GET /batteries/actions/{id}``); updates a tracked one.

        Raises:
            NotSupportedError: Enode does not know this action.
            AuthError: The credentials or the token were rejected.
            CannotConnectError: Enode could not be reached.
            ProtocolError: The reply was not an Action.
        """
        action, payload = await self._async_fetch_action(action_id)
        self._actions.update(action, payload)
        return action

    async def _async_fetch_action(self, action_id: str) -> tuple[EnodeAction, object]:
        payload = await self._api.async_request(
            "GET", f"/batteries/actions/{_quote(action_id)}", "get action", _Target.ACTION
        )
        return parse_action(payload), payload

    def resume_command(self, battery_id: str, command_id: str) -> None:
        """Track again an Action an earlier run created; the battery's next snapshot reads it.

        Ignored there when this client tracks an Action for the battery by then (a newer one).
        """
        self._resume[battery_id] = command_id

    async def _async_resume(self, battery_id: str) -> None:
        """Read the Action handed to ``resume_command`` and track it, once.

        An Action Enode no longer knows, or one of another battery, is dropped; a connection or
        auth error keeps it for the next snapshot.
        """
        action_id = self._resume.get(battery_id)
        if action_id is None:
            return
        if self._actions.get(battery_id) is None:
            try:
                action, payload = await self._async_fetch_action(action_id)
            except (NotSupportedError, ProtocolError, UnknownBatteryError) as err:
                _LOGGER.debug("Enode action %s of an earlier run not resumed: %s", action_id, err)
            else:
                if action.target_id in (None, battery_id):
                    self._actions.track(battery_id, action, payload)
        del self._resume[battery_id]

    def tracked_action(self, battery_id: str) -> EnodeAction | None:
        """Return the last Action this client created for a battery, as last seen."""
        tracked = self._actions.get(battery_id)
        return None if tracked is None else tracked.action

    # ---- helpers ---------------------------------------------------------------------------------

    async def _async_get_battery_raw(self, battery_id: str) -> object:
        return await self._api.async_request(
            "GET", f"/batteries/{_quote(battery_id)}", "get battery", _Target.BATTERY
        )

    async def _async_list_page(
        self, params: Mapping[str, str | int]
    ) -> tuple[list[EnodeBattery], str | None]:
        """Return one page of ``GET /batteries`` (``pageSize``, cursor ``after``) and the next cursor."""
        payload = await self._api.async_request(
            "GET", "/batteries", "list batteries", _Target.LIST, params=params
        )
        page = _object(payload, "battery list")
        data = page.get("data")
        if not isinstance(data, list):
            raise ProtocolError(f"Enode battery list.data: expected a list, got {type_name(data)}")
        pagination = _optional_object(page, "pagination", "battery list")
        after = _optional_str(pagination, "after", "battery list.pagination")
        return [parse_battery(item) for item in data], after or None


def _quote(identifier: str) -> str:
    """Return an id quoted for a URL path; an empty one is an unknown battery."""
    if not identifier:
        raise UnknownBatteryError("Enode: empty identifier")
    return quote(identifier, safe="")


# --------------------------------------------------------------------------------------------------
# The spec (api/registry.py)
# --------------------------------------------------------------------------------------------------

SETTING_CLIENT_ID: Final = "client_id"
SETTING_CLIENT_SECRET: Final = "client_secret"  # noqa: S105 - a key name
SETTING_ENVIRONMENT: Final = "environment"
SETTING_API_URL: Final = "api_url"
SETTING_TOKEN_URL: Final = "token_url"  # noqa: S105 - a key name


def create_backend(settings: Settings, session: aiohttp.ClientSession) -> EnodeBackend:
    """Build the client for config entry settings."""
    return EnodeBackend(
        session,
        settings[SETTING_CLIENT_ID],
        settings[SETTING_CLIENT_SECRET],
        environment=settings[SETTING_ENVIRONMENT],
        api_url=settings.get(SETTING_API_URL) or None,
        token_url=settings.get(SETTING_TOKEN_URL) or None,
    )


def _unique_id(settings: Settings) -> str:
    # A custom API URL (the demo and the tests use a simulator) stands for the environment.
    scope = settings.get(SETTING_API_URL) or settings[SETTING_ENVIRONMENT]
    return f"{scope}:{settings[SETTING_CLIENT_ID]}"


SPEC: Final = BackendSpec(
    kind=BackendKind.ENODE,
    create=create_backend,
    fields=(
        ConfigField(SETTING_CLIENT_ID, reconfigurable=False),
        ConfigField(SETTING_CLIENT_SECRET, FieldType.PASSWORD, secret=True, reconfigurable=False),
        ConfigField(
            SETTING_ENVIRONMENT,
            FieldType.CHOICE,
            default="production",
            choices=tuple(ENVIRONMENTS),
        ),
        ConfigField(SETTING_API_URL, FieldType.URL, required=False, advanced=True),
        ConfigField(SETTING_TOKEN_URL, FieldType.URL, required=False, advanced=True),
    ),
    unique_id=_unique_id,
    title=lambda settings: f"Enode ({settings[SETTING_ENVIRONMENT]})",
    poll_interval=timedelta(seconds=60),
    min_poll_interval=timedelta(seconds=60),
    pending_poll_interval=timedelta(seconds=15),  # while the Action is PENDING
    # Operation modes take no setpoint; nothing holds the battery idle.
    control_policy=ControlPolicy(
        setpoint_mode=None,
        mode_keeps_setpoint=False,
        override_modes={
            OverrideMode.CHARGE: ControlMode.IMPORT_FOCUS,
            OverrideMode.DISCHARGE: ControlMode.EXPORT_FOCUS,
        },
    ),
    lists_batteries=True,
    redact=frozenset(
        # the credentials; in raw data, who owns the battery and where it is
        {SETTING_CLIENT_ID, SETTING_CLIENT_SECRET, "userId", "user_id", "latitude", "longitude"}
    ),
)
