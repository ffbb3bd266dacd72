"""FemsBackend against the FEMS simulator over loopback HTTP, and the simulator itself."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from itertools import product
import json
import logging
from typing import Any
from unittest.mock import MagicMock

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.battery_bridge.api import (
    AuthError,
    BackendError,
    BackendKind,
    CannotConnectError,
    CommandRejectedError,
    ControlCommand,
    ControlMode,
    GridMode,
    NotSupportedError,
    ProtocolError,
    RateLimitedError,
    SystemState,
    UnknownBatteryError,
    fems as fems_api,
)
from custom_components.battery_bridge.api.fems import (
    ESS,
    READ_CHANNELS,
    ChannelKind,
    ChannelSpec,
    ErrorReply,
    FemsBackend,
    FemsChannel,
    FemsReadings,
    channel_regexes,
    parse_channels,
    parse_error_reply,
    read_channels,
)
from simulator import fems as fems_sim
from simulator.faults import FAULTS, Fault
from simulator.fems import SIM, START_COUNTERS, FemsSimulator, Firmware
from tests.conftest import ManualClock, StartApp

pytestmark = pytest.mark.usefixtures("socket_enabled")  # loopback HTTP to the simulator

OWNER = "0wner-S3cret"
GUEST = "gu3st-S3cret"
WRONG = "wrong-Pa55word"
SECRET_HINTS = (OWNER, GUEST, WRONG)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """One fake clock for the simulator and the client's API-timeout bookkeeping."""
    fake = ManualClock()
    monkeypatch.setattr(fems_api, "_monotonic", fake)
    return fake


Serve = Callable[..., Awaitable[tuple[web.Application, TestServer]]]


@pytest.fixture
def serve(start_app: StartApp, clock: ManualClock, fems_firmware: Firmware) -> Serve:
    """Start a FEMS simulator (options as for create_app) on the fake clock, in both families."""

    async def _serve(**options: Any) -> tuple[web.Application, TestServer]:
        options.setdefault("password_guest", GUEST)
        options.setdefault("password_owner", OWNER)
        options.setdefault("firmware", fems_firmware)
        app = fems_sim.create_app(clock=clock, **options)
        return app, await start_app(app)

    return _serve


def make_backend(
    session: aiohttp.ClientSession, server: TestServer, password: str = OWNER, **kwargs: Any
) -> FemsBackend:
    assert server.port is not None
    return FemsBackend(session, "127.0.0.1", server.port, password, **kwargs)


async def raw(
    session: aiohttp.ClientSession,
    server: TestServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    password: str | None = OWNER,
    data: str | None = None,
    accept: str | None = None,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """Talk to the simulator directly; returns status, decoded body (or text) and response.

    ``accept`` None sends no Accept header (aiohttp would send ``*/*``).
    """
    headers = (
        {} if password is None else {"Authorization": aiohttp.encode_basic_auth("x", password)}
    )
    if accept is not None:
        headers["Accept"] = accept
    url = f"http://127.0.0.1:{server.port}{path}"
    kwargs: dict[str, Any] = {"headers": headers}
    if accept is None:
        kwargs["skip_auto_headers"] = ("Accept",)
    if data is not None:
        kwargs["data"] = data
    elif method == "POST":
        kwargs["json"] = body
    async with session.request(method, url, **kwargs) as response:
        text = await response.text()
        try:
            decoded: Any = json.loads(text)
        except ValueError:
            decoded = text
        return response.status, decoded, response


def assert_no_secret(err: BaseException) -> None:
    """Neither the message nor its cause mentions a password or the Authorization header."""
    for exc in (err, err.__cause__):
        if exc is None:
            continue
        for text in (str(exc), repr(exc)):
            for secret in SECRET_HINTS:
                assert secret not in text
            assert "Basic " not in text


# --------------------------------------------------------------------------------------- reads


async def test_snapshot_reads_every_value(
    serve: Serve, session: aiohttp.ClientSession, fems_firmware: Firmware
) -> None:
    app, server = await serve()
    sim = app[SIM]
    sim.pv_override = 3000.0
    sim.house_override = 800.0
    backend = make_backend(session, server)
    assert backend.kind is BackendKind.FEMS
    assert backend.ess_id == "ess0"

    snapshot = await backend.async_get_snapshot("ess0")

    state = snapshot.state
    assert state.state_of_charge == 50.0
    assert state.usable_capacity_wh == 10_000.0
    assert state.stored_energy_wh == 5000.0
    assert state.state_of_health == 100.0
    # Self-consumption: the 2200 W surplus goes into the battery (- = charging).
    assert state.power_w == -2200.0
    assert state.pv_power_w == 3000.0
    assert state.house_power_w == 800.0
    assert state.grid_power_w == 0.0
    assert state.max_charge_power_w == 5000.0
    assert state.max_discharge_power_w == 5000.0
    assert state.system_state is SystemState.OK
    assert state.grid_mode is GridMode.ON_GRID
    assert state.energy_charged_wh == 3_013_394.0  # Wh_Σ on the wire
    assert state.energy_discharged_wh == 3_202_108.0
    # Site counters for the Energy dashboard, from the same GET.
    assert state.grid_import_energy_wh == START_COUNTERS["grid_buy"]
    assert state.grid_export_energy_wh == START_COUNTERS["grid_sell"]
    assert state.pv_energy_wh == START_COUNTERS["production"]
    assert state.reachable is True
    assert state.last_updated is not None
    assert snapshot.info.battery_id == "ess0"
    assert snapshot.info.manufacturer == "FENECON"
    assert snapshot.info.sw_version == fems_firmware.version
    caps = snapshot.capabilities
    assert caps.modes == (ControlMode.AUTO, ControlMode.POWER)
    assert caps.setpoint_modes == frozenset({ControlMode.POWER})
    assert (caps.min_power_w, caps.max_power_w) == (-5000, 5000)
    assert caps.command_timeout_s == 60.0
    # The device reports the applied AC setpoint (800 in auto) minus DC-PV: the battery power.
    assert snapshot.control.current is not None
    assert snapshot.control.current.mode is None
    assert snapshot.control.current.setpoint_w == -2200
    assert snapshot.control.desired is None
    assert snapshot.raw["_sum/EssSoc"] == 50
    assert snapshot.raw["ess0/DebugSetActivePower"] == 800
    assert "ess0/State" in snapshot.raw  # an unintended match of the regex cross product


async def test_one_regex_get_per_poll(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    backend = make_backend(session, server)
    await backend.async_get_snapshot("ess0")
    requests = app[FAULTS].requests
    assert len(requests) == 1
    method, path = requests[0]
    assert method == "GET"
    assert path.startswith("/rest/channel/(_sum|ess0|battery0|_meta|ctrlApiRest0)/(EssSoc|")
    assert "_PropertyApiTimeout" in path


async def test_each_reply_is_logged_once(
    serve: Serve, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """The transport (api/_http.py ``send``) logs each reply; the FEMS client does not repeat it."""
    _, server = await serve()
    backend = make_backend(session, server)
    with caplog.at_level(logging.DEBUG, logger="custom_components.battery_bridge.api"):
        await backend.async_get_snapshot("ess0")
    replies = [record for record in caplog.records if "-> HTTP" in record.getMessage()]
    assert len(replies) == 1
    assert replies[0].getMessage().startswith("FEMS GET /rest/channel/")


def test_channel_regexes_escape_the_ess_id() -> None:
    components, channels = channel_regexes(READ_CHANNELS, "ess.1")
    assert components == r"(_sum|ess\.1|battery0|_meta|ctrlApiRest0)"
    assert channels.startswith("(EssSoc|EssDischargePower|")
    assert channels.count("State") == 1  # _sum/State and <ess>/State share the channel id


async def test_configurable_ess_id(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve(ess_id="ess2", hybrid=False)
    backend = make_backend(session, server, ess_id="ess2")
    await backend.async_validate()
    [info] = await backend.async_list_batteries()
    assert info.battery_id == "ess2"
    assert info.name == "FEMS"
    snapshot = await backend.async_get_snapshot("ess2")
    assert snapshot.state.max_charge_power_w == 5000.0
    await backend.async_apply("ess2", ControlCommand(ControlMode.POWER, 1000))
    assert app[SIM].written == {"ess2/SetActivePowerEquals": 1000}


async def test_unknown_ess(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve()
    backend = make_backend(session, server, ess_id="ess9")
    with pytest.raises(UnknownBatteryError, match="ess9"):
        await backend.async_validate()
    with pytest.raises(UnknownBatteryError, match="ess9"):
        await backend.async_get_snapshot("ess9")
    with pytest.raises(UnknownBatteryError, match="ess9"):
        await backend.async_list_batteries()
    # Writing to a component the FEMS does not have: code 2000 / "Unable to find OpenEMS Component".
    with pytest.raises(UnknownBatteryError, match="no such component"):
        await backend.async_apply("ess9", ControlCommand(ControlMode.AUTO))
    assert await backend.async_probe_write() is False  # nothing there to write to
    good = make_backend(session, server)
    with pytest.raises(UnknownBatteryError, match="ess1"):
        await good.async_get_snapshot("ess1")
    with pytest.raises(UnknownBatteryError):
        await good.async_apply("ess1", ControlCommand(ControlMode.AUTO))


async def test_null_values_are_unavailable(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    sim = app[SIM]
    sim.null_addresses = {
        "_sum/EssSoc",
        "_sum/EssDischargePower",
        "ess0/AllowedChargePower",
        "ess0/AllowedDischargePower",
        "_sum/ProductionDcActualPower",
        "ctrlApiRest0/_PropertyApiTimeout",
        "_meta/Version",
        "_sum/State",
    }
    backend = make_backend(session, server)
    snapshot = await backend.async_get_snapshot("ess0")
    state = snapshot.state
    assert state.state_of_charge is None
    assert state.stored_energy_wh is None  # not 0
    assert state.usable_capacity_wh == 10_000.0
    assert state.power_w is None
    assert state.max_charge_power_w is None
    assert state.system_state is None
    assert snapshot.info.sw_version is None
    assert snapshot.capabilities.min_power_w is None
    assert snapshot.capabilities.max_power_w is None
    assert snapshot.capabilities.command_timeout_s == 60.0  # the FEMS default
    assert snapshot.raw["_sum/EssSoc"] is None
    # Without a DC-PV reading the reported setpoint is the AC one.
    assert snapshot.control.current is not None
    assert snapshot.control.current.setpoint_w == snapshot.raw["ess0/DebugSetActivePower"]


async def test_warmup_reports_null_everywhere(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    _, server = await serve(warmup_s=5.0)
    backend = make_backend(session, server)
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.state.state_of_charge is None
    assert snapshot.state.energy_charged_wh is None
    assert snapshot.control.current is None
    assert snapshot.state.reachable is True
    clock.advance(5.0)
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.state.state_of_charge == 50.0


async def test_old_wh_unit_and_ac_coupled(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve(old_units=True, hybrid=False)
    app[SIM].pv_override = 1000.0
    app[SIM].house_override = 1000.0
    backend = make_backend(session, server)
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.state.energy_charged_wh == 3_013_394.0
    assert snapshot.state.power_w == 0.0
    assert snapshot.raw["_sum/ProductionDcActualPower"] == 0


async def test_negative_pv_is_clamped(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    app[SIM].pv_override = -9.0
    app[SIM].house_override = 500.0
    backend = make_backend(session, server)
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.raw["_sum/ProductionActivePower"] == -9
    assert snapshot.state.pv_power_w == 0.0
    # Negative DC-PV is not used to compensate the setpoint either.
    await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, 100))
    assert app[SIM].written == {"ess0/SetActivePowerEquals": 100}


async def test_full_battery_limits(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve(soc=100.0, hybrid=False)
    app[SIM].pv_override = 0.0
    backend = make_backend(session, server)
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.raw["ess0/AllowedChargePower"] == 0
    assert snapshot.state.max_charge_power_w == 0.0
    assert snapshot.capabilities.min_power_w == 0
    await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, -3000))
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.state.power_w == 0.0  # clamped by the FEMS: cannot charge a full battery
    assert snapshot.control.desired is not None
    assert snapshot.control.desired.setpoint_w == -3000


async def test_api_timeout_property(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve(api_timeout=0.5)
    backend = make_backend(session, server)
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.capabilities.command_timeout_s == 0.5


async def test_read_only_entry_has_no_capabilities(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    app, server = await serve()
    backend = make_backend(session, server, password=GUEST, can_write=False)
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.capabilities.modes == ()
    assert snapshot.capabilities.setpoint_modes == frozenset()
    assert snapshot.capabilities.command_timeout_s is None
    assert snapshot.capabilities.charge_discharge_limits is False
    assert snapshot.state.state_of_charge == 50.0  # the guest password reads
    with pytest.raises(NotSupportedError, match="read-only"):
        await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, 100))
    assert [method for method, _ in app[FAULTS].requests] == ["GET"]


async def test_base_url_override(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve()
    # Credentials in the URL are dropped (the FEMS ignores them; the header carries them).
    backend = FemsBackend(
        session,
        "ignored.invalid",
        1,
        OWNER,
        username="a:b",
        base_url=f"http://someone:pw@127.0.0.1:{server.port}/rest/",
    )
    await backend.async_validate()


async def test_validate_needs_openems(start_app: StartApp, session: aiohttp.ClientSession) -> None:
    server = await start_app(canned(200, json.dumps({"address": "ess0/State", "value": 0})))
    backend = make_backend(session, server)
    with pytest.raises(ProtocolError, match="OpenEMS"):
        await backend.async_validate()


async def test_requests_are_serialised(start_app: StartApp, session: aiohttp.ClientSession) -> None:
    in_flight = 0
    peak = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return web.json_response({"address": "_sum/State", "value": 0})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await start_app(app)
    backend = make_backend(session, server)
    results = await asyncio.gather(
        *(backend.async_validate() for _ in range(4)), return_exceptions=True
    )
    assert all(isinstance(result, UnknownBatteryError) for result in results)
    assert peak == 1


# -------------------------------------------------------------------------------------- errors


def canned(status: int, body: str, content_type: str = "application/json") -> web.Application:
    """An app that answers every request with the same reply."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


def rpc_error(code: int, message: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": "0", "error": {"code": code, "message": message}})


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error", "match"),
    [
        (401, "", "text/plain", AuthError, "password"),
        (400, rpc_error(1003, "Authentication failed"), "application/json", AuthError, "password"),
        (404, "", "text/plain", NotSupportedError, "REST/JSON app"),
        (400, rpc_error(1002, "denied"), "application/json", CommandRejectedError, "owner"),
        (
            500,
            rpc_error(1, "REST-Api is in Read-Only mode"),
            "application/json",
            CommandRejectedError,
            "Read-Only",
        ),
        (
            400,
            rpc_error(2000, "no component"),
            "application/json",
            UnknownBatteryError,
            "component",
        ),
        (429, "", "text/plain", RateLimitedError, "slow down"),
        (502, "Bad Gateway", "text/plain", CannotConnectError, "502"),
        (503, "", "text/plain", CannotConnectError, "503"),
        (500, "<html>Jetty</html>", "text/html", ProtocolError, "HTML error page"),
        (500, "Internal Server Error", "text/plain", ProtocolError, "HTTP 500"),
        (400, rpc_error(1, "Unable to parse"), "application/json", ProtocolError, "HTTP 400"),
        (400, json.dumps({"error": "x"}), "application/json", ProtocolError, "HTTP 400"),
        (400, json.dumps([1]), "application/json", ProtocolError, "HTTP 400"),
        (200, "<html>login</html>", "text/html", ProtocolError, "HTML page"),
        (200, '{"value": 1,', "application/json", ProtocolError, "malformed JSON|empty reply"),
        (200, "NaN", "application/json", ProtocolError, "malformed JSON|empty reply"),
        (200, "", "application/json", ProtocolError, "malformed JSON|empty reply"),
        (200, '["unexpected", "shape"]', "application/json", ProtocolError, "non-object"),
        (200, '"text"', "application/json", ProtocolError, "neither"),
        (200, "[" * 100_000, "application/json", ProtocolError, "malformed JSON|empty reply"),
    ],
)
async def test_get_error_mapping(
    *,
    start_app: StartApp,
    session: aiohttp.ClientSession,
    status: int,
    body: str,
    content_type: str,
    error: type[BackendError],
    match: str,
) -> None:
    server = await start_app(canned(status, body, content_type))
    backend = make_backend(session, server)
    with pytest.raises(error, match=match) as info:
        await backend.async_get_snapshot("ess0")
    assert_no_secret(info.value)


@pytest.mark.parametrize(
    ("status", "body", "error", "match"),
    [
        (400, rpc_error(1, "Value is missing"), CommandRejectedError, "Value is missing"),
        (500, rpc_error(7, "x" * 500), CommandRejectedError, "code 7"),
        (200, '["unexpected"]', ProtocolError, "non-object"),
        (200, "", ProtocolError, "malformed JSON|empty reply"),
    ],
)
async def test_post_error_mapping(
    *,
    start_app: StartApp,
    session: aiohttp.ClientSession,
    status: int,
    body: str,
    error: type[BackendError],
    match: str,
) -> None:
    server = await start_app(canned(status, body))
    backend = make_backend(session, server)
    with pytest.raises(error, match=match) as info:
        await backend.async_apply("ess0", ControlCommand(ControlMode.AUTO))
    assert len(str(info.value)) < 400
    assert_no_secret(info.value)
    assert backend._timer.written is None  # a failed write is not remembered


async def test_server_message_is_scrubbed(
    start_app: StartApp, session: aiohttp.ClientSession
) -> None:
    server = await start_app(canned(400, rpc_error(1, f"bad value for user with {OWNER}")))
    backend = make_backend(session, server)
    with pytest.raises(CommandRejectedError, match=r"\*\*\*") as info:
        await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, 1))
    assert_no_secret(info.value)


async def test_wrong_password(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve()
    backend = make_backend(session, server, password=WRONG)
    calls: list[Callable[[], Awaitable[object]]] = [
        backend.async_validate,
        backend.async_list_batteries,
        lambda: backend.async_get_snapshot("ess0"),
        lambda: backend.async_apply("ess0", ControlCommand(ControlMode.POWER, 100)),
        backend.async_probe_write,
    ]
    for call in calls:
        with pytest.raises(AuthError) as info:
            await call()
        assert_no_secret(info.value)


async def test_guest_cannot_write(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    backend = make_backend(session, server, password=GUEST)
    await backend.async_validate()
    assert await backend.async_probe_write() is False
    with pytest.raises(CommandRejectedError, match="owner password") as info:
        await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, 100))
    assert_no_secret(info.value)
    assert app[SIM].written == {}


async def test_read_only_api(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve(write_app=False)
    backend = make_backend(session, server)
    assert await backend.async_probe_write() is False
    with pytest.raises(CommandRejectedError, match="Read-Only mode"):
        await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, 100))
    snapshot = await backend.async_get_snapshot("ess0")
    assert not any(address.startswith("ctrlApiRest0/") for address in snapshot.raw)
    assert snapshot.capabilities.command_timeout_s == 60.0
    assert app[SIM].written == {}


def forced_accept(accept: str) -> Any:
    """A middleware that replaces the request's Accept header (a proxy in front of the API)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        headers = request.headers.copy()
        headers["Accept"] = accept
        return await handler(request.clone(headers=headers))  # type: ignore[no-any-return]

    return middleware


@pytest.mark.parametrize(
    "accept",
    [None, "*/*", "text/plain"],
    ids=["client-accept", "proxy-any", "proxy-plain"],
)
async def test_every_error_case(
    *,
    start_app: StartApp,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    fems_firmware: Firmware,
    accept: str | None,
) -> None:
    """Each documented reply ends in its error class, in both families and every page form."""

    async def start(**options: Any) -> TestServer:
        app = fems_sim.create_app(
            clock=clock,
            firmware=fems_firmware,
            password_guest=GUEST,
            password_owner=OWNER,
            **options,
        )
        if accept is not None:
            app.middlewares.append(forced_accept(accept))
        return await start_app(app)

    server = await start()
    wrong = make_backend(session, server, password=WRONG)
    for call in (wrong.async_validate, wrong.async_probe_write):
        with pytest.raises(AuthError, match="password") as auth:
            await call()
        assert_no_secret(auth.value)

    guest = make_backend(session, server, password=GUEST)
    await guest.async_validate()  # the guest may read
    assert await guest.async_probe_write() is False
    with pytest.raises(CommandRejectedError, match="owner password"):
        await guest.async_apply("ess0", ControlCommand(ControlMode.POWER, 100))

    owner = make_backend(session, server)
    errors: list[tuple[ChannelSpec, type[BackendError], str]] = [
        (ChannelSpec(ESS, "Soc", ChannelKind.PERCENT), CommandRejectedError, "read-only"),
        (ChannelSpec(ESS, "NoSuch", ChannelKind.POWER), NotSupportedError, "no such channel"),
        (ChannelSpec("ess9", "Soc", ChannelKind.PERCENT), UnknownBatteryError, "component"),
    ]
    for spec, error, match in errors:
        with pytest.raises(error, match=match) as info:
            await owner._post(spec, 1)
        assert type(info.value) is error
        assert_no_secret(info.value)
    with pytest.raises(CommandRejectedError, match="Value is missing"):
        await owner._rest.async_request("POST", "ess0", "SetActivePowerEquals", {"val": 1})
    with pytest.raises(ProtocolError, match=r"HTTP (400|500)"):
        await owner._rest.async_request("GET", "_sum", "Ess(Soc")  # an invalid regex
    with pytest.raises(NotSupportedError, match="HTTP 404") as info:
        await owner._get((ChannelSpec("ess7", "Soc", ChannelKind.PERCENT),))  # matches nothing
    assert type(info.value) is NotSupportedError

    read_only = make_backend(session, await start(write_app=False))
    assert await read_only.async_probe_write() is False
    with pytest.raises(CommandRejectedError, match="Read-Only mode"):
        await read_only.async_apply("ess0", ControlCommand(ControlMode.AUTO))

    unmanaged = make_backend(session, await start(reactive_power=False))
    assert await unmanaged.async_probe_write() is False
    await unmanaged.async_apply("ess0", ControlCommand(ControlMode.POWER, 100))  # still writable


async def test_client_asks_for_json_errors(
    start_app: StartApp, session: aiohttp.ClientSession
) -> None:
    seen: list[str | None] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(request.headers.get("Accept"))
        return await handler(request)  # type: ignore[no-any-return]

    app = fems_sim.create_app(password_owner=OWNER)
    app.middlewares.append(record)
    backend = make_backend(session, await start_app(app))
    await backend.async_validate()
    assert await backend.async_probe_write() is True
    assert seen == ["application/json", "application/json"]


async def test_html_error_page(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    app[FAULTS].add(Fault.HTML_ERROR, status=500)
    backend = make_backend(session, server)
    with pytest.raises(ProtocolError, match="HTML"):
        await backend.async_get_snapshot("ess0")
    assert (await backend.async_get_snapshot("ess0")).state.state_of_charge == 50.0


@pytest.mark.parametrize("fault", [Fault.MALFORMED_JSON, Fault.WRONG_TYPES, Fault.EMPTY])
async def test_bad_replies(serve: Serve, session: aiohttp.ClientSession, fault: Fault) -> None:
    app, server = await serve()
    backend = make_backend(session, server)
    app[FAULTS].add(fault)
    with pytest.raises(ProtocolError):
        await backend.async_get_snapshot("ess0")
    app[FAULTS].add(fault)
    with pytest.raises(ProtocolError):
        await backend.async_apply("ess0", ControlCommand(ControlMode.AUTO))


async def test_timeout(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    app[FAULTS].add(Fault.SLOW, delay=0.3)
    backend = make_backend(session, server, request_timeout=0.05)
    with pytest.raises(CannotConnectError, match=r"within 0\.05 s") as info:
        await backend.async_get_snapshot("ess0")
    assert_no_secret(info.value)


async def test_dropped_connection(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    app[FAULTS].add(Fault.DROP, count=2)
    backend = make_backend(session, server)
    with pytest.raises(CannotConnectError) as info:
        await backend.async_get_snapshot("ess0")
    assert_no_secret(info.value)


async def test_connection_refused(start_app: StartApp, session: aiohttp.ClientSession) -> None:
    server = await start_app(web.Application())
    port = server.port
    assert port is not None
    await server.close()
    backend = FemsBackend(session, "127.0.0.1", port, OWNER)
    with pytest.raises(CannotConnectError, match="connection failed") as info:
        await backend.async_validate()
    assert_no_secret(info.value)


# -------------------------------------------------------------------------------------- writes


async def test_sign_convention_matches_vendor_example(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """FENECON: POST {"value": 5000} to ess0/SetActivePowerEquals = discharge 5 kW."""
    app, server = await serve(hybrid=False)
    sim = app[SIM]
    sim.pv_override = 0.0
    backend = make_backend(session, server)
    before = await backend.async_get_snapshot("ess0")
    command = ControlCommand(ControlMode.POWER, 5000)
    await backend.async_apply("ess0", command)
    assert sim.written == {"ess0/SetActivePowerEquals": 5000}
    for _ in range(12):  # 5 kW for 6 minutes = 500 Wh out, kept alive every 30 s
        clock.advance(30.0)
        await backend.async_apply("ess0", command)
    after = await backend.async_get_snapshot("ess0")
    assert after.state.power_w == 5000.0
    assert after.state.state_of_charge == 45.0
    assert before.state.energy_discharged_wh is not None
    assert after.state.energy_discharged_wh == pytest.approx(
        before.state.energy_discharged_wh + 500, abs=1
    )
    assert after.state.energy_charged_wh == before.state.energy_charged_wh
    assert after.control.current is not None
    assert after.control.current.setpoint_w == 5000


async def test_hybrid_dc_pv_compensation(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    sim = app[SIM]
    sim.pv_override = 3000.0
    sim.house_override = 500.0
    backend = make_backend(session, server)
    # Before any poll the DC-PV is unknown: the setpoint is written as it is.
    await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, -1000))
    assert sim.written == {"ess0/SetActivePowerEquals": -1000}
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.state.power_w == -4000.0  # the trap: S - PV_dc
    # With the DC-PV known, S = B + PV_dc and the battery gets what was asked.
    await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, -1000))
    assert sim.written == {"ess0/SetActivePowerEquals": 2000}
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.state.power_w == -1000.0
    assert snapshot.raw["ess0/DebugSetActivePower"] == 2000
    assert snapshot.control.current is not None
    assert snapshot.control.current.setpoint_w == -1000
    assert snapshot.control.desired is not None
    assert snapshot.control.desired.mode is ControlMode.POWER
    assert snapshot.control.desired.setpoint_w == -1000
    # Writing 0 on a hybrid does not mean "idle": the PV goes into the battery.
    sim.write("ess0/SetActivePowerEquals", 0)
    assert sim.flows().battery == -3000.0


async def test_rewrite_is_harmless(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve(hybrid=False)
    backend = make_backend(session, server)
    command = ControlCommand(ControlMode.POWER, -2000)
    await backend.async_apply("ess0", command)
    first = (await backend.async_get_snapshot("ess0")).control.desired
    await backend.async_apply("ess0", command)
    second = (await backend.async_get_snapshot("ess0")).control.desired
    assert app[SIM].written == {"ess0/SetActivePowerEquals": -2000}
    assert app[SIM].posts == 2
    assert first is not None and second is not None
    assert first.setpoint_w == second.setpoint_w == -2000
    assert first.timestamp is not None and second.timestamp is not None
    assert second.timestamp >= first.timestamp


async def test_null_release(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve(hybrid=False)
    sim = app[SIM]
    sim.pv_override = 0.0
    sim.house_override = 700.0
    backend = make_backend(session, server)
    await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, -3000))
    assert (await backend.async_get_snapshot("ess0")).state.power_w == -3000.0
    await backend.async_apply("ess0", ControlCommand(ControlMode.AUTO))
    assert sim.written == {}  # released at once, no waiting for the API timeout
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.state.power_w == 700.0  # self-consumption again
    assert snapshot.control.desired is not None
    assert snapshot.control.desired.mode is ControlMode.AUTO
    assert snapshot.control.desired.setpoint_w is None


async def test_shared_api_timer_expires(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    app, server = await serve(api_timeout=30.0, hybrid=False)
    sim = app[SIM]
    sim.pv_override = 0.0
    sim.house_override = 600.0
    backend = make_backend(session, server)
    await backend.async_get_snapshot("ess0")  # learns the 30 s timeout
    await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, 4000))
    clock.advance(20.0)
    # A POST to another channel restarts the ONE timer: the setpoint stays alive.
    assert await backend.async_probe_write() is True
    clock.advance(20.0)
    snapshot = await backend.async_get_snapshot("ess0")
    assert sim.written == {"ess0/SetActivePowerEquals": 4000}
    assert snapshot.state.power_w == 4000.0
    assert snapshot.control.desired is not None
    assert snapshot.control.desired.mode is ControlMode.POWER
    clock.advance(10.0)  # 30 s after the last POST
    snapshot = await backend.async_get_snapshot("ess0")
    assert sim.written == {}
    assert snapshot.state.power_w == 600.0
    desired = snapshot.control.desired
    assert desired is not None
    assert desired.mode is ControlMode.AUTO
    assert desired.setpoint_w is None
    assert desired.timestamp is not None
    assert backend._timer.last_post is not None
    assert desired.timestamp == backend._timer.last_post[1] + timedelta(seconds=30)
    # The setpoint held until the timer fired, 30 s after the last POST (50 s after the write).
    assert snapshot.state.energy_discharged_wh == pytest.approx(3_202_108 + 4000 * 50 / 3600, abs=1)


async def test_timer_drops_every_written_value(serve: Serve, clock: ManualClock) -> None:
    app, _ = await serve(api_timeout=10.0)
    sim = app[SIM]
    sim.write("ess0/SetActivePowerLessOrEquals", 0)
    clock.advance(5.0)
    sim.write("ess0/SetActivePowerGreaterOrEquals", -500)
    clock.advance(9.0)
    sim.advance()
    assert len(sim.written) == 2
    clock.advance(1.0)
    sim.advance()
    assert sim.written == {}


async def test_no_api_timeout(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    app, server = await serve(api_timeout=0.0)
    backend = make_backend(session, server)
    assert (await backend.async_get_snapshot("ess0")).capabilities.command_timeout_s is None
    await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, 1000))
    clock.advance(3600.0)
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.control.desired is not None
    assert snapshot.control.desired.mode is ControlMode.POWER
    assert "ess0/SetActivePowerEquals" in app[SIM].written


async def test_unsupported_commands(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    backend = make_backend(session, server)
    with pytest.raises(NotSupportedError, match="pcc"):
        await backend.async_apply("ess0", ControlCommand(ControlMode.PCC, 100))
    with pytest.raises(NotSupportedError):
        await backend.async_apply("ess0", ControlCommand(ControlMode.SELF_RELIANCE))
    with pytest.raises(CommandRejectedError, match="setpoint"):
        await backend.async_apply("ess0", ControlCommand(ControlMode.POWER))
    with pytest.raises(CommandRejectedError, match="magnitude"):
        await backend.async_apply("ess0", ControlCommand(ControlMode.AUTO, charge_limit_w=-1))
    with pytest.raises(CommandRejectedError, match="magnitude"):
        await backend.async_apply("ess0", ControlCommand(ControlMode.AUTO, discharge_limit_w=-1))
    assert app[FAULTS].requests == []


# ----------------------------------------------------------------------------- power limits

LESS = "ess0/SetActivePowerLessOrEquals"
GREATER = "ess0/SetActivePowerGreaterOrEquals"
EQUALS = "ess0/SetActivePowerEquals"


async def test_limits_in_auto_on_a_hybrid(serve: Serve, session: aiohttp.ClientSession) -> None:
    """Auto with limits: Equals released, bounds written with the DC-PV offset, respected."""
    app, server = await serve()
    sim = app[SIM]
    sim.pv_override = 3000.0  # all DC-PV on a hybrid
    sim.house_override = 500.0  # self-consumption would charge 2500 W
    backend = make_backend(session, server)
    snapshot = await backend.async_get_snapshot("ess0")  # learns the DC-PV
    assert snapshot.capabilities.charge_discharge_limits is True
    assert sim.flows().battery == -2500.0
    await backend.async_apply("ess0", ControlCommand(ControlMode.AUTO, charge_limit_w=1000))
    assert sim.written == {GREATER: 2000}  # -1000 + 3000 DC-PV
    assert sim.posts == 2  # the Equals release and the bound
    assert sim.flows().battery == -1000.0
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.state.power_w == -1000.0
    assert snapshot.control.desired is not None
    assert snapshot.control.desired.mode is ControlMode.AUTO
    # A large house load: self-consumption would discharge 1000 W, the limit allows 300 W.
    sim.house_override = 4000.0
    command = ControlCommand(ControlMode.AUTO, charge_limit_w=1000, discharge_limit_w=300)
    await backend.async_apply("ess0", command)
    assert sim.written == {GREATER: 2000, LESS: 3300}
    assert sim.flows().battery == 300.0
    # Releasing both: null for each limit written before, then nothing extra.
    posts = sim.posts
    await backend.async_apply("ess0", ControlCommand(ControlMode.AUTO))
    assert sim.written == {}
    assert sim.posts == posts + 3
    assert sim.flows().battery == 1000.0
    await backend.async_apply("ess0", ControlCommand(ControlMode.AUTO))
    assert sim.posts == posts + 4


async def test_limits_with_a_setpoint_ac_coupled(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    """AC-coupled: no offset; the bound wins over a setpoint beyond it."""
    app, server = await serve(hybrid=False)
    sim = app[SIM]
    sim.pv_override = 3000.0
    sim.house_override = 500.0
    backend = make_backend(session, server)
    await backend.async_get_snapshot("ess0")
    command = ControlCommand(ControlMode.POWER, -3000, charge_limit_w=1500, discharge_limit_w=0)
    await backend.async_apply("ess0", command)
    assert sim.written == {EQUALS: -3000, GREATER: -1500, LESS: 0}
    assert sim.flows().battery == -1500.0
    # Discharge limit 0: a discharge setpoint is held at 0.
    await backend.async_apply("ess0", replace(command, setpoint_w=2000))
    assert sim.written == {EQUALS: 2000, GREATER: -1500, LESS: 0}
    assert sim.flows().battery == 0.0
    # Only the charge limit released: one null.
    posts = sim.posts
    await backend.async_apply("ess0", replace(command, setpoint_w=-3000, charge_limit_w=None))
    assert sim.written == {EQUALS: -3000, LESS: 0}
    assert sim.posts == posts + 3
    assert sim.flows().battery == -3000.0


async def test_limits_expire_with_the_api_timeout(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """Like every REST write, the limits are dropped when nobody rewrites them."""
    app, server = await serve(api_timeout=30.0, hybrid=False)
    sim = app[SIM]
    sim.pv_override = 3000.0
    sim.house_override = 500.0
    backend = make_backend(session, server)
    await backend.async_get_snapshot("ess0")
    command = ControlCommand(ControlMode.AUTO, charge_limit_w=500)
    await backend.async_apply("ess0", command)
    clock.advance(20.0)
    await backend.async_apply("ess0", command)  # the keepalive
    clock.advance(20.0)
    sim.advance()
    assert sim.written == {GREATER: -500}
    assert sim.flows().battery == -500.0
    clock.advance(10.0)
    snapshot = await backend.async_get_snapshot("ess0")
    assert sim.written == {}
    assert snapshot.state.power_w == -2500.0


async def test_probe_write_changes_nothing(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    sim = app[SIM]
    sim.write("ess0/SetActivePowerEquals", 1500)
    backend = make_backend(session, server)
    assert await backend.async_probe_write() is True
    assert sim.written == {"ess0/SetActivePowerEquals": 1500}
    assert app[FAULTS].requests == [("POST", "/rest/channel/ess0/SetReactivePowerEquals")]


async def test_restart_resets_counters(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    backend = make_backend(session, server)
    await backend.async_apply("ess0", ControlCommand(ControlMode.POWER, 1000))
    fems_sim.restart(app)
    assert app[SIM].written == {}
    snapshot = await backend.async_get_snapshot("ess0")
    assert snapshot.state.energy_charged_wh is not None
    assert snapshot.state.energy_charged_wh < 10  # reported as the FEMS sends it


# ------------------------------------------------------------------------- simulator protocol


async def test_sim_object_or_array(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve()
    status, body, _ = await raw(session, server, "GET", "/rest/channel/_sum/EssSoc", password=GUEST)
    assert status == 200
    assert body == {
        "address": "_sum/EssSoc",
        "type": "INTEGER",
        "accessMode": "RO",
        "text": "Range 0..100",
        "unit": "%",
        "value": 50,
    }
    status, body, _ = await raw(session, server, "GET", "/rest/channel/(_sum|ess0)/(EssSoc|Soc)")
    assert status == 200
    assert [item["address"] for item in body] == ["_sum/EssSoc", "ess0/Soc"]
    # Full-match regexes: "Soc" alone does not match "EssSoc"; unintended matches do appear.
    status, body, _ = await raw(session, server, "GET", "/rest/channel/.*/State")
    assert {item["address"] for item in body} >= {"_sum/State", "ess0/State", "_meta/State"}
    status, body, _ = await raw(session, server, "GET", "/rest/channel/_sum/EssDcChargeEnergy")
    assert body["unit"] == "Wh_Σ"
    assert body["type"] == "LONG"


async def test_sim_write_only_channel(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve()
    path = "/rest/channel/ess0/SetActivePowerEquals"
    status, body, _ = await raw(session, server, "POST", path, {"value": 5000})
    assert (status, body) == (200, {})
    status, body, _ = await raw(session, server, "GET", path)
    assert status == 200
    assert body["accessMode"] == "WO"
    assert "value" not in body  # what was written cannot be read back
    channels = parse_channels(body)
    assert channels["ess0/SetActivePowerEquals"].has_value is False
    status, body, _ = await raw(session, server, "GET", "/rest/channel/ctrlApiRest0/ApiWorkerLog")
    assert body["value"] == "ess0/SetActivePowerEquals:5000"


NAMED = "io.openems.common.exceptions.OpenemsError$OpenemsNamedException"
GENERIC = "io.openems.common.exceptions.OpenemsException"


def jetty12_title(exception: str) -> str:
    """The <title> of a Jetty 12 error page for an exception (``class: message``)."""
    return f"<title>Error 500 {exception}</title>"


def assert_jetty12_html(status: int, body: Any, response: aiohttp.ClientResponse, exc: str) -> None:
    assert status == 500
    assert response.content_type == "text/html"
    assert response.charset == "iso-8859-1"
    assert jetty12_title(exc) in body
    assert f"<tr><th>MESSAGE:</th><td>{exc}</td></tr>" in body
    assert "CAUSED BY" not in body  # showCauses is off in Jetty 12
    assert "Powered by Jetty:// 12." in body


def assert_jsonrpc(status: int, body: Any, expected: tuple[int, int, str]) -> None:
    """An old-family JSON-RPC error: (HTTP status, code, message)."""
    assert status == expected[0]
    assert body["jsonrpc"] == "2.0"
    assert body["id"] == "00000000-0000-0000-0000-000000000000"
    assert (body["error"]["code"], body["error"]["message"]) == expected[1:]


async def test_sim_not_found_and_bad_regex(
    serve: Serve, session: aiohttp.ClientSession, fems_firmware: Firmware
) -> None:
    _, server = await serve()
    status, body, _ = await raw(session, server, "GET", "/rest/channel/ess7/Soc")
    assert (status, body) == (404, "")  # both families
    status, body, response = await raw(session, server, "GET", "/rest/channel/_sum/Ess(Soc")
    if fems_firmware is Firmware.NEW:
        assert (status, body) == (400, "")  # PatternSyntaxException is caught: no body
        return
    # Not an OpenemsNamedException: it escapes to Jetty 11's error page.
    assert status == 500
    assert response.content_type == "text/html"
    assert "<title>Error 500 Server Error</title>" in body
    assert "<tr><th>CAUSED BY:</th><td>java.util.regex.PatternSyntaxException: " in body
    assert "near index 3\nEss(Soc\n   ^" in body


async def test_sim_auth(
    serve: Serve, session: aiohttp.ClientSession, fems_firmware: Firmware
) -> None:
    _, server = await serve()
    for password in (None, "nope"):
        status, body, response = await raw(
            session, server, "GET", "/rest/channel/_sum/State", password=password
        )
        assert "WWW-Authenticate" not in response.headers
        if fems_firmware is Firmware.OLD:
            assert_jsonrpc(status, body, (401, 1003, "Authentication failed"))
            assert body["error"]["data"] == []
        else:
            assert_jetty12_html(status, body, response, f"{NAMED}: Authentication failed")
    for header in ("Bearer abc", "Basic !!!", "Basic bm9jb2xvbg=="):
        async with session.get(
            f"http://127.0.0.1:{server.port}/rest/channel/_sum/State",
            headers={"Authorization": header},
        ) as response:
            assert response.status == (401 if fems_firmware is Firmware.OLD else 500)
    status, body, response = await raw(
        session,
        server,
        "POST",
        "/rest/channel/ess0/SetActivePowerEquals",
        {"value": 1},
        password=GUEST,
    )
    denied = "Access to this resource [HTTP POST] is denied for User with Role [GUEST]"
    if fems_firmware is Firmware.OLD:
        assert_jsonrpc(status, body, (400, 1002, denied))
        assert body["error"]["data"] == ["HTTP POST", "GUEST"]
    else:
        assert_jetty12_html(status, body, response, f"{NAMED}: {denied}")


SOC_CHANNEL = "Channel [ID=Soc, type=INTEGER, activeValue=50 %, access=READ_ONLY]"
ESS_IMPL = "io.openems.edge.ess.generic.symmetric.EssGenericManagedSymmetricImpl"
# path, JSON body (or raw text), exception class, message, old-family JSON-RPC code (None: uncaught)
WRITE_ERRORS: list[tuple[str, Any, str, str, int | None]] = [
    ("ess0/Soc", {"value": 1}, GENERIC, f"[{SOC_CHANNEL}] is not a Write Channel", 1),
    ("ess0/SetActivePowerEquals", {"val": 1}, GENERIC, "Value is missing", 1),
    ("ess0/SetActivePowerEquals", "{nope", GENERIC, "Unable to parse: {nope", 1),
    (
        "ess0/NoSuch",
        {"value": 1},
        "java.lang.IllegalArgumentException",
        f"Channel [NoSuch] is not defined for ID [ess0]. Implementation [{ESS_IMPL}]",
        None,
    ),
    ("ess5/Soc", {"value": 1}, NAMED, "Unable to find OpenEMS Component with ID [ess5]", 2000),
    (
        "ctrlApiRest0/_PropertyPort",
        {"value": 80},
        GENERIC,
        (
            "[Channel [ID=_PropertyPort, type=INTEGER, activeValue=8084, access=READ_ONLY]] "
            "is not a Write Channel"
        ),
        1,
    ),
    (
        "_meta/Version",
        {"value": "x"},
        GENERIC,
        (
            "[Channel [ID=Version, type=STRING, activeValue=UNDEFINED, access=READ_ONLY]] "
            "is not a Write Channel"
        ),
        1,
    ),
]


@pytest.mark.parametrize(("path", "body", "exc", "message", "code"), WRITE_ERRORS)
async def test_sim_write_errors(
    *,
    serve: Serve,
    session: aiohttp.ClientSession,
    fems_firmware: Firmware,
    path: str,
    body: Any,
    exc: str,
    message: str,
    code: int | None,
) -> None:
    app, server = await serve(version=None)  # _meta/Version is null
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, str) else {"body": body}
    status, reply, response = await raw(session, server, "POST", f"/rest/channel/{path}", **kwargs)
    if fems_firmware is Firmware.NEW:
        assert_jetty12_html(status, reply, response, f"{exc}: {message}")
    elif code is None:
        assert status == 500
        assert f"<tr><th>CAUSED BY:</th><td>{exc}: {message}</td></tr>" in reply
        assert "Powered by Jetty:// 11." in reply
    else:
        assert_jsonrpc(status, reply, (400, code, message))
    assert app[SIM].written == {}


async def test_sim_write_values(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    sim = app[SIM]
    path = "/rest/channel/ess0/SetActivePowerEquals"
    # "" releases like null; a value of the wrong type is kept but logged as an error.
    await raw(session, server, "POST", path, {"value": "abc"})
    assert sim.api_worker_log().startswith("ess0/SetActivePowerEquals-ERROR")
    await raw(session, server, "POST", path, {"value": ""})
    assert sim.written == {}


async def test_sim_read_only_app_and_unmanaged_ess(
    serve: Serve, session: aiohttp.ClientSession, fems_firmware: Firmware
) -> None:
    _, server = await serve(write_app=False)
    status, body, response = await raw(
        session, server, "POST", "/rest/channel/ess0/SetActivePowerEquals", {"value": 1}
    )
    if fems_firmware is Firmware.OLD:
        assert_jsonrpc(status, body, (400, 1, "REST-Api is in Read-Only mode"))
    else:
        assert_jetty12_html(status, body, response, f"{GENERIC}: REST-Api is in Read-Only mode")
    _, server = await serve(reactive_power=False)
    status, body, _ = await raw(session, server, "GET", "/rest/channel/ess0/SetReactivePower.*")
    assert status == 404
    status, body, _ = await raw(session, server, "GET", "/rest/channel/ess0/SetActivePowerEquals")
    assert status == 200


@pytest.mark.parametrize(
    ("accept", "form"),
    [
        (None, "html"),  # no Accept header
        ("*/*", "html"),  # aiohttp's default
        ("text/*", "html"),
        ("text/html, application/json", "html"),
        ("text/html;level=1", "html"),
        ("application/json", "application/json"),
        ("text/json", "text/json"),
        ("text/plain;q=0.5, application/json", "application/json"),
        ("*/*;q=0.1, text/plain", "plain"),
        ("image/png", "none"),
        ("application/json;q=0", "none"),
        ("application/json;q=x", "none"),
        ("", "none"),
    ],
)
async def test_sim_error_page_forms(
    *,
    serve: Serve,
    session: aiohttp.ClientSession,
    fems_firmware: Firmware,
    accept: str | None,
    form: str,
) -> None:
    """Jetty picks the error page form by the Accept header (both families' uncaught errors)."""
    _, server = await serve()
    # An unknown component id with markup: it is XML-sanitised in every form.
    path = "/rest/channel/ess0/No<b>'&\""
    status, body, response = await raw(session, server, "POST", path, {"value": 1}, accept=accept)
    assert status == 500
    text = "Channel [No<b>'&\"] is not defined for ID [ess0]"
    safe = "Channel [No&lt;b&gt;&apos;&amp;&quot;] is not defined for ID [ess0]"
    exc = "java.lang.IllegalArgumentException"
    old = fems_firmware is Firmware.OLD
    match form:
        case "html":
            assert response.content_type == "text/html"
            assert f"<td>{exc}: {safe}" in body
            assert text not in body
        case "application/json" | "text/json":
            assert response.content_type == form
            assert body["status"] == "500"  # a string
            assert body["url"] == "/rest/channel/ess0/No%3Cb%3E&apos;&amp;%22"  # encoded, sanitised
            message = body["cause0"] if old else body["message"]
            assert message.startswith(f"{exc}: {safe}")
            assert body["message"] == "Server Error" if old else "cause0" not in body
        case "plain":
            assert response.content_type == "text/plain"
            assert body.startswith("HTTP ERROR 500 ")
            assert "URI: /rest/channel/ess0/No%3Cb%3E'&%22\nSTATUS: 500\n" in body
            assert (f"CAUSED BY {exc}: {text}" in body) is old
        case _:
            assert body == ""


def test_sim_constraints_and_physics(clock: ManualClock) -> None:
    sim = FemsSimulator(clock=clock, hybrid=False, soc=50.0, api_timeout=0.0)
    sim.pv_override = 4000.0
    sim.house_override = 1000.0
    assert sim.flows().battery == -3000.0  # self-consumption stores the surplus
    sim.write("ess0/SetActivePowerGreaterOrEquals", -1000)
    assert sim.flows().battery == -1000.0  # charge at most 1 kW
    sim.write("ess0/SetActivePowerLessOrEquals", -2000)
    assert sim.flows().battery == -1000.0  # GreaterOrEquals is applied last
    sim.write("ess0/SetActivePowerGreaterOrEquals", None)
    assert sim.flows().battery == -3000.0  # "charge at least 2 kW": the 3 kW surplus qualifies
    sim.write("ess0/SetActivePowerEquals", 9000)
    assert sim.flows().battery == -2000.0  # LessOrEquals still caps it
    sim.write("ess0/SetActivePowerLessOrEquals", None)
    assert sim.flows().battery == 5000.0  # clamped to the allowed discharge power
    assert sim.flows().grid == 1000.0 - 4000.0 - 5000.0
    clock.advance(7200.0)  # two hours at 5 kW empty the 5 kWh left
    sim.advance()
    assert sim.soc_wh == 0.0
    assert sim.flows().battery == 0.0
    assert sim.flows().allowed_discharge == 0.0


def test_sim_curves_and_speed(clock: ManualClock) -> None:
    sim = FemsSimulator(clock=clock, speed=60.0, day_s=3600.0, pv_peak_w=6000.0)
    first = sim.flows()
    assert 0 < first.pv <= 6000
    assert first.pv_dc == first.pv  # hybrid: all PV is DC
    assert 300 <= first.house <= 700
    clock.advance(30.0)  # 30 minutes of physics
    sim.advance()
    assert sim.sim_time == pytest.approx(1800.0)
    assert sim.flows().pv != first.pv
    clock.advance(100_000.0)  # long pauses are integrated in bounded steps
    sim.advance()
    assert sim.sim_time == pytest.approx(1800.0 + 6_000_000.0)


def test_cli_arguments() -> None:
    parser = argparse.ArgumentParser()
    fems_sim.add_arguments(parser)
    args = parser.parse_args([])
    assert args.port == 8084
    app = fems_sim.app_from_args(args)
    sim = app[SIM]
    assert (sim.api_timeout, sim.write_app, sim.hybrid) == (60.0, True, True)
    args = parser.parse_args(
        ["--port", "80", "--api-timeout", "5", "--no-write-app", "--ac-coupled", "--old-units"]
    )
    sim = fems_sim.app_from_args(args)[SIM]
    assert args.port == 80
    assert (sim.api_timeout, sim.write_app, sim.hybrid, sim.energy_unit) == (
        5.0,
        False,
        False,
        "Wh",
    )
    assert (sim.firmware, sim.version, sim.reactive_power) == (Firmware.NEW, "2026.10.1", True)
    args = parser.parse_args(["--firmware", "2025.3", "--no-reactive-power"])
    sim = fems_sim.app_from_args(args)[SIM]
    assert (sim.firmware, sim.version, sim.reactive_power) == (Firmware.OLD, "2025.2.3", False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--firmware", "2024"])


# ------------------------------------------------------------------------------ parser details


def channel(address: str, value: Any, unit: str = "") -> dict[str, Any]:
    return {"address": address, "type": "INTEGER", "accessMode": "RO", "unit": unit, "value": value}


def readings(*items: dict[str, Any]) -> FemsReadings:
    return read_channels(parse_channels(list(items)), "ess0")


def test_parse_channels_shapes() -> None:
    assert parse_channels([]) == {}
    parsed = parse_channels({"address": "_sum/EssSoc", "value": 5, "unit": None})
    assert parsed == {"_sum/EssSoc": FemsChannel("_sum/EssSoc", 5, "", None, None, True)}
    for bad in (
        [1],
        [{"value": 1}],
        [{"address": "nosep"}],
        [{"address": "a/b", "unit": 5}],
        [{"address": "a/b", "accessMode": []}],
    ):
        with pytest.raises(ProtocolError):
            parse_channels(bad)


def test_units_and_types() -> None:
    result = readings(
        channel("_sum/EssDcChargeEnergy", 2, "kWh_Σ"),
        channel("_sum/GridBuyActiveEnergy", 1.5, "kWh_Σ"),
        channel("_sum/EssCapacity", 8.8, "kWh"),
        channel("_sum/EssSoc", 50.0, "%"),
        channel("_sum/State", 3.0),
        channel("_sum/GridMode", 3),
        channel("ess0/AllowedChargePower", 1000, "W"),  # positive: the ESS must discharge
        channel("ess0/AllowedDischargePower", -200, "W"),
        channel("ess0/State", 0),
        channel("ctrlApiRest0/_PropertyApiTimeout", 20, "sec"),
    )
    assert result.state.energy_charged_wh == 2000.0
    assert result.state.grid_import_energy_wh == 1500.0
    assert result.state.pv_energy_wh is None  # not in the reply
    assert result.state.usable_capacity_wh == 8800.0
    assert result.state.stored_energy_wh == 4400.0
    assert result.state.system_state is SystemState.FAULT
    assert result.state.grid_mode is GridMode.OFF_GRID_GENSET
    assert result.state.max_charge_power_w == 0.0
    assert result.state.max_discharge_power_w == 0.0
    assert result.api_timeout_s == 20.0
    assert result.ess_present is True
    unknown = readings(channel("_sum/State", 4), channel("_sum/GridMode", 0))
    assert unknown.state.system_state is None
    assert unknown.state.grid_mode is None
    assert unknown.ess_present is False


@pytest.mark.parametrize(
    "item",
    [
        channel("_sum/EssSoc", "50"),
        channel("_sum/EssSoc", True),
        channel("_sum/EssSoc", [50]),
        channel("_sum/EssSoc", 50, "mV"),
        channel("_sum/EssDcChargeEnergy", 1, "W"),
        channel("_sum/EssSoc", float("inf"), "%"),
        channel("_sum/EssDcChargeEnergy", 10**400, "Wh_Σ"),
        channel("_sum/State", 1.5),
        channel("_sum/State", "0"),
        channel("_meta/Version", 2025),
    ],
)
def test_wrong_types_are_protocol_errors(item: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        readings(item)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
ADDRESSES = st.sampled_from([spec.address("ess0") for spec in READ_CHANNELS] + ["x/y"])
UNITS = st.sampled_from(["", "W", "kW", "Wh", "Wh_Σ", "%", "sec", "mV"]) | st.text(max_size=4)
CHANNEL = st.fixed_dictionaries(
    {"address": ADDRESSES, "unit": UNITS, "value": JSON},
    optional={"type": st.text(max_size=8), "accessMode": st.sampled_from(["RO", "WO", "RW"])},
)
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(data=JSON)
def test_fuzz_arbitrary_json(data: Any) -> None:
    try:
        channels = parse_channels(data)
        result = read_channels(channels, "ess0")
    except ProtocolError:
        return
    assert isinstance(result, FemsReadings)


@FUZZ
@given(items=st.lists(CHANNEL, max_size=12) | CHANNEL)
def test_fuzz_channel_lists(items: Any) -> None:
    try:
        result = read_channels(parse_channels(items), "ess0")
    except ProtocolError:
        return
    state = result.state
    for value in (state.pv_power_w, state.house_power_w, state.max_charge_power_w):
        assert value is None or value >= 0
    assert result.dc_pv_w is None or result.dc_pv_w >= 0
    assert result.api_timeout_s is None or result.api_timeout_s > 0


# ------------------------------------------------------------------------- error replies, fuzzed

DOCUMENTED = (
    AuthError,
    CannotConnectError,
    RateLimitedError,
    ProtocolError,
    NotSupportedError,
    UnknownBatteryError,
    CommandRejectedError,
)
FUZZ_STATUSES = (200, 400, 401, 404, 500, 502)
FUZZ_BODIES: dict[str, tuple[bytes, str]] = {
    "html": (b"<html><body><h1>Oops</h1></body></html>", "text/html"),
    "jetty-html": (
        (
            b"<html><title>Error 500 java.lang.NullPointerException</title>"
            b"<tr><th>MESSAGE:</th><td>java.lang.NullPointerException</td></tr></html>"
        ),
        "text/html",
    ),
    "empty": (b"", "application/json"),
    "garbage": (b"\x00\xff\xfegarbage{", "application/octet-stream"),
    "json-list": (b"[1, 2]", "application/json"),
    "json-object": (b'{"unexpected": true}', "application/json"),
    "json-string": (b'"text"', "application/json"),
    "jetty-json": (
        b'{"url": "/x", "status": "500", "message": "Server Error"}',
        "application/json",
    ),
    "jsonrpc-other": (rpc_error(4005, "Too Many Requests").encode(), "application/json"),
    "plain": (b"HTTP ERROR 500 Server Error\nURI: /x\n", "text/plain"),
}


async def test_fuzzed_replies_end_in_documented_errors(
    start_app: StartApp, session: aiohttp.ClientSession
) -> None:
    """Every status x body on GET and POST: success or a documented error, nothing else."""
    reply: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            status=reply["status"], body=reply["body"], headers={"Content-Type": reply["type"]}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    backend = make_backend(session, await start_app(app))
    for status, name, method in product(FUZZ_STATUSES, FUZZ_BODIES, ("GET", "POST")):
        body, content_type = FUZZ_BODIES[name]
        reply.update(status=status, body=body, type=content_type)
        call = (
            backend.async_get_snapshot("ess0")
            if method == "GET"
            else backend.async_apply("ess0", ControlCommand(ControlMode.AUTO))
        )
        error: BackendError | None = None
        try:
            await call
        except BackendError as err:
            error = err
        case = (status, name, method)
        if error is None:
            # Only a 200 with a JSON object is an accepted write.
            assert (status, method) == (200, "POST"), case
            assert body.startswith(b"{"), case
            continue
        assert type(error) in DOCUMENTED, case
        assert status != 200 or type(error) is ProtocolError, case
        assert_no_secret(error)


def jetty12_page(message: str) -> bytes:
    return (
        f"<html>\n<head>\n<title>Error 500 {message}</title>\n</head>\n<body>\n"
        f"<h2>HTTP ERROR 500 {message}</h2>\n<table>\n"
        f"<tr><th>MESSAGE:</th><td>{message}</td></tr>\n</table>\n</body>\n</html>\n"
    ).encode("latin-1", "replace")


MARKERS = st.sampled_from(
    [
        "Authentication failed",
        "Access to this resource [HTTP POST] is denied for User with Role [GUEST]",
        "REST-Api is in Read-Only mode",
        "[Channel [ID=Soc]] is not a Write Channel",
        "Unable to find OpenEMS Component with ID [ess9]",
        "Channel [X] is not defined for ID [ess0]",
        "io.openems.common.exceptions.OpenemsException: Value is missing",
        f"bad value {OWNER}",
        "",
    ]
)
BODIES = (
    st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | st.builds(lambda marker, junk: jetty12_page(marker + junk), MARKERS, st.text(max_size=20))
    | st.builds(lambda marker: rpc_error(1, marker).encode(), MARKERS)
    | st.builds(lambda marker: json.dumps({"status": "500", "message": marker}).encode(), MARKERS)
    | JSON.map(lambda value: json.dumps(value).encode())
)


@FUZZ
@given(
    status=st.sampled_from(FUZZ_STATUSES) | st.integers(100, 599),
    body=BODIES,
    method=st.sampled_from(["GET", "POST"]),
)
def test_fuzz_error_classification(status: int, body: bytes, method: str) -> None:
    backend = FemsBackend(MagicMock(), "fems.invalid", 80, OWNER)
    err = backend._rest.error(status, body, method, f"{method} /rest/channel/x/y")
    assert type(err) in DOCUMENTED
    assert len(str(err)) < 400
    assert_no_secret(err)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            rpc_error(1003, "Authentication failed"),
            ErrorReply(1003, *["Authentication failed"] * 2),
        ),
        (json.dumps({"error": {"code": True, "message": 5}}), ErrorReply(None, "", "")),
        (
            json.dumps({"message": "Server Error", "cause0": "java.lang.X: a &amp; b"}),
            ErrorReply(None, "java.lang.X: a & b", "Server Error java.lang.X: a & b"),
        ),
        ("[1]", ErrorReply(None, "", "")),
        (
            "HTTP ERROR 500 x\nURI: /a\nSTATUS: 500\nMESSAGE: java.lang.X: y\n",
            ErrorReply(
                None,
                "java.lang.X: y",
                "HTTP ERROR 500 x URI: /a STATUS: 500 MESSAGE: java.lang.X: y",
            ),
        ),
        (
            (
                "<tr><th>MESSAGE:</th><td>Server Error</td></tr>"
                "<tr><th>CAUSED BY:</th><td>java.lang.X: &lt;y&gt;</td></tr>"
            ),
            ErrorReply(
                None, "java.lang.X: <y>", "MESSAGE: Server Error CAUSED BY: java.lang.X: <y>"
            ),
        ),
        ("", ErrorReply(None, "", "")),
    ],
)
def test_parse_error_reply(body: str, expected: ErrorReply) -> None:
    assert parse_error_reply(body.encode()) == expected
