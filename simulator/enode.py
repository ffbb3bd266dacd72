"""Enode API simulator (batteries, version 2024-10-01), with its OAuth token endpoint.

The routes are in :func:`create_app`; :class:`EnodeSimulator` holds the state and the test hooks.
Errors are problem documents ``{type, title, detail}``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
from collections.abc import Callable, Iterable
import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import hmac
import json
import secrets
import time
from typing import Any
import uuid

from aiohttp import web

from .faults import Handler, new_app, take_next

DEFAULT_PORT = 8083
USER_ID = "4f6fecd0-bdae-49be-b6e8-ee442e1e3da9"
POWERWALL_ID = "54d827e1-8355-4fed-97b5-55940d1d09ba"
ENPHASE_ID = "8a1f0c3e-2b7d-4c59-9e61-3f2d7a9b1c44"
MODES = ("IMPORT_FOCUS", "EXPORT_FOCUS", "TIME_OF_USE", "SELF_RELIANCE")
CAPABILITY_OF_MODE = {
    "IMPORT_FOCUS": "importFocus",
    "EXPORT_FOCUS": "exportFocus",
    "TIME_OF_USE": "timeOfUse",
    "SELF_RELIANCE": "selfReliance",
}
DEFAULT_SCOPES = ("battery:control:operation_mode", "battery:read:data", "battery:read:location")
MAX_PAGE_SIZE = 100
PROBLEMS = "https://developers.enode.com/api/problems/"
# Accepted in Enode-Version (the replies are always 2024-10-01's); without the header the client's
# default version applies.
API_VERSIONS = ("2023-02-01", "2023-04-15", "2023-08-01", "2024-01-01", "2024-10-01")
FOCUS_RATE_KW = 3.0  # how fast the focus modes charge / discharge
RATE_TIME_CONSTANT_S = 60.0  # how fast chargeRate follows the mode


def iso(moment: datetime) -> str:
    """Return a UTC time as Enode writes it (``2024-10-07T17:05:00Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_battery(
    battery_id: str,
    *,
    vendor: str = "TESLA",
    brand: str = "Tesla",
    model: str = "Powerwall",
    site_name: str = "Powerwall Home",
    capacity_kwh: float | None = 13.5,
    level: float | None = 80.0,
    charge_rate_kw: float | None = 0.0,
    discharge_limit: float | None = 20.0,
    operation_mode: str | None = "SELF_RELIANCE",
    capable: Iterable[str] = MODES,
    scopes: Iterable[str] | None = DEFAULT_SCOPES,
    reachable: bool = True,
    updated: str = "2024-10-07T17:03:26Z",
) -> dict[str, Any]:
    """Return an Enode battery object (the shape of ``GET /batteries/{id}``)."""
    capable_modes = set(capable)
    status = "IDLE"
    if charge_rate_kw is not None and charge_rate_kw > 0:
        status = "CHARGING"
    elif charge_rate_kw is not None and charge_rate_kw < 0:
        status = "DISCHARGING"
    battery: dict[str, Any] = {
        "id": battery_id,
        "userId": USER_ID,
        "vendor": vendor,
        "lastSeen": updated,
        "isReachable": reachable,
        "chargeState": {
            "status": status,
            "batteryCapacity": capacity_kwh,
            "batteryLevel": level,
            "chargeRate": charge_rate_kw,
            "dischargeLimit": discharge_limit,
            "lastUpdated": updated,
        },
        "config": {"operationMode": operation_mode, "lastUpdated": updated},
        "information": {
            "id": f"{vendor.lower()}-{battery_id[:8]}",
            "brand": brand,
            "model": model,
            "siteName": site_name,
            "installationDate": "2020-04-07T17:04:26Z",
        },
        "location": {
            "id": "8d90101b-3f2f-462a-bbb4-1ed320d33bbe",
            "longitude": 10.7197486,
            "latitude": 59.9173985,
            "lastUpdated": updated,
        },
        "capabilities": {
            key: {
                "isCapable": mode in capable_modes,
                "interventionIds": [] if mode in capable_modes else [str(uuid.uuid4())],
            }
            for mode, key in CAPABILITY_OF_MODE.items()
        },
    }
    if scopes is not None:
        battery["scopes"] = list(scopes)
    return battery


def demo_batteries() -> list[dict[str, Any]]:
    """Return the two demo batteries: a Powerwall (no SELF_RELIANCE) and an Enphase IQ."""
    return [
        make_battery(
            POWERWALL_ID,
            level=80.0,
            charge_rate_kw=4.6,
            operation_mode="IMPORT_FOCUS",
            capable=("IMPORT_FOCUS", "EXPORT_FOCUS", "TIME_OF_USE"),
        ),
        make_battery(
            ENPHASE_ID,
            vendor="ENPHASE",
            brand="Enphase",
            model="IQ 5P",
            site_name="Enphase IQ",
            capacity_kwh=5.0,
            level=35.0,
            charge_rate_kw=0.0,
            discharge_limit=10.0,
            operation_mode="SELF_RELIANCE",
        ),
    ]


@dataclass(slots=True)
class Canned:
    """A fixed reply for the next request(s) whose path starts with ``path``."""

    path: str
    status: int = 200
    body: object = None  # JSON; None with raw None: an empty body
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    count: int = 1


@dataclass
class EnodeSimulator:
    """The state of the simulated Enode client: tokens, batteries, actions and the test hooks.

    An Action goes PENDING -> CONFIRMED ``action_delay`` seconds after it was created, and the
    battery's ``config.operationMode`` changes then; a new Action for the same battery cancels the
    pending one. The charge state moves lazily (evaluated on each request): IMPORT_FOCUS charges,
    EXPORT_FOCUS discharges down to the ``dischargeLimit``, the other modes drift toward zero power.

    Test hooks: ``batteries`` (Enode battery objects, change any field), ``fail_next_action``,
    ``expire_tokens()``, ``canned`` (fixed replies for the next requests to a path), ``physics``
    (False freezes the charge state), ``api_versions`` (the ``Enode-Version`` of every API
    request, None when missing); ``app[FAULTS]`` injects transport faults.
    """

    client_id: str = "demo-client"
    client_secret: str = "demo-secret"  # noqa: S105 - the simulator's demo credentials
    token_ttl: float = 3600.0
    action_delay: float = 5.0
    page_size: int = 50
    clock: Callable[[], float] = time.monotonic
    speed: float = 1.0
    physics: bool = True
    batteries: dict[str, dict[str, Any]] = field(default_factory=dict)
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> clock time it expires
    fail_next_action: bool = False
    canned: list[Canned] = field(default_factory=list)
    received: list[tuple[str, str, object]] = field(default_factory=list)  # method, path, body
    token_requests: int = 0
    api_versions: list[str | None] = field(default_factory=list)  # Enode-Version per API request
    _due: dict[str, float] = field(default_factory=dict)  # pending action id -> due clock time
    _failing: set[str] = field(default_factory=set)
    _ticks: dict[str, float] = field(default_factory=dict)  # battery id -> last physics time
    _wall_start: datetime = field(default_factory=lambda: datetime.now(UTC))
    _clock_start: float = 0.0

    def __post_init__(self) -> None:
        """Anchor the wall-clock timestamps to the simulator's clock."""
        self._clock_start = self.clock()

    def now_iso(self, at: float | None = None) -> str:
        """Return the wall time of clock time ``at`` (default: now) in Enode's format."""
        moment = self.clock() if at is None else at
        return iso(self._wall_start + timedelta(seconds=moment - self._clock_start))

    def add_battery(self, battery: dict[str, Any]) -> None:
        """Add (or replace) a battery object."""
        self.batteries[battery["id"]] = battery
        self._ticks[battery["id"]] = self.clock()

    # ---- tokens ----------------------------------------------------------------------------------

    def issue_token(self) -> str:
        """Return a new access token, valid for ``token_ttl`` seconds."""
        token = secrets.token_urlsafe(24)
        self.tokens[token] = self.clock() + self.token_ttl
        self.token_requests += 1
        return token

    def token_valid(self, token: str) -> bool:
        """Return True for a token issued here and not expired yet."""
        expires = self.tokens.get(token)
        return expires is not None and self.clock() < expires

    def expire_tokens(self) -> None:
        """Test hook: every token issued so far stops working."""
        self.tokens.clear()

    # ---- actions and physics ---------------------------------------------------------------------

    def advance(self) -> None:
        """Bring everything up to the clock: resolve due actions, move the charge states."""
        now = self.clock()
        for action_id, due in sorted(self._due.items(), key=lambda item: item[1]):
            if due > now:
                continue
            del self._due[action_id]
            action = self.actions[action_id]
            battery = self.batteries.get(action["targetId"])
            if battery is not None:
                self._tick(battery, due)
            failed = action_id in self._failing
            self._failing.discard(action_id)
            action["state"] = "FAILED" if failed else "CONFIRMED"
            action["completedAt"] = action["updatedAt"] = self.now_iso(due)
            if battery is not None and not failed:
                battery["config"]["operationMode"] = action["targetState"]["operationMode"]
                battery["config"]["lastUpdated"] = self.now_iso(due)
        for battery in self.batteries.values():
            self._tick(battery, now)

    def _tick(self, battery: dict[str, Any], until: float) -> None:
        """Move one battery's charge state from its last tick to ``until``."""
        last = self._ticks.get(battery["id"], until)
        self._ticks[battery["id"]] = max(last, until)
        seconds = (until - last) * self.speed
        charge = battery.get("chargeState")
        if not self.physics or seconds <= 0 or not isinstance(charge, dict):
            return
        values: list[float] = []
        for key in ("batteryLevel", "batteryCapacity", "chargeRate"):
            value = charge.get(key)
            if not isinstance(value, int | float) or isinstance(value, bool):
                return
            values.append(float(value))
        level, capacity, rate = values
        if capacity <= 0:
            return
        mode = battery.get("config", {}).get("operationMode")
        reserve = charge.get("dischargeLimit") or 0.0
        target = 0.0
        if mode == "IMPORT_FOCUS" and level < 100:
            target = FOCUS_RATE_KW
        elif mode == "EXPORT_FOCUS" and level > reserve:
            target = -FOCUS_RATE_KW
        rate += (target - rate) * min(1.0, seconds / RATE_TIME_CONSTANT_S)
        level += rate * seconds / 3600 / capacity * 100
        if level >= 100 or (level <= reserve and rate < 0):
            rate = 0.0
        level = max(0.0, min(100.0, level))
        rate = round(rate, 3)
        charge["batteryLevel"] = round(level, 2)
        charge["chargeRate"] = rate
        charge["status"] = "CHARGING" if rate > 0.01 else "DISCHARGING" if rate < -0.01 else "IDLE"
        charge["lastUpdated"] = battery["lastSeen"] = self.now_iso(until)

    def create_action(self, battery: dict[str, Any], mode: str) -> dict[str, Any]:
        """Create a PENDING action; a pending one for the same battery is CANCELLED."""
        stamp = self.now_iso()
        for action_id in list(self._due):
            previous = self.actions[action_id]
            if previous["targetId"] == battery["id"]:
                self.cancel(previous)
        action = {
            "id": str(uuid.uuid4()),
            "userId": battery.get("userId", USER_ID),
            "createdAt": stamp,
            "updatedAt": stamp,
            "completedAt": None,
            "state": "PENDING",
            "targetId": battery["id"],
            "targetType": "battery",
            "targetState": {"operationMode": mode},
        }
        self.actions[action["id"]] = action
        self._due[action["id"]] = self.clock() + self.action_delay
        if self.fail_next_action:
            self.fail_next_action = False
            self._failing.add(action["id"])
        return action

    def cancel(self, action: dict[str, Any]) -> None:
        """Cancel a pending action."""
        self._due.pop(action["id"], None)
        self._failing.discard(action["id"])
        action["state"] = "CANCELLED"
        action["completedAt"] = action["updatedAt"] = self.now_iso()

    def take_canned(self, path: str) -> Canned | None:
        """Return the canned reply for ``path``, if one is queued."""
        return take_next(self.canned, path)


SIM = web.AppKey("enode_sim", EnodeSimulator)


def _problem_body(kind: str, title: str, detail: str) -> dict[str, str]:
    return {"type": f"{PROBLEMS}{kind}", "title": title, "detail": detail}


def problem(status: int, kind: str, title: str, detail: str) -> web.Response:
    """Return a problem document (``application/json``, as Enode's SDK expects)."""
    return web.json_response(_problem_body(kind, title, detail), status=status)


def _find(
    request: web.Request, table: dict[str, dict[str, Any]], key: str, what: str
) -> tuple[str, dict[str, Any]]:
    """Return the id in the path (``key``) and its object; a 404 problem when there is none."""
    identifier = request.match_info[key]
    found = table.get(identifier)
    if found is None:
        detail = f"Could not find {what} with ID {identifier}"
        raise web.HTTPNotFound(
            text=json.dumps(_problem_body("not-found", f"{what} not found", detail)),
            content_type="application/json",
        )
    return identifier, found


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except binascii.Error, UnicodeDecodeError, ValueError:
        return None
    prefix, _, number = text.partition(":")
    if prefix != "offset" or not number.isdigit():
        return None
    return int(number)


@web.middleware
async def _api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record the request, answer canned replies, check the bearer token, advance the clock."""
    sim = request.app[SIM]
    body: object = None
    if request.can_read_body:
        text = await request.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
    sim.received.append((request.method, request.path, body))
    canned = sim.take_canned(request.path)
    if canned is not None:
        if canned.raw is None and canned.body is not None:
            return web.json_response(
                canned.body,
                status=canned.status,
                headers=canned.headers,
                content_type=canned.content_type,
            )
        return web.Response(
            status=canned.status,
            body=canned.raw or b"",
            content_type=canned.content_type,
            headers=canned.headers,
        )
    if request.path != "/oauth2/token":
        version = request.headers.get("Enode-Version")
        sim.api_versions.append(version)
        if version is not None and version not in API_VERSIONS:
            return problem(
                400,
                "invalid-version",
                "Invalid API version",
                f"Enode-Version must be one of {', '.join(API_VERSIONS)}",
            )
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not sim.token_valid(token.strip()):
            return problem(
                401, "unauthorized", "Unauthorized", "Missing, expired or unknown access token"
            )
        sim.advance()
    return await handler(request)


async def handle_token(request: web.Request) -> web.Response:
    """``POST /oauth2/token``: client credentials in HTTP Basic, form grant_type."""
    sim = request.app[SIM]
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    client_id = client_secret = ""
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except binascii.Error, UnicodeDecodeError:
            decoded = ""
        client_id, _, client_secret = decoded.partition(":")
    valid = hmac.compare_digest(client_id.encode(), sim.client_id.encode()) and hmac.compare_digest(
        client_secret.encode(), sim.client_secret.encode()
    )
    if not valid:
        return problem(401, "unauthorized", "Unauthorized", "Invalid client credentials")
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return problem(400, "bad-request", "Bad Request", "grant_type must be client_credentials")
    token = sim.issue_token()
    return web.json_response(
        {
            "access_token": token,
            "expires_in": round(sim.token_ttl),
            "scope": "",
            "token_type": "bearer",
        }
    )


async def handle_list(request: web.Request) -> web.Response:
    """``GET /batteries``: one page (``pageSize``, capped at ``page_size``; ``after`` cursor)."""
    sim = request.app[SIM]
    size_text = request.query.get("pageSize")
    size = sim.page_size
    if size_text is not None:
        if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_PAGE_SIZE:
            return problem(400, "bad-request", "Bad Request", "pageSize must be 1..100")
        size = min(int(size_text), sim.page_size)
    offset = 0
    if (after := request.query.get("after")) is not None:
        parsed = _offset(after)
        if parsed is None:
            return problem(400, "bad-request", "Bad Request", "Invalid pagination cursor")
        offset = parsed
    items = list(sim.batteries.values())
    page = items[offset : offset + size]
    end = offset + len(page)
    return web.json_response(
        {
            "data": page,
            "pagination": {
                "after": _cursor(end) if end < len(items) else None,
                "before": _cursor(max(0, offset - size)) if offset > 0 else None,
            },
        }
    )


async def handle_battery(request: web.Request) -> web.Response:
    """``GET /batteries/{id}``."""
    _, battery = _find(request, request.app[SIM].batteries, "battery_id", "battery")
    return web.json_response(battery)


async def handle_operation_mode(request: web.Request) -> web.Response:
    """``POST /batteries/{id}/operation-mode {"operationMode": ...}``: creates an Action."""
    sim = request.app[SIM]
    battery_id, battery = _find(request, sim.batteries, "battery_id", "battery")
    try:
        body = json.loads(await request.text())
    except ValueError:
        body = None
    mode = body.get("operationMode") if isinstance(body, dict) else None
    if mode not in MODES:
        return problem(
            400,
            "bad-request",
            "Bad Request",
            f"operationMode must be one of {', '.join(MODES)}",
        )
    capability = battery.get("capabilities", {}).get(CAPABILITY_OF_MODE[mode], {})
    if not capability.get("isCapable"):
        return problem(
            400,
            "not-capable",
            "Battery not capable",
            f"Battery {battery_id} is not capable of operation mode {mode}",
        )
    return web.json_response(sim.create_action(battery, mode))


async def handle_action(request: web.Request) -> web.Response:
    """``GET /batteries/actions/{id}``."""
    _, action = _find(request, request.app[SIM].actions, "action_id", "action")
    return web.json_response(action)


def create_app(
    *,
    client_id: str = "demo-client",
    client_secret: str = "demo-secret",  # noqa: S107 - the simulator's demo credentials
    token_ttl: float = 3600.0,
    action_delay: float = 5.0,
    page_size: int = 50,
    batteries: Iterable[dict[str, Any]] | None = None,
    clock: Callable[[], float] | None = None,
    **options: Any,
) -> web.Application:
    """Return the Enode simulator app.

    Serves ``POST /oauth2/token`` (HTTP Basic client credentials, ``grant_type=client_credentials``)
    and, with ``Authorization: Bearer <token>``: ``GET /batteries`` (``pageSize``, opaque ``after``
    cursor), ``GET /batteries/{id}``, ``POST /batteries/{id}/operation-mode`` and ``GET
    /batteries/actions/{id}``.

    Args:
        client_id: The accepted client id.
        client_secret: The accepted client secret.
        token_ttl: Seconds an access token is valid (``expires_in``).
        action_delay: Seconds until a PENDING Action is CONFIRMED (or FAILED).
        page_size: The largest page ``GET /batteries`` returns (and its default).
        batteries: Enode battery objects (see :func:`make_battery`); two demo batteries when None.
        clock: A monotonic clock in seconds (tests pass a manual one).
        options: Further :class:`EnodeSimulator` fields (``speed``, ``physics``).

    Returns:
        The aiohttp application; ``app[SIM]`` is the simulator, ``app[FAULTS]`` the fault injector.
    """
    app = new_app(middlewares=[_api_middleware])
    sim = EnodeSimulator(
        client_id=client_id,
        client_secret=client_secret,
        token_ttl=token_ttl,
        action_delay=action_delay,
        page_size=page_size,
        clock=clock or time.monotonic,
        **options,
    )
    for battery in demo_batteries() if batteries is None else batteries:
        sim.add_battery(copy.deepcopy(battery))
    app[SIM] = sim
    app.router.add_post("/oauth2/token", handle_token)
    app.router.add_get("/batteries", handle_list)
    app.router.add_get("/batteries/actions/{action_id}", handle_action)
    app.router.add_get("/batteries/{battery_id}", handle_battery)
    app.router.add_post("/batteries/{battery_id}/operation-mode", handle_operation_mode)
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the Enode simulator's command-line options."""
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8083)")
    parser.add_argument("--client-id", default="demo-client")
    parser.add_argument("--client-secret", default="demo-secret")
    parser.add_argument("--token-ttl", type=float, default=3600.0, help="token lifetime, s")
    parser.add_argument("--action-delay", type=float, default=5.0, help="s until CONFIRMED")
    parser.add_argument("--page-size", type=int, default=50, help="largest page of /batteries")
    parser.add_argument("--speed", type=float, default=1.0, help="charge-state speed-up factor")


def app_from_args(args: argparse.Namespace) -> web.Application:
    """Build the app from parsed command-line options."""
    return create_app(
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_ttl=args.token_ttl,
        action_delay=args.action_delay,
        page_size=args.page_size,
        speed=args.speed,
    )
