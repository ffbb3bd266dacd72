"""FemsBackend against the FEMS simulator over loopback HTTP, and the simulator itself."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
import json
from typing import Any

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
    READ_CHANNELS,
    FemsBackend,
    FemsChannel,
    FemsReadings,
    channel_regexes,
    parse_channels,
    read_channels,
)
from simulator import fems as fems_sim
from simulator.faults import FAULTS, Fault
from simulator.fems import SIM, FemsSimulator
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
def serve(start_app: StartApp, clock: ManualClock) -> Serve:
    """Start a FEMS simulator (options as for create_app) on the fake clock."""

    async def _serve(**options: Any) -> tuple[web.Application, TestServer]:
        options.setdefault("password_guest", GUEST)
        options.setdefault("password_owner", OWNER)
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
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """Talk to the simulator directly; returns status, decoded body (or text) and response."""
    headers = (
        {} if password is None else {"Authorization": aiohttp.encode_basic_auth("x", password)}
    )
    url = f"http://127.0.0.1:{server.port}{path}"
    kwargs: dict[str, Any] = {"headers": headers}
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


async def test_snapshot_reads_every_value(serve: Serve, session: aiohttp.ClientSession) -> None:
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
    assert state.reachable is True
    assert state.last_updated is not None
    assert snapshot.info.battery_id == "ess0"
    assert snapshot.info.manufacturer == "FENECON"
    assert snapshot.info.sw_version == "2025.2.3"
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
    # Writing to a component the FEMS does not have: JSON-RPC code 2000.
    with pytest.raises(UnknownBatteryError):
        await backend.async_apply("ess9", ControlCommand(ControlMode.AUTO))
    with pytest.raises(UnknownBatteryError):
        await backend.async_probe_write()
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
    assert snapshot.capabilities.power_limits is False
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
        (200, '{"value": 1,', "application/json", ProtocolError, "invalid JSON"),
        (200, "NaN", "application/json", ProtocolError, "invalid JSON"),
        (200, "", "application/json", ProtocolError, "invalid JSON"),
        (200, '["unexpected", "shape"]', "application/json", ProtocolError, "non-object"),
        (200, '"text"', "application/json", ProtocolError, "neither"),
        (200, "[" * 100_000, "application/json", ProtocolError, "invalid JSON"),
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
        (200, "", ProtocolError, "invalid JSON"),
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
    assert backend._written is None  # a failed write is not remembered


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
    with pytest.raises(CannotConnectError, match="cannot reach") as info:
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
    assert backend._last_post is not None
    assert desired.timestamp == backend._last_post[1] + timedelta(seconds=30)
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
    assert snapshot.capabilities.power_limits is True
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


async def test_sim_not_found_and_bad_regex(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve()
    status, body, _ = await raw(session, server, "GET", "/rest/channel/ess7/Soc")
    assert (status, body) == (404, "")
    status, body, _ = await raw(session, server, "GET", "/rest/channel/_sum/Ess(Soc")
    assert status == 400
    assert "PatternSyntaxException" in body["error"]["message"]


async def test_sim_auth(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve()
    for password in (None, "nope"):
        status, body, response = await raw(
            session, server, "GET", "/rest/channel/_sum/State", password=password
        )
        assert status == 401
        assert body["error"]["code"] == 1003
        assert "WWW-Authenticate" not in response.headers
    for header in ("Bearer abc", "Basic !!!", "Basic bm9jb2xvbg=="):
        async with session.get(
            f"http://127.0.0.1:{server.port}/rest/channel/_sum/State",
            headers={"Authorization": header},
        ) as response:
            assert response.status == 401
    status, body, _ = await raw(
        session,
        server,
        "POST",
        "/rest/channel/ess0/SetActivePowerEquals",
        {"value": 1},
        password=GUEST,
    )
    assert (status, body["error"]["code"]) == (400, 1002)


async def test_sim_write_errors(serve: Serve, session: aiohttp.ClientSession) -> None:
    app, server = await serve()
    sim = app[SIM]
    status, body, _ = await raw(session, server, "POST", "/rest/channel/ess0/Soc", {"value": 1})
    assert status == 400
    assert body["error"]["message"] == "[ess0/Soc] is not a Write Channel"
    path = "/rest/channel/ess0/SetActivePowerEquals"
    status, body, _ = await raw(session, server, "POST", path, {"val": 1})
    assert (status, body["error"]["message"]) == (400, "Value is missing")
    status, body, _ = await raw(session, server, "POST", path, data="{nope")
    assert status == 400
    assert body["error"]["message"].startswith("Unable to parse")
    status, body, _ = await raw(session, server, "POST", "/rest/channel/ess0/NoSuch", {"value": 1})
    assert status == 500
    assert "Jetty" in body
    status, body, _ = await raw(session, server, "POST", "/rest/channel/ess5/Soc", {"value": 1})
    assert (status, body["error"]["code"]) == (400, 2000)
    assert sim.written == {}
    # "" releases like null; a value of the wrong type is kept but logged as an error.
    await raw(session, server, "POST", path, {"value": "abc"})
    assert sim.api_worker_log().startswith("ess0/SetActivePowerEquals-ERROR")
    await raw(session, server, "POST", path, {"value": ""})
    assert sim.written == {}


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
