"""EnodeBackend against the Enode simulator over loopback HTTP, and the simulator itself."""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import Awaitable, Callable
import copy
from datetime import UTC, datetime
import math
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
    ChargeStatus,
    CommandRejectedError,
    CommandStatus,
    ControlCommand,
    ControlMode,
    NotSupportedError,
    ProtocolError,
    RateLimitedError,
    UnknownBatteryError,
    enode as enode_api,
)
from custom_components.battery_bridge.api.enode import (
    ENVIRONMENTS,
    EnodeAction,
    EnodeBackend,
    EnodeBattery,
    parse_action,
    parse_battery,
)
from simulator import __main__ as simulator_main, enode as enode_sim
from simulator.enode import ENPHASE_ID, POWERWALL_ID, SIM, Canned, EnodeSimulator, make_battery
from simulator.faults import FAULTS, Fault
from tests.conftest import ManualClock, StartApp

pytestmark = pytest.mark.usefixtures("socket_enabled")  # loopback HTTP to the simulator

CLIENT_ID = "bb-client-4711"
SECRET = "s3cret-Client-0815"  # noqa: S105 - test data
WRONG = "wr0ng-Secret-999"
ALL_MODES = (
    ControlMode.SELF_RELIANCE,
    ControlMode.TIME_OF_USE,
    ControlMode.IMPORT_FOCUS,
    ControlMode.EXPORT_FOCUS,
)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """One fake clock for the simulator and the client's token cache."""
    fake = ManualClock()
    monkeypatch.setattr(enode_api, "_monotonic", fake)
    return fake


Serve = Callable[..., Awaitable[tuple[EnodeSimulator, TestServer]]]


@pytest.fixture
def serve(start_app: StartApp, clock: ManualClock) -> Serve:
    """Start an Enode simulator (options as for create_app) on the fake clock."""

    async def _serve(**options: Any) -> tuple[EnodeSimulator, TestServer]:
        options.setdefault("client_id", CLIENT_ID)
        options.setdefault("client_secret", SECRET)
        app = enode_sim.create_app(clock=clock, **options)
        server = await start_app(app)
        return app[SIM], server

    return _serve


def make_backend(
    session: aiohttp.ClientSession, server: TestServer, secret: str = SECRET, **kwargs: Any
) -> EnodeBackend:
    kwargs.setdefault("environment", "sandbox")
    return EnodeBackend(
        session,
        CLIENT_ID,
        secret,
        api_url=str(server.make_url("/")),
        token_url=str(server.make_url("/oauth2/token")),
        **kwargs,
    )


def requests_to(server: TestServer, method: str, path: str) -> int:
    return sum(1 for seen in server.app[FAULTS].requests if seen == (method, path))


async def raw(
    session: aiohttp.ClientSession,
    server: TestServer,
    method: str,
    path: str,
    *,
    token: str | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    """Talk to the simulator directly; returns status and decoded JSON (or text)."""
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with session.request(
        method, server.make_url(path), headers=headers, **kwargs
    ) as response:
        if response.content_type.endswith("json"):
            return response.status, await response.json()
        return response.status, await response.text()


async def sim_token(session: aiohttp.ClientSession, server: TestServer) -> str:
    status, body = await raw(
        session,
        server,
        "POST",
        "/oauth2/token",
        headers={"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, SECRET)},
        data={"grant_type": "client_credentials"},
    )
    assert status == 200
    token: str = body["access_token"]
    return token


def assert_no_secrets(err: BaseException, *extra: str) -> None:
    text = str(err)
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    for secret in (SECRET, WRONG, basic, *extra):
        assert secret not in text, text


# --------------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------------


def test_environment_urls() -> None:
    session: Any = object()  # no I/O in __init__
    production = EnodeBackend(session, CLIENT_ID, SECRET)
    assert production.kind is BackendKind.ENODE
    assert production.environment == "production"
    assert production.api_url == "https://enode-api.production.enode.io"
    assert production.token_url == "https://oauth.production.enode.io/oauth2/token"  # noqa: S105
    sandbox = EnodeBackend(session, CLIENT_ID, SECRET, environment="sandbox")
    assert (sandbox.api_url, sandbox.token_url) == ENVIRONMENTS["sandbox"]
    assert sandbox.api_url == "https://enode-api.sandbox.enode.io"
    assert sandbox.token_url == "https://oauth.sandbox.enode.io/oauth2/token"  # noqa: S105
    custom = EnodeBackend(
        session,
        CLIENT_ID,
        SECRET,
        environment="sandbox",
        api_url="http://127.0.0.1:8083/",
        token_url="http://127.0.0.1:8083/oauth2/token/",  # noqa: S106
    )
    assert custom.api_url == "http://127.0.0.1:8083"
    assert custom.token_url == "http://127.0.0.1:8083/oauth2/token"  # noqa: S105
    with pytest.raises(ValueError, match="staging"):
        EnodeBackend(session, CLIENT_ID, SECRET, environment="staging")


# --------------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_cached(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    await backend.async_validate()
    assert len(await backend.async_list_batteries()) == 2
    for _ in range(3):
        await backend.async_get_snapshot(POWERWALL_ID)
    await asyncio.gather(*(backend.async_get_snapshot(ENPHASE_ID) for _ in range(5)))
    assert sim.token_requests == 1
    method, path, body = sim.received[0]
    assert (method, path, body) == ("POST", "/oauth2/token", "grant_type=client_credentials")
    # every API request carried the bearer token: none was refused
    assert requests_to(server, "GET", f"/batteries/{POWERWALL_ID}") == 3


async def test_concurrent_first_calls_share_one_token(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    await asyncio.gather(*(backend.async_get_snapshot(POWERWALL_ID) for _ in range(6)))
    assert sim.token_requests == 1


async def test_validate_fetches_a_fresh_token(serve: Serve, session: aiohttp.ClientSession) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    await backend.async_validate()
    await backend.async_validate()
    assert sim.token_requests == 2
    assert requests_to(server, "GET", "/batteries") == 2


async def test_token_refetched_shortly_before_it_expires(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim, server = await serve(token_ttl=100.0)
    backend = make_backend(session, server)
    await backend.async_get_snapshot(POWERWALL_ID)
    clock.advance(89)  # margin: min(60 s, 10 % of 100 s) = 10 s
    await backend.async_get_snapshot(POWERWALL_ID)
    assert sim.token_requests == 1
    clock.advance(2)
    await backend.async_get_snapshot(POWERWALL_ID)
    assert sim.token_requests == 2
    assert requests_to(server, "GET", f"/batteries/{POWERWALL_ID}") == 3  # no 401 on the way


async def test_long_token_refetched_a_minute_early(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim, server = await serve(token_ttl=3599.0)
    backend = make_backend(session, server)
    await backend.async_get_snapshot(POWERWALL_ID)
    clock.advance(3538)
    await backend.async_get_snapshot(POWERWALL_ID)
    assert sim.token_requests == 1
    clock.advance(2)
    await backend.async_get_snapshot(POWERWALL_ID)
    assert sim.token_requests == 2


async def test_401_mid_session_refreshes_once_and_retries(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    await backend.async_get_snapshot(POWERWALL_ID)
    sim.expire_tokens()
    snapshot = await backend.async_get_snapshot(POWERWALL_ID)
    assert snapshot.info.battery_id == POWERWALL_ID
    assert sim.token_requests == 2
    assert requests_to(server, "GET", f"/batteries/{POWERWALL_ID}") == 3  # ok, 401, ok


async def test_requests_refused_at_once_fetch_one_new_token(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    await backend.async_get_snapshot(POWERWALL_ID)
    sim.expire_tokens()
    snapshots = await asyncio.gather(
        backend.async_get_snapshot(POWERWALL_ID), backend.async_get_snapshot(ENPHASE_ID)
    )
    assert [s.info.battery_id for s in snapshots] == [POWERWALL_ID, ENPHASE_ID]
    assert sim.token_requests == 2  # the second refused request uses the first one's new token


async def test_401_after_a_new_token_is_an_auth_error(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    body = {"type": "x", "title": "Unauthorized", "detail": "Token revoked"}
    sim.canned.append(Canned(f"/batteries/{POWERWALL_ID}", 401, body, count=2))
    with pytest.raises(AuthError, match="Token revoked") as caught:
        await backend.async_get_snapshot(POWERWALL_ID)
    assert sim.token_requests == 2
    assert_no_secrets(caught.value, *sim.tokens)


async def test_403_is_an_auth_error(serve: Serve, session: aiohttp.ClientSession) -> None:
    sim, server = await serve()
    sim.canned.append(Canned("/batteries", 403, {"title": "Forbidden"}))
    with pytest.raises(AuthError, match="Forbidden"):
        await make_backend(session, server).async_list_batteries()


@pytest.mark.parametrize("secret", [WRONG, ""])
async def test_bad_credentials(serve: Serve, session: aiohttp.ClientSession, secret: str) -> None:
    sim, server = await serve()
    with pytest.raises(AuthError, match="Invalid client credentials") as caught:
        await make_backend(session, server, secret).async_validate()
    assert_no_secrets(caught.value)
    assert sim.token_requests == 0


@pytest.mark.parametrize(
    ("canned", "error", "match"),
    [
        (Canned("/oauth2/token", 400, {"error": "invalid_client"}), AuthError, "invalid_client"),
        (Canned("/oauth2/token", 401, raw=b"<html>no</html>"), AuthError, r"HTTP 401\)"),
        (
            Canned("/oauth2/token", 500, raw=b"oops", content_type="text/plain"),
            CannotConnectError,
            "500",
        ),
        (Canned("/oauth2/token", 404, {"title": "Not Found"}), ProtocolError, "Enode API URL"),
        (Canned("/oauth2/token", 429, {}, headers={"Retry-After": "30"}), RateLimitedError, "429"),
        (Canned("/oauth2/token", 200, {"expires_in": 3600}), ProtocolError, "access_token"),
        (Canned("/oauth2/token", 200, {"access_token": " "}), ProtocolError, "access_token"),
        (
            Canned("/oauth2/token", 200, {"access_token": "t", "token_type": "mac"}),
            ProtocolError,
            "bearer",
        ),
        (
            Canned("/oauth2/token", 200, {"access_token": "t", "token_type": 1}),
            ProtocolError,
            "bearer",
        ),
        (
            Canned("/oauth2/token", 200, {"access_token": "t", "expires_in": 0}),
            ProtocolError,
            "positive",
        ),
        (
            Canned("/oauth2/token", 200, {"access_token": "t", "expires_in": "3600"}),
            ProtocolError,
            "expires_in",
        ),
        (Canned("/oauth2/token", 200, ["token"]), ProtocolError, "object"),
        (Canned("/oauth2/token", 200, raw=b"<!doctype html>"), ProtocolError, "HTML"),
    ],
)
async def test_token_endpoint_errors(
    serve: Serve,
    session: aiohttp.ClientSession,
    canned: Canned,
    error: type[BackendError],
    match: str,
) -> None:
    sim, server = await serve()
    sim.canned.append(canned)
    with pytest.raises(error, match=match) as caught:
        await make_backend(session, server).async_validate()
    assert_no_secrets(caught.value)
    if error is RateLimitedError:
        assert isinstance(caught.value, RateLimitedError)
        assert caught.value.retry_after == 30.0


async def test_token_without_expires_in_uses_an_hour(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim, server = await serve()
    token = await sim_token(session, server)
    sim.canned.append(Canned("/oauth2/token", 200, {"access_token": token, "token_type": "Bearer"}))
    backend = make_backend(session, server)
    await backend.async_get_snapshot(POWERWALL_ID)
    clock.advance(3500)
    await backend.async_get_snapshot(POWERWALL_ID)
    assert requests_to(server, "POST", "/oauth2/token") == 2  # ours + the client's one


async def test_unreachable_token_endpoint(session: aiohttp.ClientSession) -> None:
    unused = "http://127.0.0.1:9"
    backend = EnodeBackend(session, CLIENT_ID, SECRET, api_url=unused, token_url=f"{unused}/t")
    with pytest.raises(CannotConnectError, match="connection failed") as caught:
        await backend.async_validate()
    assert_no_secrets(caught.value)


async def test_invalid_url_is_cannot_connect(session: aiohttp.ClientSession) -> None:
    backend = EnodeBackend(session, CLIENT_ID, SECRET, token_url="http://[bad")  # noqa: S106
    with pytest.raises(CannotConnectError):
        await backend.async_validate()


# --------------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------------


def three_batteries() -> list[dict[str, Any]]:
    return [
        make_battery(f"battery-{n}", site_name=f"Site {n}", capable=("TIME_OF_USE",))
        for n in range(3)
    ]


async def test_list_follows_pagination(serve: Serve, session: aiohttp.ClientSession) -> None:
    sim, server = await serve(page_size=1, batteries=three_batteries())
    infos = await make_backend(session, server).async_list_batteries()
    assert [info.battery_id for info in infos] == ["battery-0", "battery-1", "battery-2"]
    assert [info.name for info in infos] == ["Site 0", "Site 1", "Site 2"]
    assert requests_to(server, "GET", "/batteries") == 3
    assert sim.token_requests == 1


async def test_list_default_demo_batteries(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve()
    infos = await make_backend(session, server).async_list_batteries()
    assert [(i.battery_id, i.name, i.manufacturer, i.model) for i in infos] == [
        (POWERWALL_ID, "Powerwall Home", "Tesla", "Powerwall"),
        (ENPHASE_ID, "Enphase IQ", "Enphase", "IQ 5P"),
    ]


async def test_list_caches_batteries_for_apply(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    _, server = await serve()
    backend = make_backend(session, server)
    await backend.async_list_batteries()
    await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    assert requests_to(server, "GET", f"/batteries/{POWERWALL_ID}") == 0


async def test_list_cursor_loop_is_a_protocol_error(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    page = {"data": [], "pagination": {"after": "same", "before": None}}
    sim.canned.append(Canned("/batteries", 200, page, count=2))
    with pytest.raises(ProtocolError, match="repeats"):
        await make_backend(session, server).async_list_batteries()


async def test_list_page_limit(
    serve: Serve, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enode_api, "MAX_PAGES", 2)
    _, server = await serve(page_size=1, batteries=three_batteries())
    with pytest.raises(ProtocolError, match="more than 2 pages"):
        await make_backend(session, server).async_list_batteries()


@pytest.mark.parametrize(
    ("page", "match"),
    [
        ({"pagination": {"after": None}}, "data"),
        ({"data": {}, "pagination": None}, "data"),
        ({"data": [], "pagination": []}, "pagination"),
        ({"data": [], "pagination": {"after": 5}}, "after"),
        ({"data": [{"id": 5}]}, "battery.id"),
        ([], "object"),
    ],
)
async def test_list_wrong_shapes(
    serve: Serve, session: aiohttp.ClientSession, page: object, match: str
) -> None:
    sim, server = await serve()
    sim.canned.append(Canned("/batteries", 200, page))
    with pytest.raises(ProtocolError, match=match):
        await make_backend(session, server).async_list_batteries()


async def test_list_without_pagination_is_one_page(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    battery = make_battery("only")
    sim.canned.append(Canned("/batteries", 200, {"data": [battery]}))
    sim.canned.append(Canned("/batteries", 200, {"data": [battery], "pagination": {"after": ""}}))
    backend = make_backend(session, server)
    assert [i.battery_id for i in await backend.async_list_batteries()] == ["only"]
    assert [i.battery_id for i in await backend.async_list_batteries()] == ["only"]


async def test_list_404_means_not_the_enode_api(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    sim.canned.append(Canned("/batteries", 404, raw=b"Not Found", content_type="text/plain"))
    with pytest.raises(ProtocolError, match=r"HTTP 404 \(is this the Enode API URL\?\)"):
        await make_backend(session, server).async_list_batteries()


# --------------------------------------------------------------------------------------------------
# Snapshots
# --------------------------------------------------------------------------------------------------


async def test_snapshot_of_the_documented_example(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    snapshot = await make_backend(session, server).async_get_snapshot(POWERWALL_ID)
    assert snapshot.info.battery_id == POWERWALL_ID
    assert (snapshot.info.name, snapshot.info.manufacturer, snapshot.info.model) == (
        "Powerwall Home",
        "Tesla",
        "Powerwall",
    )
    state = snapshot.state
    assert state.state_of_charge == 80.0
    assert state.usable_capacity_wh == 13500.0  # 13.5 kWh
    assert state.stored_energy_wh == pytest.approx(10800.0)
    assert state.power_w == -4600.0  # chargeRate 4.6 kW, charging -> negative
    assert state.charge_status is ChargeStatus.CHARGING
    assert state.reserve_pct == 20.0
    assert state.reachable is True
    assert state.last_updated == datetime(2024, 10, 7, 17, 3, 26, tzinfo=UTC)
    assert state.state_of_health is None
    assert snapshot.control.current is not None
    assert snapshot.control.current.mode is ControlMode.IMPORT_FOCUS
    assert snapshot.control.desired is None
    assert snapshot.control.command_status is None
    assert snapshot.capabilities.modes == (
        ControlMode.TIME_OF_USE,
        ControlMode.IMPORT_FOCUS,
        ControlMode.EXPORT_FOCUS,
    )
    assert snapshot.capabilities.setpoint_modes == frozenset()
    assert snapshot.capabilities.min_power_w is None
    assert snapshot.capabilities.max_power_w is None
    assert snapshot.capabilities.command_timeout_s is None
    assert snapshot.raw == {"battery": sim.batteries[POWERWALL_ID]}


async def test_snapshot_discharging_and_all_modes(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    sim.batteries[ENPHASE_ID]["chargeState"]["chargeRate"] = -2.5
    sim.batteries[ENPHASE_ID]["chargeState"]["status"] = "DISCHARGING"
    snapshot = await make_backend(session, server).async_get_snapshot(ENPHASE_ID)
    assert snapshot.state.power_w == 2500.0
    assert snapshot.state.charge_status is ChargeStatus.DISCHARGING
    assert snapshot.state.usable_capacity_wh == 5000.0
    assert snapshot.state.stored_energy_wh == pytest.approx(1750.0)
    assert snapshot.capabilities.modes == ALL_MODES


async def test_snapshot_with_every_nullable_field_null(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    battery = make_battery(
        "nulls",
        capacity_kwh=None,
        level=None,
        charge_rate_kw=None,
        discharge_limit=None,
        operation_mode=None,
        scopes=None,
    )
    battery["isReachable"] = None
    battery["chargeState"].update(status=None, lastUpdated=None)
    battery["config"]["lastUpdated"] = None
    battery["capabilities"]["timeOfUse"]["isCapable"] = None
    _, server = await serve(batteries=[battery])
    snapshot = await make_backend(session, server).async_get_snapshot("nulls")
    state = snapshot.state
    for value in (
        state.state_of_charge,
        state.stored_energy_wh,
        state.usable_capacity_wh,
        state.power_w,
        state.charge_status,
        state.reserve_pct,
        state.reachable,
        state.last_updated,
    ):
        assert value is None
    assert snapshot.control.current is None
    # no scopes listed: the capabilities decide
    assert snapshot.capabilities.modes == (
        ControlMode.SELF_RELIANCE,
        ControlMode.IMPORT_FOCUS,
        ControlMode.EXPORT_FOCUS,
    )


async def test_snapshot_of_a_minimal_battery(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve(batteries=[{"id": "bare-battery-1"}])
    snapshot = await make_backend(session, server).async_get_snapshot("bare-battery-1")
    assert snapshot.info.name == "Enode bare-bat"
    assert snapshot.info.manufacturer == "Enode"
    assert snapshot.info.model is None
    assert snapshot.state.power_w is None
    assert snapshot.capabilities.modes == ()


async def test_snapshot_without_control_scope_is_read_only(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    battery = make_battery("ro", scopes=["battery:read:data"])
    _, server = await serve(batteries=[battery])
    backend = make_backend(session, server)
    snapshot = await backend.async_get_snapshot("ro")
    assert snapshot.capabilities.modes == ()
    with pytest.raises(NotSupportedError, match="scope"):
        await backend.async_apply("ro", ControlCommand(ControlMode.TIME_OF_USE))


async def test_unknown_battery(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve()
    backend = make_backend(session, server)
    with pytest.raises(UnknownBatteryError, match="Could not find battery with ID nope"):
        await backend.async_get_snapshot("nope")
    with pytest.raises(UnknownBatteryError):
        await backend.async_get_snapshot("")
    with pytest.raises(UnknownBatteryError):
        await backend.async_apply("nope", ControlCommand(ControlMode.TIME_OF_USE))


async def test_battery_ids_are_quoted_in_paths(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    _, server = await serve()
    with pytest.raises(UnknownBatteryError):
        await make_backend(session, server).async_get_snapshot("../oauth2/token")
    assert ("GET", "/batteries/../oauth2/token") in server.app[FAULTS].requests


# --------------------------------------------------------------------------------------------------
# Commands and actions
# --------------------------------------------------------------------------------------------------


async def test_apply_pending_then_confirmed(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim, server = await serve(action_delay=5.0)
    backend = make_backend(session, server)
    await backend.async_get_snapshot(POWERWALL_ID)
    await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    assert sim.received[-1][1:] == (
        f"/batteries/{POWERWALL_ID}/operation-mode",
        {"operationMode": "EXPORT_FOCUS"},
    )
    action = backend.tracked_action(POWERWALL_ID)
    assert action is not None and action.state is CommandStatus.PENDING
    assert backend.tracked_action(ENPHASE_ID) is None

    pending = await backend.async_get_snapshot(POWERWALL_ID)
    assert pending.control.command_status is CommandStatus.PENDING
    assert pending.control.pending
    assert pending.control.command_id == action.id
    assert pending.control.current is not None
    assert pending.control.current.mode is ControlMode.IMPORT_FOCUS
    assert pending.control.desired is not None
    assert pending.control.desired.mode is ControlMode.EXPORT_FOCUS
    assert pending.control.desired.timestamp is not None
    assert pending.raw["action"]["state"] == "PENDING"

    clock.advance(5.0)
    confirmed = await backend.async_get_snapshot(POWERWALL_ID)
    assert confirmed.control.command_status is CommandStatus.CONFIRMED
    assert confirmed.control.current is not None
    assert confirmed.control.current.mode is ControlMode.EXPORT_FOCUS
    assert confirmed.control.desired is None
    assert confirmed.raw["action"]["state"] == "CONFIRMED"
    polls = requests_to(server, "GET", f"/batteries/actions/{action.id}")
    assert polls == 2

    # resolved: shown, but not polled again
    again = await backend.async_get_snapshot(POWERWALL_ID)
    assert again.control.command_status is CommandStatus.CONFIRMED
    assert again.control.command_id == action.id
    assert requests_to(server, "GET", f"/batteries/actions/{action.id}") == polls


async def test_apply_failed(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    sim.fail_next_action = True
    await backend.async_apply(ENPHASE_ID, ControlCommand(ControlMode.IMPORT_FOCUS))
    clock.advance(10)
    snapshot = await backend.async_get_snapshot(ENPHASE_ID)
    assert snapshot.control.command_status is CommandStatus.FAILED
    assert snapshot.control.desired is None
    assert snapshot.control.current is not None
    assert snapshot.control.current.mode is ControlMode.SELF_RELIANCE
    assert not sim.fail_next_action  # only the next one fails
    await backend.async_apply(ENPHASE_ID, ControlCommand(ControlMode.IMPORT_FOCUS))
    clock.advance(10)
    snapshot = await backend.async_get_snapshot(ENPHASE_ID)
    assert snapshot.control.command_status is CommandStatus.CONFIRMED


async def test_superseded_action_shows_cancelled(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    _, server = await serve()
    ours = make_backend(session, server)
    other_app = make_backend(session, server)
    await ours.async_apply(ENPHASE_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    await other_app.async_apply(ENPHASE_ID, ControlCommand(ControlMode.TIME_OF_USE))
    snapshot = await ours.async_get_snapshot(ENPHASE_ID)
    assert snapshot.control.command_status is CommandStatus.CANCELLED
    assert snapshot.control.desired is None
    clock.advance(5)
    snapshot = await ours.async_get_snapshot(ENPHASE_ID)
    assert snapshot.control.command_status is CommandStatus.CANCELLED
    assert snapshot.control.current is not None
    assert snapshot.control.current.mode is ControlMode.TIME_OF_USE


async def test_new_command_replaces_the_tracked_action(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    _, server = await serve()
    backend = make_backend(session, server)
    await backend.async_apply(ENPHASE_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    first = backend.tracked_action(ENPHASE_ID)
    await backend.async_apply(ENPHASE_ID, ControlCommand(ControlMode.TIME_OF_USE))
    second = backend.tracked_action(ENPHASE_ID)
    assert first is not None and second is not None and first.id != second.id
    assert (await backend.async_get_action(first.id)).state is CommandStatus.CANCELLED
    snapshot = await backend.async_get_snapshot(ENPHASE_ID)
    assert snapshot.control.command_id == second.id
    assert snapshot.control.desired is not None
    assert snapshot.control.desired.mode is ControlMode.TIME_OF_USE


async def test_get_action_errors(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve()
    backend = make_backend(session, server)
    with pytest.raises(NotSupportedError, match="unknown action"):
        await backend.async_get_action("no-such-action")
    with pytest.raises(UnknownBatteryError):
        await backend.async_get_action("")


async def test_forgotten_action_is_no_longer_tracked(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.TIME_OF_USE))
    sim.actions.clear()
    snapshot = await backend.async_get_snapshot(POWERWALL_ID)
    assert snapshot.control.command_status is None
    assert "action" not in snapshot.raw
    assert backend.tracked_action(POWERWALL_ID) is None


async def earlier_action(
    session: aiohttp.ClientSession, server: TestServer, battery_id: str, mode: ControlMode
) -> EnodeAction:
    """Return the Action another client (Home Assistant before a restart) created."""
    earlier = make_backend(session, server)
    await earlier.async_apply(battery_id, ControlCommand(mode))
    action = earlier.tracked_action(battery_id)
    assert action is not None
    return action


async def test_resumed_action_is_tracked_again(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """A new client (Home Assistant restarted) reads the Action the old one created."""
    _, server = await serve(action_delay=5.0)
    action = await earlier_action(session, server, POWERWALL_ID, ControlMode.EXPORT_FOCUS)
    after = make_backend(session, server)
    after.resume_command(POWERWALL_ID, action.id)
    assert after.tracked_action(POWERWALL_ID) is None  # read by the next snapshot, not now
    pending = await after.async_get_snapshot(POWERWALL_ID)
    assert pending.control.command_id == action.id
    assert pending.control.command_status is CommandStatus.PENDING
    assert pending.control.desired is not None
    assert pending.control.desired.mode is ControlMode.EXPORT_FOCUS
    assert pending.raw["action"]["id"] == action.id
    clock.advance(5.0)
    confirmed = await after.async_get_snapshot(POWERWALL_ID)
    assert confirmed.control.command_status is CommandStatus.CONFIRMED
    polls = requests_to(server, "GET", f"/batteries/actions/{action.id}")
    await after.async_get_snapshot(POWERWALL_ID)
    assert requests_to(server, "GET", f"/batteries/actions/{action.id}") == polls  # read once


@pytest.mark.parametrize("stored", ["no-such-action", "", "other battery", "garbage reply"])
async def test_resumed_action_that_cannot_be_read_is_dropped(
    serve: Serve, session: aiohttp.ClientSession, stored: str
) -> None:
    """An Action Enode forgot, a malformed id or another battery's Action: polls go on without."""
    _, server = await serve()
    backend = make_backend(session, server)
    if stored == "other battery":
        stored = (await earlier_action(session, server, ENPHASE_ID, ControlMode.TIME_OF_USE)).id
    if stored == "garbage reply":
        server.app[FAULTS].add(Fault.WRONG_TYPES, path="/batteries/actions/")
    backend.resume_command(POWERWALL_ID, stored)
    for _ in range(2):
        snapshot = await backend.async_get_snapshot(POWERWALL_ID)
        assert snapshot.control.command_id is None
        assert snapshot.control.command_status is None
    assert backend.tracked_action(POWERWALL_ID) is None


async def test_resume_keeps_a_newer_action_and_survives_a_failed_poll(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    _, server = await serve()
    old_action = await earlier_action(session, server, POWERWALL_ID, ControlMode.EXPORT_FOCUS)
    backend = make_backend(session, server)
    backend.resume_command(POWERWALL_ID, old_action.id)
    server.app[FAULTS].add(Fault.DROP, count=2, path="/batteries/actions/")  # aiohttp retries
    with pytest.raises(CannotConnectError):
        await backend.async_get_snapshot(POWERWALL_ID)
    snapshot = await backend.async_get_snapshot(POWERWALL_ID)  # the id was kept
    assert snapshot.control.command_id == old_action.id

    await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.TIME_OF_USE))
    newer = backend.tracked_action(POWERWALL_ID)
    assert newer is not None
    reads = requests_to(server, "GET", f"/batteries/actions/{old_action.id}")
    backend.resume_command(POWERWALL_ID, old_action.id)  # ignored: a newer Action is tracked
    snapshot = await backend.async_get_snapshot(POWERWALL_ID)
    assert snapshot.control.command_id == newer.id
    assert requests_to(server, "GET", f"/batteries/actions/{old_action.id}") == reads

    # A mode set after the restart but before the first poll wins over the stored Action.
    restarted = make_backend(session, server)
    restarted.resume_command(POWERWALL_ID, old_action.id)
    await restarted.async_apply(POWERWALL_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    newest = restarted.tracked_action(POWERWALL_ID)
    assert newest is not None
    snapshot = await restarted.async_get_snapshot(POWERWALL_ID)
    assert snapshot.control.command_id == newest.id
    assert requests_to(server, "GET", f"/batteries/actions/{old_action.id}") == reads


@pytest.mark.parametrize(
    ("command", "match"),
    [
        (ControlCommand(ControlMode.UNKNOWN), "no operation mode 'unknown'"),
        (ControlCommand(ControlMode.POWER, 500), "no operation mode 'power'"),
        (ControlCommand(ControlMode.AUTO), "no operation mode 'auto'"),
        (ControlCommand(ControlMode.EXPORT_FOCUS, 1000), "setpoint"),
        (ControlCommand(ControlMode.SELF_RELIANCE), "cannot be set to 'self_reliance'"),
    ],
)
async def test_apply_not_supported(
    serve: Serve, session: aiohttp.ClientSession, command: ControlCommand, match: str
) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    with pytest.raises(NotSupportedError, match=match):
        await backend.async_apply(POWERWALL_ID, command)
    assert not sim.actions
    assert not any(path.endswith("operation-mode") for _, path in server.app[FAULTS].requests)


async def test_apply_without_snapshot_reads_the_battery_once(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    _, server = await serve()
    backend = make_backend(session, server)
    await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.TIME_OF_USE))
    assert requests_to(server, "GET", f"/batteries/{POWERWALL_ID}") == 1


async def test_apply_rejected_with_problem_detail(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    await backend.async_get_snapshot(POWERWALL_ID)
    # the battery lost the capability after our last poll: Enode answers with a problem
    sim.batteries[POWERWALL_ID]["capabilities"]["exportFocus"]["isCapable"] = False
    with pytest.raises(CommandRejectedError) as caught:
        await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    assert f"Battery {POWERWALL_ID} is not capable of operation mode EXPORT_FOCUS" in str(
        caught.value
    )
    assert backend.tracked_action(POWERWALL_ID) is None


async def test_problem_json_content_type(serve: Serve, session: aiohttp.ClientSession) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    path = f"/batteries/{POWERWALL_ID}/operation-mode"
    body = {"type": "https://x/problems/validation", "title": "Bad Request"}
    sim.canned.append(Canned(path, 400, body, content_type="application/problem+json"))
    with pytest.raises(CommandRejectedError, match="Bad Request"):
        await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    sim.canned.append(Canned(path, 422, {"type": "x", "title": " ", "detail": ""}))
    with pytest.raises(CommandRejectedError, match=r"HTTP 422$"):
        await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    sim.canned.append(Canned(path, 200, {"id": "a", "state": "DONE"}))
    with pytest.raises(ProtocolError, match="action state"):
        await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.EXPORT_FOCUS))


async def test_get_request_refused_is_a_protocol_error(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    sim.canned.append(Canned(f"/batteries/{POWERWALL_ID}", 400, {"title": "Bad Request"}))
    with pytest.raises(ProtocolError, match="Bad Request"):
        await make_backend(session, server).async_get_snapshot(POWERWALL_ID)


# --------------------------------------------------------------------------------------------------
# Transport errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("2.5", 2.5),
        ("-3", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # an HTTP-date in the past: now
        ("Wed, 21 Oct 2099 07:28:00 GMT", 86400.0),  # far ahead: capped at a day
        ("inf", None),
        (None, None),
    ],
)
async def test_rate_limited(
    serve: Serve, session: aiohttp.ClientSession, header: str | None, expected: float | None
) -> None:
    sim, server = await serve()
    headers = {} if header is None else {"Retry-After": header}
    body = {"type": "x", "title": "Too Many Requests", "detail": "Slow down"}
    sim.canned.append(Canned(f"/batteries/{POWERWALL_ID}", 429, body, headers=headers))
    with pytest.raises(RateLimitedError, match="Slow down") as caught:
        await make_backend(session, server).async_get_snapshot(POWERWALL_ID)
    assert caught.value.retry_after == expected
    assert isinstance(caught.value, CannotConnectError)


@pytest.mark.parametrize(
    ("fault", "options", "error"),
    [
        (Fault.SERVER_ERROR, {"status": 500}, CannotConnectError),
        (Fault.SERVER_ERROR, {"status": 503}, CannotConnectError),
        (Fault.SERVER_ERROR, {"status": 408}, CannotConnectError),
        (Fault.HTML_ERROR, {"status": 502}, CannotConnectError),
        (Fault.HTML_ERROR, {"status": 200}, ProtocolError),
        (Fault.HTML_ERROR, {"status": 400}, ProtocolError),
        (Fault.MALFORMED_JSON, {}, ProtocolError),
        (Fault.WRONG_TYPES, {}, ProtocolError),
        (Fault.EMPTY, {}, ProtocolError),
        (Fault.DROP, {"count": 2}, CannotConnectError),  # aiohttp retries a GET once
        (Fault.SLOW, {"delay": 1.0}, CannotConnectError),
    ],
)
@pytest.mark.parametrize("where", ["/batteries/", "/oauth2/token"])
async def test_transport_faults(
    serve: Serve,
    session: aiohttp.ClientSession,
    *,
    fault: Fault,
    options: dict[str, Any],
    error: type[BackendError],
    where: str,
) -> None:
    _, server = await serve()
    backend = make_backend(session, server, request_timeout=0.3)
    server.app[FAULTS].add(fault, path=where, **options)
    if where == "/oauth2/token" and options.get("status") == 400:
        error = AuthError  # a 400 from the token endpoint means bad client credentials
    with pytest.raises(error) as caught:
        await backend.async_get_snapshot(POWERWALL_ID)
    assert type(caught.value) is error
    assert_no_secrets(caught.value)
    # the next request works again
    server.app[FAULTS].clear()
    assert (await backend.async_get_snapshot(POWERWALL_ID)).info.battery_id == POWERWALL_ID


@pytest.mark.parametrize(
    "body",
    [b'{"id": NaN}', b"\xff\xfe", b"[" * 100_000, b"   "],
)
async def test_odd_bodies_are_protocol_errors(
    serve: Serve, session: aiohttp.ClientSession, body: bytes
) -> None:
    sim, server = await serve()
    sim.canned.append(Canned(f"/batteries/{POWERWALL_ID}", 200, raw=body))
    with pytest.raises(ProtocolError):
        await make_backend(session, server).async_get_snapshot(POWERWALL_ID)


async def test_errors_never_show_secrets_or_tokens(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    await backend.async_get_snapshot(ENPHASE_ID)
    (token,) = sim.tokens
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    leaky = f"secret {SECRET} header Basic {basic} token {token} Authorization: Bearer {token}"
    errors: list[BackendError] = []
    for status in (400, 401, 403, 404, 409, 429, 500):
        sim.canned.append(Canned(f"/batteries/{POWERWALL_ID}", status, {"detail": leaky}, count=2))
        with pytest.raises(BackendError) as caught:
            await backend.async_get_snapshot(POWERWALL_ID)
        errors.append(caught.value)
        path = f"/batteries/{ENPHASE_ID}/operation-mode"
        sim.canned.append(Canned(path, status, {"detail": leaky}, count=2))
        with pytest.raises(BackendError) as caught:
            await backend.async_apply(ENPHASE_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
        errors.append(caught.value)
        sim.canned.clear()
    sim.canned.append(Canned("/oauth2/token", 401, {"error_description": leaky}))
    sim.expire_tokens()
    with pytest.raises(AuthError) as auth:
        await backend.async_get_snapshot(POWERWALL_ID)
    errors.append(auth.value)
    new_tokens = list(sim.tokens)
    assert len(errors) == 15
    for err in errors:
        assert_no_secrets(err, token, *new_tokens)
        assert "***" in str(err)


# --------------------------------------------------------------------------------------------------
# Pure parsers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "power"),
    [(4.6, -4600.0), (-2.5, 2500.0), (0, 0.0), (-0.0, 0.0), (0.001, -1.0)],
)
def test_sign_conversion(rate: float, power: float) -> None:
    battery = parse_battery({"id": "b", "chargeState": {"chargeRate": rate}})
    assert battery.state.power_w == pytest.approx(power)
    assert battery.state.power_w is not None
    assert math.copysign(1, battery.state.power_w) == math.copysign(1, power)


def test_parse_battery_details() -> None:
    battery = parse_battery(
        {
            "id": "b1",
            "vendor": "SOLAREDGE",
            "information": {"brand": None, "model": "Home"},
            "chargeState": {"status": "Weird", "lastUpdated": "2024-10-07T17:03:26"},
            "config": {"operationMode": "IDLE", "lastUpdated": "2024-10-07T17:03:26+02:00"},
        }
    )
    assert isinstance(battery, EnodeBattery)
    assert battery.info.manufacturer == "Solaredge"
    assert battery.info.name == "Home"
    assert battery.state.charge_status is ChargeStatus.UNKNOWN
    assert battery.state.last_updated == datetime(2024, 10, 7, 17, 3, 26, tzinfo=UTC)
    assert battery.current is not None
    assert battery.current.mode is ControlMode.UNKNOWN
    assert battery.current.timestamp is not None
    assert battery.current.timestamp.utcoffset() is not None
    unknown = parse_battery({"id": "b2", "config": {"operationMode": "UNKNOWN"}})
    assert unknown.current is not None and unknown.current.mode is ControlMode.UNKNOWN


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"id": ""},
        {"id": 7},
        {"id": "b", "chargeState": []},
        {"id": "b", "chargeState": {"batteryLevel": "80"}},
        {"id": "b", "chargeState": {"batteryLevel": True}},
        {"id": "b", "chargeState": {"chargeRate": 10**400}},
        {"id": "b", "chargeState": {"chargeRate": 1e306}},
        {"id": "b", "chargeState": {"batteryCapacity": 1e300, "batteryLevel": 1e10}},
        {"id": "b", "chargeState": {"status": 1}},
        {"id": "b", "chargeState": {"lastUpdated": "yesterday"}},
        {"id": "b", "chargeState": {"lastUpdated": 1700000000}},
        {"id": "b", "isReachable": "yes"},
        {"id": "b", "information": {"siteName": 5}},
        {"id": "b", "config": {"operationMode": 3}},
        {"id": "b", "scopes": "battery:control:operation_mode"},
        {"id": "b", "scopes": [1]},
        {"id": "b", "capabilities": {"timeOfUse": True}},
        {"id": "b", "capabilities": {"timeOfUse": {"isCapable": "true"}}},
    ],
)
def test_parse_battery_wrong_types(data: object) -> None:
    with pytest.raises(ProtocolError):
        parse_battery(data)


def test_parse_action() -> None:
    action = parse_action(
        {
            "id": "4eaeb363-296d-4ccc-a973-7805e6f400bd",
            "userId": "u",
            "createdAt": "2024-10-07T17:05:00Z",
            "updatedAt": "2024-10-07T17:05:00Z",
            "completedAt": None,
            "state": "PENDING",
            "targetId": "54d827e1-8355-4fed-97b5-55940d1d09ba",
            "targetType": "battery",
            "targetState": {"operationMode": "EXPORT_FOCUS"},
        }
    )
    assert action == EnodeAction(
        id="4eaeb363-296d-4ccc-a973-7805e6f400bd",
        state=CommandStatus.PENDING,
        target_id="54d827e1-8355-4fed-97b5-55940d1d09ba",
        target_mode=ControlMode.EXPORT_FOCUS,
        created_at=datetime(2024, 10, 7, 17, 5, tzinfo=UTC),
        completed_at=None,
        failure_reason=None,
    )


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (
            {"type": "NO_RESPONSE", "detail": "Vendor did not answer"},
            "NO_RESPONSE: Vendor did not answer",
        ),
        ({"type": "CONFLICT"}, "CONFLICT"),
        ({}, None),
        ("timed out", "timed out"),
        ("", None),
        (None, None),
    ],
)
def test_parse_action_failure_reason(reason: object, expected: str | None) -> None:
    action = parse_action({"id": "a", "state": "failed", "failureReason": reason})
    assert action.state is CommandStatus.FAILED
    assert action.target_mode is ControlMode.UNKNOWN
    assert action.failure_reason == expected


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"state": "PENDING"},
        {"id": "a"},
        {"id": "a", "state": "DONE"},
        {"id": "a", "state": "PENDING", "targetState": "EXPORT_FOCUS"},
        {"id": "a", "state": "PENDING", "targetId": 5},
        {"id": "a", "state": "PENDING", "createdAt": "now"},
        {"id": "a", "state": "FAILED", "failureReason": 5},
        {"id": "a", "state": "FAILED", "failureReason": {"type": 5}},
    ],
)
def test_parse_action_wrong_types(data: object) -> None:
    with pytest.raises(ProtocolError):
        parse_action(data)


# --------------------------------------------------------------------------------------------------
# Fuzzing: the parsers return a model or raise ProtocolError, nothing else
# --------------------------------------------------------------------------------------------------

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
LEAF = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["CHARGING", "IMPORT_FOCUS", "UNKNOWN", "2024-10-07T17:03:26Z", "x"])
    | JSON
)
CAPABILITY = st.fixed_dictionaries({"isCapable": LEAF, "interventionIds": LEAF}) | LEAF
BATTERY = st.fixed_dictionaries(
    {"id": st.text(max_size=8) | LEAF},
    optional={
        "vendor": LEAF,
        "isReachable": LEAF,
        "chargeState": st.fixed_dictionaries(
            {},
            optional=dict.fromkeys(
                (
                    "status",
                    "batteryCapacity",
                    "batteryLevel",
                    "chargeRate",
                    "dischargeLimit",
                    "lastUpdated",
                ),
                LEAF,
            ),
        )
        | LEAF,
        "config": st.fixed_dictionaries({}, optional={"operationMode": LEAF, "lastUpdated": LEAF})
        | LEAF,
        "information": st.fixed_dictionaries(
            {}, optional={"brand": LEAF, "model": LEAF, "siteName": LEAF}
        )
        | LEAF,
        "capabilities": st.fixed_dictionaries(
            {},
            optional=dict.fromkeys(
                ("exportFocus", "importFocus", "timeOfUse", "selfReliance"), CAPABILITY
            ),
        )
        | LEAF,
        "scopes": st.lists(st.sampled_from(["battery:control:operation_mode", "x"]) | LEAF) | LEAF,
    },
)
ACTION = st.fixed_dictionaries(
    {"id": st.text(max_size=8) | LEAF},
    optional={
        "state": st.sampled_from(["PENDING", "CONFIRMED", "FAILED", "CANCELLED"]) | LEAF,
        "targetId": LEAF,
        "targetState": st.fixed_dictionaries({"operationMode": LEAF}) | LEAF,
        "createdAt": LEAF,
        "completedAt": LEAF,
        "failureReason": st.fixed_dictionaries({"type": LEAF, "detail": LEAF}) | LEAF,
    },
)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=BATTERY | JSON)
def test_fuzz_parse_battery(data: object) -> None:
    try:
        battery = parse_battery(data)
    except ProtocolError:
        return
    assert isinstance(battery, EnodeBattery)
    state = battery.state
    for value in (
        state.state_of_charge,
        state.stored_energy_wh,
        state.usable_capacity_wh,
        state.power_w,
        state.reserve_pct,
    ):
        assert value is None or math.isfinite(value)
    assert set(battery.capabilities.modes) <= set(ALL_MODES)


@FUZZ
@given(data=ACTION | JSON)
def test_fuzz_parse_action(data: object) -> None:
    try:
        action = parse_action(data)
    except ProtocolError:
        return
    assert isinstance(action, EnodeAction)
    assert isinstance(action.state, CommandStatus)
    assert isinstance(action.target_mode, ControlMode)


# --------------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------------


async def test_simulator_token_endpoint(serve: Serve, session: aiohttp.ClientSession) -> None:
    _, server = await serve()
    url = "/oauth2/token"
    status, body = await raw(
        session,
        server,
        "POST",
        url,
        headers={"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, SECRET)},
        data={"grant_type": "password"},
    )
    assert status == 400 and "grant_type" in body["detail"]
    status, body = await raw(
        session, server, "POST", url, headers={"Authorization": "Basic !!!"}, data={}
    )
    assert status == 401
    status, body = await raw(
        session, server, "POST", url, data={"grant_type": "client_credentials"}
    )
    assert status == 401 and body["title"] == "Unauthorized"
    token = await sim_token(session, server)
    status, _ = await raw(session, server, "GET", "/batteries", token=token)
    assert status == 200
    status, body = await raw(session, server, "GET", "/batteries", token="forged")  # noqa: S106
    assert status == 401 and "access token" in body["detail"]


async def test_simulator_tokens_expire(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    _, server = await serve(token_ttl=10.0)
    token = await sim_token(session, server)
    clock.advance(9.9)
    assert (await raw(session, server, "GET", "/batteries", token=token))[0] == 200
    clock.advance(0.1)
    assert (await raw(session, server, "GET", "/batteries", token=token))[0] == 401


async def test_simulator_request_validation(serve: Serve, session: aiohttp.ClientSession) -> None:
    sim, server = await serve(page_size=1)
    token = await sim_token(session, server)
    for query in ("pageSize=0", "pageSize=abc", "pageSize=101", "after=%%%", "after=b2Zmc2V0Ong"):
        status, body = await raw(session, server, "GET", f"/batteries?{query}", token=token)
        assert status == 400, query
        assert body["type"].startswith("https://developers.enode.com/api/problems/")
    status, body = await raw(session, server, "GET", "/batteries?pageSize=50", token=token)
    assert status == 200 and len(body["data"]) == 1  # capped at page_size
    status, second = await raw(
        session, server, "GET", f"/batteries?after={body['pagination']['after']}", token=token
    )
    assert second["pagination"]["before"] is not None
    assert second["pagination"]["after"] is None
    path = f"/batteries/{ENPHASE_ID}/operation-mode"
    for payload in ("not json", '{"operationMode": "IDLE"}', "[]"):
        status, body = await raw(session, server, "POST", path, token=token, data=payload)
        assert status == 400 and "operationMode" in body["detail"]
    status, _ = await raw(
        session, server, "POST", "/batteries/nope/operation-mode", token=token, json={}
    )
    assert status == 404
    status, _ = await raw(session, server, "GET", "/batteries/actions/nope", token=token)
    assert status == 404
    assert sim.received[-1] == ("GET", "/batteries/actions/nope", None)


async def test_simulator_canned_replies(serve: Serve, session: aiohttp.ClientSession) -> None:
    sim, server = await serve()
    sim.canned.append(Canned("/batteries", 418, raw=b"teapot", content_type="text/plain"))
    sim.canned.append(Canned("/batteries", 204))
    assert await raw(session, server, "GET", "/batteries") == (418, "teapot")
    assert (await raw(session, server, "GET", "/batteries"))[0] == 204
    assert (await raw(session, server, "GET", "/batteries"))[0] == 401


async def test_simulator_physics(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim, server = await serve(action_delay=0.0)
    backend = make_backend(session, server)
    full = make_battery("full", level=99.99, charge_rate_kw=3.0, operation_mode="IMPORT_FOCUS")
    sim.add_battery(full)
    sim.add_battery(make_battery("broken", level=None))
    sim.batteries["broken"]["chargeState"] = None
    start = await backend.async_get_snapshot(POWERWALL_ID)  # IMPORT_FOCUS, 4.6 kW
    clock.advance(600)
    charged = await backend.async_get_snapshot(POWERWALL_ID)
    assert charged.state.state_of_charge is not None and start.state.state_of_charge is not None
    assert charged.state.state_of_charge > start.state.state_of_charge
    assert charged.state.power_w == pytest.approx(-3000.0, abs=10)
    assert (await backend.async_get_snapshot("full")).state.power_w == 0.0
    assert (await backend.async_get_snapshot("broken")).state.power_w is None

    await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    clock.advance(600)
    discharging = await backend.async_get_snapshot(POWERWALL_ID)
    assert discharging.control.command_status is CommandStatus.CONFIRMED
    assert discharging.state.power_w == pytest.approx(3000.0, abs=10)
    assert discharging.state.charge_status is ChargeStatus.DISCHARGING
    sim.batteries[POWERWALL_ID]["chargeState"]["batteryLevel"] = 20.01
    clock.advance(600)
    at_reserve = await backend.async_get_snapshot(POWERWALL_ID)
    assert at_reserve.state.power_w == 0.0
    assert at_reserve.state.charge_status is ChargeStatus.IDLE

    await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.TIME_OF_USE))
    sim.batteries[POWERWALL_ID]["chargeState"]["chargeRate"] = 2.0
    clock.advance(30)
    drifting = await backend.async_get_snapshot(POWERWALL_ID)
    assert drifting.state.power_w == pytest.approx(-1000.0, abs=10)

    sim.physics = False
    frozen = copy.deepcopy(sim.batteries[POWERWALL_ID]["chargeState"])
    clock.advance(600)
    await backend.async_get_snapshot(POWERWALL_ID)
    assert sim.batteries[POWERWALL_ID]["chargeState"] == frozen


async def test_simulator_action_for_a_deleted_battery(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim, server = await serve()
    backend = make_backend(session, server)
    await backend.async_apply(ENPHASE_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    del sim.batteries[ENPHASE_ID]
    clock.advance(6)
    action = backend.tracked_action(ENPHASE_ID)
    assert action is not None
    assert (await backend.async_get_action(action.id)).state is CommandStatus.CONFIRMED


def test_simulator_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[tuple[web.Application, str, int]] = []

    def fake_run_app(app: web.Application, *, host: str, port: int, print: Any) -> None:
        served.append((app, host, port))

    monkeypatch.setattr(web, "run_app", fake_run_app)
    argv = ["enode", "--client-id", "cid", "--client-secret", "cs", "--token-ttl", "60"]
    argv += ["--action-delay", "1.5", "--page-size", "2", "--speed", "10"]
    assert simulator_main.main(argv) == 0
    ((app, host, port),) = served
    sim = app[SIM]
    assert (host, port) == ("127.0.0.1", enode_sim.DEFAULT_PORT)
    assert (sim.client_id, sim.client_secret, sim.token_ttl) == ("cid", "cs", 60.0)
    assert (sim.action_delay, sim.page_size, sim.speed) == (1.5, 2, 10.0)
    assert list(sim.batteries) == [POWERWALL_ID, ENPHASE_ID]

    parser = argparse.ArgumentParser()
    enode_sim.add_arguments(parser)
    defaults = parser.parse_args([])
    assert (defaults.port, defaults.client_id, defaults.client_secret) == (
        8083,
        "demo-client",
        "demo-secret",
    )
    assert enode_sim.app_from_args(defaults)[SIM].token_ttl == 3600.0


def test_simulator_wall_clock(clock: ManualClock) -> None:
    sim = EnodeSimulator(clock=clock)
    first = sim.now_iso()
    clock.advance(3600)
    later = sim.now_iso()
    assert first.endswith("Z") and later.endswith("Z")
    parsed = [datetime.fromisoformat(t) for t in (first, later)]
    assert (parsed[1] - parsed[0]).total_seconds() == pytest.approx(3600, abs=1)


async def test_simulator_edge_cases(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    assert make_battery("d", charge_rate_kw=-1.0)["chargeState"]["status"] == "DISCHARGING"
    sim, server = await serve()
    sim.add_battery(make_battery("empty", capacity_kwh=0.0))
    sim.add_battery(make_battery("text", level=None))
    sim.batteries["text"]["chargeState"]["batteryLevel"] = "80"
    backend = make_backend(session, server)
    # two batteries with pending actions at once: only the same battery's action is cancelled
    await backend.async_apply(POWERWALL_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    await backend.async_apply(ENPHASE_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    powerwall = backend.tracked_action(POWERWALL_ID)
    assert powerwall is not None
    assert (await backend.async_get_action(powerwall.id)).state is CommandStatus.PENDING
    clock.advance(60)
    assert (await backend.async_get_snapshot("empty")).state.power_w == 0.0
    assert sim.batteries["text"]["chargeState"]["batteryLevel"] == "80"
    token = await sim_token(session, server)
    for cursor in ("__4", "a"):  # not UTF-8; not base64
        status, _ = await raw(session, server, "GET", f"/batteries?after={cursor}", token=token)
        assert status == 400


# --------------------------------------------------------------------------------------------------
# Enode-Version, timestamps
# --------------------------------------------------------------------------------------------------


async def test_every_api_request_pins_the_api_version(
    serve: Serve, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim, server = await serve(action_delay=1.0)
    backend = make_backend(session, server)
    await backend.async_list_batteries()
    await backend.async_apply(ENPHASE_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
    await backend.async_get_snapshot(ENPHASE_ID)  # polls the pending action too
    assert len(sim.api_versions) == 4  # the token request is not an API request
    assert set(sim.api_versions) == {enode_api.API_VERSION}
    assert enode_api.API_VERSION == "2024-10-01"


async def test_simulator_checks_the_api_version(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    sim, server = await serve()
    token = await sim_token(session, server)
    status, body = await raw(
        session, server, "GET", "/batteries", token=token, headers={"Enode-Version": "2099-01-01"}
    )
    assert status == 400
    assert body["type"].endswith("/invalid-version")
    assert "2024-10-01" in body["detail"]
    for version in ({"Enode-Version": "2023-08-01"}, {}):  # older or the client's default
        status, _ = await raw(session, server, "GET", "/batteries", token=token, headers=version)
        assert status == 200
    assert sim.api_versions == ["2099-01-01", "2023-08-01", None]


async def test_unknown_api_version_is_reported(
    serve: Serve, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, server = await serve()
    monkeypatch.setattr(enode_api, "API_VERSION", "1999-01-01")
    with pytest.raises(ProtocolError, match="Enode-Version must be one of"):
        await make_backend(session, server).async_list_batteries()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-10-07T17:03:26Z", datetime(2024, 10, 7, 17, 3, 26, tzinfo=UTC)),
        ("2024-10-07t17:03:26z", datetime(2024, 10, 7, 17, 3, 26, tzinfo=UTC)),
        ("2024-10-07T19:03:26+02:00", datetime(2024, 10, 7, 17, 3, 26, tzinfo=UTC)),
        ("2024-10-07T12:03:26-05:00", datetime(2024, 10, 7, 17, 3, 26, tzinfo=UTC)),
        ("2024-10-07T17:03:26.5Z", datetime(2024, 10, 7, 17, 3, 26, 500000, tzinfo=UTC)),
        ("2024-10-07T17:03:26.123456789Z", datetime(2024, 10, 7, 17, 3, 26, 123456, tzinfo=UTC)),
        ("2024-10-07T17:03:26", datetime(2024, 10, 7, 17, 3, 26, tzinfo=UTC)),  # read as UTC
    ],
)
async def test_rfc3339_timestamps(
    serve: Serve, session: aiohttp.ClientSession, text: str, expected: datetime
) -> None:
    sim, server = await serve(physics=False)
    sim.batteries[POWERWALL_ID]["chargeState"]["lastUpdated"] = text
    sim.batteries[POWERWALL_ID]["config"]["lastUpdated"] = text
    snapshot = await make_backend(session, server).async_get_snapshot(POWERWALL_ID)
    assert snapshot.state.last_updated == expected
    assert snapshot.state.last_updated.tzinfo is not None
    assert snapshot.control.current is not None
    assert snapshot.control.current.timestamp == expected
    action = parse_action({"id": "a", "state": "PENDING", "createdAt": text, "completedAt": text})
    assert action.created_at == action.completed_at == expected


@pytest.mark.parametrize(
    "text", ["2024-10-07", "2024-10-07T17:03Z", "20241007T170326Z", "2024-10-07T17:03:26+0200", ""]
)
def test_non_rfc3339_timestamps_are_protocol_errors(text: str) -> None:
    with pytest.raises(ProtocolError, match=r"chargeState\.lastUpdated: not an RFC 3339"):
        parse_battery({"id": "b", "chargeState": {"lastUpdated": text}})
    with pytest.raises(ProtocolError, match="createdAt"):
        parse_action({"id": "a", "state": "PENDING", "createdAt": text})


async def test_token_endpoint_conflict_is_a_protocol_error(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    # not a refused command: nothing was asked of a battery
    sim, server = await serve()
    sim.canned.append(Canned("/oauth2/token", 409, {"title": "Conflict"}))
    with pytest.raises(ProtocolError, match="HTTP 409: Conflict"):
        await make_backend(session, server).async_validate()


# --------------------------------------------------------------------------------------------------
# Fuzzing: every endpoint, odd bodies, every status -> the documented error class
# --------------------------------------------------------------------------------------------------

ACTION_ID = "0b9e6bd4-4f35-4e1f-9d8c-1f3b8c9b7a11"
ENDPOINTS: dict[str, str] = {
    # endpoint: the path its canned replies go to
    "token": "/oauth2/token",
    "list": "/batteries",
    "battery": f"/batteries/{POWERWALL_ID}",
    "apply": f"/batteries/{ENPHASE_ID}/operation-mode",
    "action": f"/batteries/actions/{ACTION_ID}",
}
HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
ODD_BODIES: dict[str, tuple[bytes, str]] = {
    "html": (HTML, "text/html"),
    "html_as_json": (b"\n  <!DOCTYPE html>" + HTML, "application/json"),
    "empty": (b"", "application/json"),
    "blank": (b" \r\n ", "application/json"),
    "garbage": (bytes(range(256)) * 4, "application/octet-stream"),
    "truncated": (b'{"id": "x", "chargeState": {"batteryLevel": 5', "application/json"),
    "list": (b'["unexpected", 1, null]', "application/json"),
    "object": (b'{"id": 7, "data": "x", "access_token": [], "state": 1}', "application/json"),
    "nan": (b'{"id": "x", "chargeState": {"batteryLevel": NaN}}', "application/json"),
    "infinity": (b'{"access_token": "t", "expires_in": Infinity}', "application/json"),
    "huge": (b'{"data": [' + b"0," * 600_000 + b"0]}", "application/json"),
}
STATUSES = (200, 400, 401, 403, 404, 409, 429, 500, 502, 503)


def enode_expected(endpoint: str, status: int, kind: str) -> type[BackendError]:
    """Return the documented error of an odd reply."""
    if kind == "huge":
        return ProtocolError  # over the 1 MiB cap, whatever the status
    if endpoint == "token" and status in (400, 401, 403):
        return AuthError
    if status in (401, 403):
        return AuthError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return CannotConnectError
    if status == 404:
        return {
            "battery": UnknownBatteryError,
            "apply": UnknownBatteryError,
            "action": NotSupportedError,
        }.get(endpoint, ProtocolError)
    if status in (400, 409):
        return CommandRejectedError if endpoint == "apply" else ProtocolError
    return ProtocolError  # 200: every reply must parse


async def call_enode(backend: EnodeBackend, endpoint: str) -> None:
    match endpoint:
        case "token":
            await backend.async_validate()
        case "list":
            await backend.async_list_batteries()
        case "battery":
            await backend.async_get_snapshot(POWERWALL_ID)
        case "apply":
            await backend.async_apply(ENPHASE_ID, ControlCommand(ControlMode.EXPORT_FOCUS))
        case _:
            await backend.async_get_action(ACTION_ID)


@pytest.mark.parametrize("kind", list(ODD_BODIES))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_fuzz_odd_replies_on_every_endpoint(
    serve: Serve, session: aiohttp.ClientSession, endpoint: str, kind: str
) -> None:
    sim, server = await serve()
    body, content_type = ODD_BODIES[kind]
    for status in STATUSES:
        backend = make_backend(session, server)
        sim.canned[:] = [Canned(ENDPOINTS[endpoint], status, raw=body, content_type=content_type)]
        sim.canned[0].count = 2  # a 401 is retried once with a new token
        expected = enode_expected(endpoint, status, kind)
        with pytest.raises(BackendError) as caught:
            await call_enode(backend, endpoint)
        assert type(caught.value) is expected, (status, caught.value)
        assert_no_secrets(caught.value)
        assert len(str(caught.value)) < 400


@pytest.fixture
async def fuzz_server(serve: Serve) -> tuple[EnodeSimulator, TestServer]:
    """One simulator for every example of a hypothesis test."""
    return await serve()


@settings(FUZZ, max_examples=150)
@given(
    endpoint=st.sampled_from(list(ENDPOINTS)),
    status=st.sampled_from(STATUSES),
    body=st.binary(max_size=300) | st.sampled_from([body for body, _ in ODD_BODIES.values()]),
    content_type=st.sampled_from(["application/json", "text/html", "text/plain"]),
)
async def test_fuzz_random_replies_end_in_backend_errors(
    fuzz_server: tuple[EnodeSimulator, TestServer],
    session: aiohttp.ClientSession,
    *,
    endpoint: str,
    status: int,
    body: bytes,
    content_type: str,
) -> None:
    sim, server = fuzz_server
    sim.canned.clear()
    sim.canned.append(Canned(ENDPOINTS[endpoint], status, raw=body, content_type=content_type))
    sim.canned[-1].count = 2
    error: BackendError | None = None
    try:
        await call_enode(make_backend(session, server), endpoint)
    except BackendError as err:  # anything else fails the test
        error = err
    if error is None:
        assert status == 200
        return
    assert_no_secrets(error)
    if status != 200 and len(body) < 1000:
        assert type(error) is enode_expected(endpoint, status, "any")
