"""Tests of the FlexConnect client against the FlexConnect simulator over loopback HTTP."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
import json
import math
from pathlib import Path
import socket
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
    BatteryState,
    CannotConnectError,
    CommandRejectedError,
    CommandStatus,
    ControlCommand,
    ControlMode,
    ControlState,
    ControlStatus,
    NotSupportedError,
    OperationState,
    ProtocolError,
    RateLimitedError,
    UnknownBatteryError,
)
from custom_components.battery_bridge.api.flexconnect import (
    CONTROL_REQUEST,
    MODIFY_REQUEST,
    STATE_REQUEST,
    FlexConnectBackend,
    encode_scaled_number,
    parse_battery_state,
    parse_control_status,
    parse_scaled_number,
    parse_version,
)
from simulator.faults import FAULTS, Fault
from simulator.flexconnect import (
    DEMO_BATTERIES,
    FLEXCONNECT,
    Canned,
    FlexConnectSimulator,
    add_arguments,
    app_from_args,
    create_app,
    env_settings,
)
from tests.conftest import ManualClock, StartApp

pytestmark = pytest.mark.usefixtures("socket_enabled")  # loopback HTTP to the simulator

FIXTURES = Path(__file__).parent / "fixtures"
BAT1, BAT2 = DEMO_BATTERIES
LATENCY = 30.0
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - only parsed, never bound

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Setup:
    """A running simulator and a client pointed at it."""

    app: web.Application
    server: TestServer
    backend: FlexConnectBackend
    clock: ManualClock
    session: aiohttp.ClientSession

    @property
    def sim(self) -> FlexConnectSimulator:
        return self.app[FLEXCONNECT]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def bodies(self, name: str) -> list[Any]:
        return [body for request, body in self.sim.received if request == name]


@pytest.fixture
async def setup(start_app: StartApp, session: aiohttp.ClientSession) -> Setup:
    clock = ManualClock()
    app = create_app(latency=LATENCY, clock=clock)
    server = await start_app(app)
    backend = FlexConnectBackend(session, "127.0.0.1", server.port, request_timeout=2.0)
    return Setup(app, server, backend, clock, session)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# Reading: state, control, version
# --------------------------------------------------------------------------------------------------


async def test_validate_reads_version(setup: Setup) -> None:
    await setup.backend.async_validate()
    snapshot = await setup.backend.async_get_snapshot(BAT1)
    assert snapshot.info.sw_version == "1.4.2"
    # validate cached the version: the snapshot did not ask again
    gets = [path for method, path in setup.app[FAULTS].requests if method == "GET"]
    assert gets == ["/version"]


async def test_snapshot_of_demo_battery(setup: Setup) -> None:
    snapshot = await setup.backend.async_get_snapshot(BAT1)
    assert snapshot.info.battery_id == BAT1
    assert snapshot.info.name == "FlexConnect F8292C"
    assert snapshot.info.manufacturer == "FlexHome"
    assert snapshot.info.model == "FlexConnect battery"
    assert snapshot.info.sw_version == "1.4.2"
    state = snapshot.state
    assert state.state_of_charge == pytest.approx(50.0)
    assert state.state_of_health == pytest.approx(98.5)
    assert state.stored_energy_wh == pytest.approx(5000.0)
    assert state.usable_capacity_wh == pytest.approx(10000.0)
    assert state.operation_state is OperationState.NORMAL
    assert state.power_w is None  # FlexConnect has no power reading; never made up
    control = snapshot.control
    assert control.current is not None
    assert control.current.mode is ControlMode.AUTO
    assert control.current.setpoint_w == 0
    assert control.control_state is ControlState.AUTO_CONTROLLED
    assert control.command_status is CommandStatus.CONFIRMED
    caps = snapshot.capabilities
    assert caps.modes == (ControlMode.POWER, ControlMode.PCC, ControlMode.AUTO)
    assert caps.setpoint_modes == frozenset(caps.modes)
    assert caps.min_power_w is None and caps.max_power_w is None
    assert caps.command_timeout_s is None
    assert set(snapshot.raw) == {STATE_REQUEST, CONTROL_REQUEST, "version"}
    # the raw replies are the protobuf-JSON as sent: string numbers, negative and positive scales
    raw_state = snapshot.raw[STATE_REQUEST]["state"]
    assert raw_state["stateOfCharge"] == {"number": 500, "scale": -1}
    assert raw_state["stateOfEnergy"] == {"number": "5000"}
    assert raw_state["usableCapacity"] == {"number": 10, "scale": 3}
    assert snapshot.raw[CONTROL_REQUEST]["currentControlInstructions"]["setpointPower"] == {}


async def test_second_demo_battery_has_no_desired(setup: Setup) -> None:
    snapshot = await setup.backend.async_get_snapshot(BAT2)
    assert snapshot.raw[STATE_REQUEST]["state"]["stateOfCharge"] == {"number": 345, "scale": -1}
    assert snapshot.state.state_of_charge == pytest.approx(34.5)
    assert snapshot.control.desired is None
    assert snapshot.control.command_status is None
    assert not snapshot.control.pending


async def test_requests_are_well_formed_with_fresh_req_ids(setup: Setup) -> None:
    await setup.backend.async_get_snapshot(BAT1.lower())  # ids are case-insensitive SKIs
    await setup.backend.async_get_snapshot(BAT1)
    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.AUTO, 0))
    bodies = [body for _, body in setup.sim.received]
    assert [name for name, _ in setup.sim.received] == [
        STATE_REQUEST,
        CONTROL_REQUEST,
        STATE_REQUEST,
        CONTROL_REQUEST,
        MODIFY_REQUEST,
    ]
    req_ids = [body["header"]["reqId"] for body in bodies]
    assert len(set(req_ids)) == len(req_ids)
    assert req_ids == sorted(req_ids)
    for body in bodies:
        assert body["header"]["timeoutMs"] == 2000  # capped at the HTTP timeout (2 s)
        assert body["deviceId"] == {"type": {"id": 2}, "stringValue": BAT1}


async def test_request_shape_matches_vendor_example(setup: Setup) -> None:
    backend = FlexConnectBackend(setup.session, "127.0.0.1", setup.server.port)
    await backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, 0))
    sent = setup.bodies(MODIFY_REQUEST)[-1]
    example = load("flexconnect_modify_request.json")
    assert sent.keys() == example.keys()
    assert sent["header"]["timeoutMs"] == example["header"]["timeoutMs"] == 10000
    assert sent["deviceId"] == example["deviceId"]
    assert sent["controlMode"] == example["controlMode"]
    assert sent["setpointPower"] == example["setpointPower"]


async def test_req_id_wraps(setup: Setup) -> None:
    setup.backend._client._req_id = 2**31 - 1
    await setup.backend.async_get_snapshot(BAT1)
    assert setup.bodies(STATE_REQUEST)[0]["header"]["reqId"] == 1


async def test_req_id_mismatch_is_protocol_error(setup: Setup) -> None:
    setup.sim.reply_req_id = 7
    with pytest.raises(ProtocolError, match="reqId"):
        await setup.backend.async_get_snapshot(BAT1)


async def test_req_id_echo_as_string_is_accepted(setup: Setup) -> None:
    next_id = setup.backend._client._req_id + 1
    setup.sim.canned[STATE_REQUEST] = Canned(body={"header": {"reqId": str(next_id)}})
    snapshot = await setup.backend.async_get_snapshot(BAT1)  # 64-bit numbers as strings
    assert snapshot.state == BatteryState()
    assert setup.bodies(STATE_REQUEST)[0]["header"]["reqId"] == next_id


async def test_reply_without_header_is_accepted(setup: Setup) -> None:
    setup.sim.canned[STATE_REQUEST] = Canned(body={"state": {"stateOfCharge": {"number": 1}}})
    snapshot = await setup.backend.async_get_snapshot(BAT1)
    assert snapshot.state.state_of_charge == 1.0


async def test_enum_names_instead_of_numbers(setup: Setup) -> None:
    setup.sim.enum_names = True
    setup.sim.set_operation_state(BAT1, 3)
    snapshot = await setup.backend.async_get_snapshot(BAT1)
    raw = snapshot.raw[CONTROL_REQUEST]["currentControlInstructions"]
    assert raw["controlMode"] == "AUTO"
    assert raw["controlState"] == "AUTO_CONTROLLED"
    assert snapshot.raw[STATE_REQUEST]["state"]["stateOfOperation"] == "TEMPORARILY_NOT_READY"
    assert snapshot.state.operation_state is OperationState.NOT_READY
    assert snapshot.control.current is not None
    assert snapshot.control.current.mode is ControlMode.AUTO
    assert snapshot.control.control_state is ControlState.AUTO_CONTROLLED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, OperationState.NORMAL),
        (2, OperationState.STANDBY),
        (3, OperationState.NOT_READY),
        (4, OperationState.OFF),
        (5, OperationState.FAILURE),
    ],
)
async def test_operation_states(setup: Setup, value: int, expected: OperationState) -> None:
    setup.sim.set_operation_state(BAT1, value)
    assert (await setup.backend.async_get_snapshot(BAT1)).state.operation_state is expected


async def test_omitted_messages_read_as_none(setup: Setup) -> None:
    setup.sim.omit = {"state", "currentControlInstructions", "desiredControlInstructions"}
    snapshot = await setup.backend.async_get_snapshot(BAT1)
    assert snapshot.state == BatteryState()
    assert snapshot.control == ControlStatus()


async def test_desired_without_current_is_pending(setup: Setup) -> None:
    setup.sim.omit = {"currentControlInstructions"}
    control = (await setup.backend.async_get_snapshot(BAT1)).control
    assert control.current is None
    assert control.control_state is None
    assert control.desired is not None
    assert control.command_status is CommandStatus.PENDING


async def test_failsafe_control_state(setup: Setup) -> None:
    setup.sim.batteries[BAT1].control_state = 6
    control = (await setup.backend.async_get_snapshot(BAT1)).control
    assert control.control_state is ControlState.FAILSAFE


async def test_vendor_documented_replies_over_the_wire(setup: Setup) -> None:
    """The examples of the vendor's First Steps guide, served verbatim."""
    state_reply = load("flexconnect_state_reply.json")
    control_reply = load("flexconnect_control_reply.json")
    setup.sim.canned[STATE_REQUEST] = Canned(body=state_reply)
    setup.sim.canned[CONTROL_REQUEST] = Canned(body=control_reply)
    # the canned replies echo reqId 1234: start the client's counter just below it
    setup.backend._client._req_id = 1233
    with pytest.raises(ProtocolError, match="reqId"):  # the state reply matches, control not
        await setup.backend.async_get_snapshot(BAT1)
    del state_reply["header"]
    del control_reply["header"]
    snapshot = await setup.backend.async_get_snapshot(BAT1)
    assert snapshot.state == BatteryState(
        state_of_charge=34.0,
        state_of_health=100.0,
        stored_energy_wh=680.0,
        usable_capacity_wh=2000.0,
        operation_state=OperationState.NORMAL,
    )
    control = snapshot.control
    assert control.control_state is ControlState.POWER
    assert control.current is not None and control.desired is not None
    assert control.current.mode is ControlMode.POWER
    assert control.current.timestamp == datetime(2026, 2, 11, 14, 20, 28, 78000, tzinfo=UTC)
    assert control.desired.timestamp == datetime(2026, 2, 11, 14, 19, 55, 253000, tzinfo=UTC)
    assert control.command_status is CommandStatus.CONFIRMED


# --------------------------------------------------------------------------------------------------
# Writing: sign convention, desired vs current, drift
# --------------------------------------------------------------------------------------------------


async def test_sign_convention_on_the_wire(setup: Setup) -> None:
    """Vendor: setpointPower + = charging. Ours: + = discharging."""
    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, -2000))
    sent = setup.bodies(MODIFY_REQUEST)[-1]
    assert sent["controlMode"] == 1
    assert sent["setpointPower"] == {"number": 2000, "scale": 0}
    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.PCC, 1500))
    sent = setup.bodies(MODIFY_REQUEST)[-1]
    assert sent["controlMode"] == 2
    assert sent["setpointPower"] == {"number": -1500, "scale": 0}


async def test_sign_convention_when_reading(setup: Setup) -> None:
    battery = setup.sim.batteries[BAT1]
    battery.current.mode = 1
    battery.current.setpoint_w = 1500  # the battery charges with 1.5 kW (their sign)
    control = (await setup.backend.async_get_snapshot(BAT1)).control
    assert control.current is not None
    assert control.current.setpoint_w == -1500
    raw = (await setup.backend.async_get_snapshot(BAT1)).raw[CONTROL_REQUEST]
    assert raw["currentControlInstructions"]["setpointPower"] == {"number": 1500}


async def test_pending_until_latency_then_confirmed(setup: Setup) -> None:
    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, -2000))
    control = (await setup.backend.async_get_snapshot(BAT1)).control
    assert control.command_status is CommandStatus.PENDING
    assert control.pending
    assert control.desired is not None and control.current is not None
    assert (control.desired.mode, control.desired.setpoint_w) == (ControlMode.POWER, -2000)
    assert (control.current.mode, control.current.setpoint_w) == (ControlMode.AUTO, 0)
    assert control.control_state is ControlState.AUTO_CONTROLLED

    setup.clock.advance(LATENCY - 1)
    assert (await setup.backend.async_get_snapshot(BAT1)).control.pending

    setup.clock.advance(1)
    control = (await setup.backend.async_get_snapshot(BAT1)).control
    assert control.command_status is CommandStatus.CONFIRMED
    assert control.current is not None
    assert (control.current.mode, control.current.setpoint_w) == (ControlMode.POWER, -2000)
    assert control.control_state is ControlState.POWER
    assert control.current.timestamp is not None and control.desired is not None
    assert control.desired.timestamp is not None
    assert (control.current.timestamp - control.desired.timestamp).total_seconds() == LATENCY

    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.PCC, 0))
    setup.clock.advance(LATENCY)
    control = (await setup.backend.async_get_snapshot(BAT1)).control
    assert control.control_state is ControlState.PCC
    assert control.current is not None and control.current.mode is ControlMode.PCC


async def test_confirmed_in_real_time(start_app: StartApp, session: aiohttp.ClientSession) -> None:
    server = await start_app(create_app(latency=0.05))
    backend = FlexConnectBackend(session, "127.0.0.1", server.port)
    await backend.async_apply(BAT2, ControlCommand(ControlMode.POWER, 1000))
    assert (await backend.async_get_snapshot(BAT2)).control.pending
    await asyncio.sleep(0.1)
    control = (await backend.async_get_snapshot(BAT2)).control
    assert control.command_status is CommandStatus.CONFIRMED
    assert control.current is not None and control.current.setpoint_w == 1000


async def test_state_drifts_with_the_current_setpoint(setup: Setup) -> None:
    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, -2000))  # charge 2 kW
    setup.clock.advance(LATENCY)  # applied now; no drift before (the current setpoint was 0)
    assert (await setup.backend.async_get_snapshot(BAT1)).state.stored_energy_wh == 5000.0
    setup.clock.advance(1800)  # half an hour at 2 kW
    state = (await setup.backend.async_get_snapshot(BAT1)).state
    assert state.stored_energy_wh == pytest.approx(6000.0)
    assert state.state_of_charge == pytest.approx(60.0)
    setup.clock.advance(10 * 3600)  # clamped at the usable capacity
    state = (await setup.backend.async_get_snapshot(BAT1)).state
    assert state.stored_energy_wh == pytest.approx(10000.0)
    assert state.state_of_charge == pytest.approx(100.0)

    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, 5000))  # discharge
    setup.clock.advance(LATENCY + 3600)
    state = (await setup.backend.async_get_snapshot(BAT1)).state
    assert state.stored_energy_wh == pytest.approx(5000.0)
    setup.clock.advance(2 * 3600)  # clamped at empty; the protobuf JSON omits the zeros
    snapshot = await setup.backend.async_get_snapshot(BAT1)
    assert snapshot.raw[STATE_REQUEST]["state"]["stateOfEnergy"] == {}
    assert snapshot.raw[STATE_REQUEST]["state"]["stateOfCharge"] == {"scale": -1}
    assert snapshot.state.stored_energy_wh == 0.0
    assert snapshot.state.state_of_charge == 0.0


async def test_speedup_and_no_drift_unless_normal(
    start_app: StartApp, session: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    app = create_app(batteries=[BAT1], latency=0.0, speedup=60.0, clock=clock)
    server = await start_app(app)
    backend = FlexConnectBackend(session, "127.0.0.1", server.port)
    await backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, -1000))
    clock.advance(60)  # one simulated hour
    assert (await backend.async_get_snapshot(BAT1)).state.stored_energy_wh == pytest.approx(6000)
    app[FLEXCONNECT].set_operation_state(BAT1, 2)  # standby: no drift
    clock.advance(60)
    assert (await backend.async_get_snapshot(BAT1)).state.stored_energy_wh == pytest.approx(6000)


async def test_failed_battery_does_not_apply_commands(setup: Setup) -> None:
    setup.sim.set_operation_state(BAT1, 5)
    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, -1000))
    setup.clock.advance(LATENCY * 3)
    snapshot = await setup.backend.async_get_snapshot(BAT1)
    assert snapshot.control.pending
    assert snapshot.state.operation_state is OperationState.FAILURE
    setup.sim.set_operation_state(BAT1, 1)  # back to normal: applied at once, drifts from now
    setup.clock.advance(3600)
    snapshot = await setup.backend.async_get_snapshot(BAT1)
    assert snapshot.control.command_status is CommandStatus.CONFIRMED
    assert snapshot.state.stored_energy_wh == pytest.approx(6000.0)


async def test_apply_without_setpoint_reuses_the_last_known(setup: Setup) -> None:
    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.AUTO))  # nothing known: 0
    assert setup.bodies(MODIFY_REQUEST)[-1]["setpointPower"] == {"number": 0, "scale": 0}
    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, 800))
    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.PCC))
    assert setup.bodies(MODIFY_REQUEST)[-1] | {"header": None} == {
        "header": None,
        "deviceId": {"type": {"id": 2}, "stringValue": BAT1},
        "controlMode": 2,
        "setpointPower": {"number": -800, "scale": 0},
    }
    # a new client learns the desired setpoint from a snapshot
    other = FlexConnectBackend(setup.session, "127.0.0.1", setup.server.port)
    snapshot = await other.async_get_snapshot(BAT1)
    assert snapshot.control.desired is not None and snapshot.control.desired.setpoint_w == 800
    await other.async_apply(BAT1, ControlCommand(ControlMode.POWER))
    assert setup.bodies(MODIFY_REQUEST)[-1]["setpointPower"] == {"number": -800, "scale": 0}


async def test_apply_unsupported_mode_sends_nothing(setup: Setup) -> None:
    for mode in (ControlMode.SELF_RELIANCE, ControlMode.UNKNOWN, ControlMode.TIME_OF_USE):
        with pytest.raises(NotSupportedError):
            await setup.backend.async_apply(BAT1, ControlCommand(mode, 0))
    assert setup.sim.received == []


async def test_apply_rejected_by_the_client(setup: Setup) -> None:
    with pytest.raises(CommandRejectedError, match="OUT_OF_RANGE"):
        await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, 20000))
    control = (await setup.backend.async_get_snapshot(BAT1)).control
    assert control.command_status is CommandStatus.CONFIRMED  # nothing changed


async def test_max_power_bounds(setup: Setup) -> None:
    backend = FlexConnectBackend(setup.session, "127.0.0.1", setup.server.port, max_power_w=3000)
    assert backend.capabilities.min_power_w == -3000
    assert backend.capabilities.max_power_w == 3000
    with pytest.raises(CommandRejectedError, match="3000"):
        await backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, -3001))
    assert setup.sim.received == []
    await backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, -3000))
    assert setup.bodies(MODIFY_REQUEST)[-1]["setpointPower"] == {"number": 3000, "scale": 0}


async def test_empty_reply_object_and_204_are_success(setup: Setup) -> None:
    setup.sim.canned[MODIFY_REQUEST] = Canned(body={})
    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.AUTO, 0))
    setup.sim.canned[MODIFY_REQUEST] = Canned(status=204)
    await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.AUTO, 0))
    for empty in (b"", b" \r\n"):
        setup.sim.canned[MODIFY_REQUEST] = Canned(raw=empty)
        await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.AUTO, 0))
    assert len(setup.bodies(MODIFY_REQUEST)) == 4


@pytest.mark.parametrize("empty_body", [False, True])
async def test_modify_with_an_empty_reply_body(
    start_app: StartApp, session: aiohttp.ClientSession, *, empty_body: bool
) -> None:
    # the guide: "An empty response represents a successful operation"
    clock = ManualClock()
    app = create_app(latency=LATENCY, clock=clock, empty_modify_reply=empty_body)
    server = await start_app(app)
    async with session.post(
        server.make_url(f"/app/v1/{MODIFY_REQUEST}"),
        json={
            "header": {"reqId": 5},
            "deviceId": {"type": {"id": 2}, "stringValue": BAT1},
            "controlMode": 1,
        },
    ) as response:
        assert response.status == 200
        assert (await response.read()) == (b"" if empty_body else b'{"header": {"reqId": 5}}')
    backend = FlexConnectBackend(session, "127.0.0.1", server.port)
    await backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, -1500))
    control = (await backend.async_get_snapshot(BAT1)).control
    assert control.desired is not None
    assert (control.desired.mode, control.desired.setpoint_w) == (ControlMode.POWER, -1500)
    assert control.command_status is CommandStatus.PENDING
    # a refused command is still an error, with or without the empty success bodies
    with pytest.raises(CommandRejectedError, match="OUT_OF_RANGE"):
        await backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, 20000))
    with pytest.raises(UnknownBatteryError):
        await backend.async_apply("00" * 20, ControlCommand(ControlMode.AUTO, 0))


@pytest.mark.parametrize("name", [STATE_REQUEST, CONTROL_REQUEST])
@pytest.mark.parametrize("canned", [Canned(raw=b""), Canned(raw=b"  \n"), Canned(status=204)])
async def test_empty_read_replies_are_protocol_errors(
    setup: Setup, name: str, canned: Canned
) -> None:
    # the guide calls only an empty modify reply a success; a read needs its reply object
    setup.sim.canned[name] = canned
    with pytest.raises(ProtocolError, match="empty reply"):
        await setup.backend.async_get_snapshot(BAT1)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        (STATE_REQUEST, b'{"header": {"reqId": 1}, "note": NaN}'),
        (CONTROL_REQUEST, b'{"currentControlInstructions": {"timestamp": Infinity}}'),
        (MODIFY_REQUEST, b'{"header": {}, "x": -Infinity}'),
    ],
)
async def test_nan_and_infinity_are_not_json(setup: Setup, name: str, raw: bytes) -> None:
    setup.sim.canned[name] = Canned(raw=raw)
    with pytest.raises(ProtocolError, match="malformed JSON"):
        await call_flexconnect(setup.backend, name)


# --------------------------------------------------------------------------------------------------
# Unknown batteries, listing
# --------------------------------------------------------------------------------------------------


async def test_unknown_battery(setup: Setup) -> None:
    unknown = "00112233445566778899AABBCCDDEEFF00112233"
    with pytest.raises(UnknownBatteryError, match="NOT_FOUND"):
        await setup.backend.async_get_snapshot(unknown)
    with pytest.raises(UnknownBatteryError):
        await setup.backend.async_apply(unknown, ControlCommand(ControlMode.AUTO, 0))
    with pytest.raises(UnknownBatteryError):
        await setup.backend.async_get_snapshot("not-an-ski")
    assert setup.bodies(STATE_REQUEST)[-1]["deviceId"]["stringValue"] == "not-an-ski"


async def test_list_batteries_not_supported(setup: Setup) -> None:
    with pytest.raises(NotSupportedError):
        await setup.backend.async_list_batteries()
    assert setup.app[FAULTS].requests == []


# --------------------------------------------------------------------------------------------------
# Errors: HTTP, bodies, transport
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [
        (Fault.HTML_ERROR, 200, ProtocolError),
        (Fault.HTML_ERROR, 500, CannotConnectError),
        (Fault.HTML_ERROR, 404, ProtocolError),
        (Fault.MALFORMED_JSON, 200, ProtocolError),
        (Fault.WRONG_TYPES, 200, ProtocolError),
        (Fault.EMPTY, 200, ProtocolError),
        (Fault.SERVER_ERROR, 500, CannotConnectError),
        (Fault.SERVER_ERROR, 503, CannotConnectError),
        (Fault.SERVER_ERROR, 504, CannotConnectError),
        (Fault.SERVER_ERROR, 408, CannotConnectError),
        (Fault.SERVER_ERROR, 401, AuthError),
        (Fault.SERVER_ERROR, 403, AuthError),
        (Fault.SERVER_ERROR, 400, ProtocolError),
        (Fault.DROP, 500, CannotConnectError),
    ],
)
async def test_faults_when_reading(
    setup: Setup, fault: Fault, status: int, error: type[Exception]
) -> None:
    setup.app[FAULTS].add(fault, status=status, path="/app/v1/", count=2)
    with pytest.raises(error) as info:
        await setup.backend.async_get_snapshot(BAT1)
    assert type(info.value) is error
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, CommandRejectedError),
        (409, CommandRejectedError),
        (500, CannotConnectError),
        (404, ProtocolError),
    ],
)
async def test_faults_when_writing(setup: Setup, status: int, error: type[Exception]) -> None:
    setup.app[FAULTS].add(Fault.SERVER_ERROR, status=status, path="/app/v1/")
    with pytest.raises(error) as info:
        await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.AUTO, 0))
    assert type(info.value) is error


async def test_timeout(setup: Setup) -> None:
    backend = FlexConnectBackend(setup.session, "127.0.0.1", setup.server.port, request_timeout=0.1)
    setup.app[FAULTS].add(Fault.SLOW, delay=0.5, path="/app/v1/")
    with pytest.raises(CannotConnectError, match=r"did not answer within 0\.1 s"):
        await backend.async_get_snapshot(BAT1)
    await backend.async_get_snapshot(BAT1)  # the slow reply was the only one
    assert setup.bodies(STATE_REQUEST)[-1]["header"]["timeoutMs"] == 100


async def test_connection_refused(session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = FlexConnectBackend(session, "127.0.0.1", port)
    with pytest.raises(CannotConnectError, match="connection failed"):
        await backend.async_validate()
    with pytest.raises(CannotConnectError):
        await backend.async_get_snapshot(BAT1)


async def test_rate_limited(setup: Setup) -> None:
    setup.sim.canned[STATE_REQUEST] = Canned(status=429, headers={"Retry-After": "12"})
    with pytest.raises(RateLimitedError) as info:
        await setup.backend.async_get_snapshot(BAT1)
    assert info.value.retry_after == 12.0
    setup.sim.canned[STATE_REQUEST] = Canned(
        status=429, headers={"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT"}
    )
    with pytest.raises(RateLimitedError) as info:
        await setup.backend.async_get_snapshot(BAT1)
    assert info.value.retry_after == 0.0  # an HTTP-date in the past
    setup.sim.canned[STATE_REQUEST] = Canned(status=429, headers={"Retry-After": "soon"})
    with pytest.raises(RateLimitedError) as info:
        await setup.backend.async_get_snapshot(BAT1)
    assert info.value.retry_after is None
    setup.sim.canned[STATE_REQUEST] = Canned(status=429, headers={"Retry-After": "inf"})
    with pytest.raises(RateLimitedError) as info:
        await setup.backend.async_get_snapshot(BAT1)
    assert info.value.retry_after is None
    setup.sim.canned[STATE_REQUEST] = Canned(status=429)
    with pytest.raises(RateLimitedError) as info:
        await setup.backend.async_get_snapshot(BAT1)
    assert info.value.retry_after is None


@pytest.mark.parametrize(
    ("status", "body", "error", "match"),
    [
        # error bodies inside a 200 reply
        (
            200,
            {"error": {"code": "NOT_FOUND", "message": "no such device"}},
            UnknownBatteryError,
            "NOT_FOUND",
        ),
        (200, {"header": {"error": {"code": 404}}}, UnknownBatteryError, "404"),
        (200, {"error": "Device 1234 not found"}, UnknownBatteryError, "not found"),
        (200, {"error": {"status": "UNKNOWN_DEVICE"}}, UnknownBatteryError, "UNKNOWN_DEVICE"),
        (200, {"error": {"code": "UNAUTHENTICATED"}}, AuthError, "credentials"),
        (200, {"error": {"code": "INTERNAL", "description": "boom"}}, ProtocolError, "boom"),
        # error statuses with or without JSON bodies
        (404, {"error": {"code": "X"}}, UnknownBatteryError, "unknown battery"),
        (404, [], ProtocolError, "no such endpoint"),
        (400, {"error": {"code": "INVALID_ARGUMENT"}}, ProtocolError, "INVALID_ARGUMENT"),
        (502, {"error": {"code": "NOT_FOUND"}}, UnknownBatteryError, "NOT_FOUND"),
        (
            403,
            {"error": {"code": "PERMISSION_DENIED", "message": "  multi\nline  "}},
            AuthError,
            "multi line",
        ),
        # wrong shapes
        (200, {"header": "1234"}, ProtocolError, "header"),
        (200, {"header": {"reqId": "abc"}}, ProtocolError, "reqId"),
        (200, {"header": {"reqId": True}}, ProtocolError, "reqId"),
        (200, "just a string", ProtocolError, "expected an object"),
        (200, {"state": []}, ProtocolError, "state"),
        (200, {"state": {"stateOfCharge": 34}}, ProtocolError, "stateOfCharge"),
        (200, {"state": {"stateOfCharge": {"number": "3x4"}}}, ProtocolError, "number"),
        (200, {"state": {"stateOfOperation": [1]}}, ProtocolError, "stateOfOperation"),
    ],
)
async def test_error_and_wrong_replies(
    setup: Setup, status: int, body: object, error: type[Exception], match: str
) -> None:
    setup.sim.canned[STATE_REQUEST] = Canned(status=status, body=body)
    with pytest.raises(error, match=match) as info:
        await setup.backend.async_get_snapshot(BAT1)
    assert type(info.value) is error


async def test_error_body_on_write(setup: Setup) -> None:
    setup.sim.canned[MODIFY_REQUEST] = Canned(body={"error": {"code": "FAILED_PRECONDITION"}})
    with pytest.raises(CommandRejectedError, match="FAILED_PRECONDITION"):
        await setup.backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, 0))


@pytest.mark.parametrize(
    ("raw", "content_type", "match"),
    [
        (b"\xff\xfe{}", "application/json", "UTF-8"),
        (b"   ", "application/json", "empty"),
        (b"<!doctype html><p>hi</p>", "text/plain", "HTML"),
        (b"{}", "text/html", "HTML"),
        (b"[" * 100000, "application/json", "malformed"),
    ],
)
async def test_undecodable_replies(setup: Setup, raw: bytes, content_type: str, match: str) -> None:
    setup.sim.canned[CONTROL_REQUEST] = Canned(raw=raw, content_type=content_type)
    with pytest.raises(ProtocolError, match=match):
        await setup.backend.async_get_snapshot(BAT1)


async def test_error_status_with_undecodable_body(setup: Setup) -> None:
    setup.sim.canned[STATE_REQUEST] = Canned(status=404, raw=b"\xff", content_type="text/plain")
    with pytest.raises(ProtocolError, match="no such endpoint"):
        await setup.backend.async_get_snapshot(BAT1)


# --------------------------------------------------------------------------------------------------
# /version
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("canned", "version"),
    [
        (Canned(body={"version": " 2.0.1 "}), "2.0.1"),
        (Canned(body={"clientVersion": "3"}), "3"),
        (Canned(body={"version": 7}), "7"),
        (Canned(body="v1.2"), "v1.2"),
        (
            Canned(raw=b"FlexCloudClient 1.9.0\nbuilt today", content_type="text/plain"),
            "FlexCloudClient 1.9.0",
        ),
    ],
)
async def test_version_formats(setup: Setup, canned: Canned, version: str) -> None:
    setup.sim.canned["version"] = canned
    await setup.backend.async_validate()
    assert (await setup.backend.async_get_snapshot(BAT1)).info.sw_version == version


@pytest.mark.parametrize(
    ("canned", "error"),
    [
        (Canned(status=404, raw=b"404: Not Found", content_type="text/plain"), ProtocolError),
        (Canned(status=404, body={"error": {"code": "NOT_FOUND"}}), ProtocolError),
        (Canned(status=401, body={}), AuthError),
        (Canned(status=503), CannotConnectError),
        (Canned(raw=b"<html>hello</html>", content_type="text/html"), ProtocolError),
        (Canned(raw=b"<html>hello</html>", content_type="text/plain"), ProtocolError),
        (Canned(raw=b"\xff", content_type="text/plain"), ProtocolError),
        (Canned(body={"name": "something else"}), ProtocolError),
        (Canned(body=["1.0"]), ProtocolError),
        (Canned(raw=b"", content_type="text/plain"), ProtocolError),
        (Canned(raw=b"{not json", content_type="application/json"), ProtocolError),
        (Canned(raw=b"x" * 65, content_type="text/plain"), ProtocolError),
        (Canned(raw=b'{"version": NaN}'), ProtocolError),  # was read as the version "nan"
    ],
)
async def test_validate_failures(setup: Setup, canned: Canned, error: type[Exception]) -> None:
    setup.sim.canned["version"] = canned
    with pytest.raises(error) as info:
        await setup.backend.async_validate()
    assert type(info.value) is error


async def test_unreadable_version_does_not_fail_the_snapshot(setup: Setup) -> None:
    setup.sim.canned["version"] = Canned(body={"name": "no version"})
    snapshot = await setup.backend.async_get_snapshot(BAT1)
    assert snapshot.info.sw_version is None
    assert "version" not in snapshot.raw
    del setup.sim.canned["version"]
    await setup.backend.async_get_snapshot(BAT1)
    gets = [path for method, path in setup.app[FAULTS].requests if method == "GET"]
    assert gets == ["/version"]  # unreadable: not asked again


async def test_first_polls_at_once_ask_for_the_version_once(setup: Setup) -> None:
    """Batteries polled at the same time (entry set-up) share one GET /version."""
    snapshots = await asyncio.gather(
        *(setup.backend.async_get_snapshot(battery) for battery in (BAT1, BAT2, BAT1))
    )
    assert {snapshot.info.sw_version for snapshot in snapshots} == {"1.4.2"}
    gets = [path for method, path in setup.app[FAULTS].requests if method == "GET"]
    assert gets == ["/version"]


async def test_unreachable_version_is_asked_again(setup: Setup) -> None:
    setup.sim.canned["version"] = Canned(status=502)
    assert (await setup.backend.async_get_snapshot(BAT1)).info.sw_version is None
    del setup.sim.canned["version"]
    assert (await setup.backend.async_get_snapshot(BAT1)).info.sw_version == "1.4.2"


# --------------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------------


def test_base_url_and_kind() -> None:
    session: Any = object()  # no I/O happens in the constructor
    assert FlexConnectBackend.kind is BackendKind.FLEXCONNECT
    assert FlexConnectBackend(session, "flex.local").base_url == "http://flex.local:8080"
    assert FlexConnectBackend(session, "fe80::1", 9000).base_url == "http://[fe80::1]:9000"
    assert FlexConnectBackend(session, "[::1]", 1).base_url == "http://[::1]:1"
    custom = FlexConnectBackend(session, "ignored", base_url="https://proxy.example/flex/")
    assert custom.base_url == "https://proxy.example/flex"


async def test_base_url_is_used(setup: Setup) -> None:
    backend = FlexConnectBackend(setup.session, "ignored", 1, base_url=setup.url + "/")
    await backend.async_validate()
    assert (await backend.async_get_snapshot(BAT2)).info.battery_id == BAT2


# --------------------------------------------------------------------------------------------------
# Parsers: scaled numbers, enums, timestamps (unit tests and fuzzing)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"number": 345, "scale": -1}, 34.5),
        ({"number": 34, "scale": 0}, 34.0),
        ({"number": 34}, 34.0),  # scale missing = 0
        ({"scale": -1}, 0.0),  # number missing = 0
        ({}, 0.0),
        ({"number": None, "scale": None}, 0.0),
        ({"number": "1715769600000"}, 1715769600000.0),  # 64-bit as a string
        ({"number": " -25 ", "scale": "2"}, -2500.0),
        ({"number": 10, "scale": 3}, 10000.0),
        ({"number": 12.5}, 12.5),
        ({"number": "1.5e3", "scale": -3}, 1.5),
        ({"number": 2**63 - 1}, float(2**63 - 1)),
        ({"number": 1, "scale": 127}, 1e127),
        ({"number": 1, "scale": -128}, 1e-128),
        ({"number": 5, "scale": 1.0}, 50.0),
    ],
)
def test_parse_scaled_number(value: object, expected: float) -> None:
    assert parse_scaled_number(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        None,
        34,
        "34",
        [34],
        {"number": True},
        {"number": "abc"},
        {"number": "1" * 70},
        {"number": float("nan")},
        {"number": float("inf")},
        {"number": 2**63},
        {"number": -(2**63) - 1},
        {"number": [1]},
        {"number": 1, "scale": 128},
        {"number": 1, "scale": -129},
        {"number": 1, "scale": 0.5},
        {"number": 1, "scale": "x"},
        {"number": 1, "scale": False},
    ],
)
def test_parse_scaled_number_rejects(value: object) -> None:
    with pytest.raises(ProtocolError):
        parse_scaled_number(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, {"number": 0, "scale": 0}),
        (2000, {"number": 2000, "scale": 0}),
        (-2000, {"number": -2000, "scale": 0}),
        (2**63 - 1, {"number": 2**63 - 1, "scale": 0}),
        (10**20, {"number": 10**18, "scale": 2}),
        (-(10**20) - 6, {"number": -(10**18), "scale": 2}),
    ],
)
def test_encode_scaled_number(value: int, expected: dict[str, int]) -> None:
    assert encode_scaled_number(value) == expected


@given(st.integers(min_value=-(10**30), max_value=10**30))
@FUZZ
def test_encode_round_trips(value: int) -> None:
    encoded = encode_scaled_number(value)
    assert -(2**63) <= encoded["number"] <= 2**63 - 1
    assert parse_scaled_number(encoded) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (1, ControlMode.POWER),
        ("2", ControlMode.PCC),
        (3.0, ControlMode.AUTO),
        ("POWER", ControlMode.POWER),
        ("pcc", ControlMode.PCC),
        ("CONTROL_MODE_AUTO", ControlMode.AUTO),
        ("control-mode-power", ControlMode.POWER),
        ("CONTROL_MODE_UNSPECIFIED", None),
        ("SOMETHING_NEW", None),
        (0, None),
        (9, None),
        (None, None),
    ],
)
def test_control_mode_numbers_and_names(mode: object, expected: ControlMode | None) -> None:
    reply = {"currentControlInstructions": {"controlMode": mode}}
    current = parse_control_status(reply).current
    assert current is not None
    assert current.mode is expected
    assert current.setpoint_w == 0  # setpointPower missing = 0


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("INIT", ControlState.INIT),
        ("CONTROL_STATE_AUTO_UNCONTROLLED", ControlState.AUTO_UNCONTROLLED),
        ("auto_controlled", ControlState.AUTO_CONTROLLED),
        ("Failsafe", ControlState.FAILSAFE),
        (5, ControlState.AUTO_UNCONTROLLED),
        ("7", None),
    ],
)
def test_control_state_numbers_and_names(state: object, expected: ControlState | None) -> None:
    reply = {"currentControlInstructions": {"controlState": state, "controlMode": 1}}
    assert parse_control_status(reply).control_state is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("NORMAL", OperationState.NORMAL),
        ("STATE_OF_OPERATION_STANDBY", OperationState.STANDBY),
        ("not_ready", OperationState.NOT_READY),
        ("OFF", OperationState.OFF),
        ("failure", OperationState.FAILURE),
        ("4", OperationState.OFF),
        (0, None),
    ],
)
def test_operation_state_names(value: object, expected: OperationState | None) -> None:
    assert parse_battery_state({"state": {"stateOfOperation": value}}).operation_state is expected


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1715769600000, datetime(2024, 5, 15, 10, 40, tzinfo=UTC)),
        ("1715769600000", datetime(2024, 5, 15, 10, 40, tzinfo=UTC)),
        ("2024-05-15T10:40:00Z", datetime(2024, 5, 15, 10, 40, tzinfo=UTC)),
        ("2024-05-15T10:40:00", datetime(2024, 5, 15, 10, 40, tzinfo=UTC)),
        ("2024-05-15t12:40:00.123456789+02:00", datetime(2024, 5, 15, 10, 40, 0, 123456, UTC)),
        ("2024-05-15 10:40:00z", datetime(2024, 5, 15, 10, 40, tzinfo=UTC)),
        (0, None),
        ("0", None),
        (None, None),
    ],
)
def test_timestamps(timestamp: object, expected: datetime | None) -> None:
    reply = {"desiredControlInstructions": {"controlMode": 1, "timestamp": timestamp}}
    desired = parse_control_status(reply).desired
    assert desired is not None
    assert desired.timestamp == expected


@pytest.mark.parametrize(
    "timestamp",
    ["yesterday", 10**30, "9" * 25, [1], True, -(10**20), "2024-05-15", "2024-05-15T10:40Z"],
)
def test_bad_timestamps(timestamp: object) -> None:
    with pytest.raises(ProtocolError, match="timestamp"):
        parse_control_status({"currentControlInstructions": {"timestamp": timestamp}})


def test_parse_control_status_rejects_wrong_types() -> None:
    for reply in (
        [],
        {"currentControlInstructions": 1},
        {"desiredControlInstructions": "x"},
        {"currentControlInstructions": {"setpointPower": 5}},
        {"currentControlInstructions": {"controlMode": 1.5}},
        {"currentControlInstructions": {"controlMode": {}}},
        {"currentControlInstructions": {"controlState": False}},
    ):
        with pytest.raises(ProtocolError):
            parse_control_status(reply)


def test_command_status_compares_mode_and_setpoint() -> None:
    def status(current: dict[str, Any], desired: dict[str, Any]) -> CommandStatus | None:
        reply = {"currentControlInstructions": current, "desiredControlInstructions": desired}
        return parse_control_status(reply).command_status

    power_1k = {"controlMode": 1, "setpointPower": {"number": 1, "scale": 3}}
    assert status(power_1k, {"controlMode": 1, "setpointPower": {"number": 1000}}) is (
        CommandStatus.CONFIRMED
    )
    assert status(power_1k, {"controlMode": 2, "setpointPower": {"number": 1000}}) is (
        CommandStatus.PENDING
    )
    assert status(power_1k, {"controlMode": 1, "setpointPower": {"number": 999}}) is (
        CommandStatus.PENDING
    )
    assert status({"controlMode": 3}, {"controlMode": 3, "setpointPower": {}}) is (
        CommandStatus.CONFIRMED
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.4.2", "1.4.2"), ('"1.0"', "1.0"), ('{"appVersion": "9"}', "9"), ("  v2\n", "v2")],
)
def test_parse_version(text: str, expected: str) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "<html/>", '{"version": ""}', '""', "[1]", "a\x00b"])
def test_parse_version_rejects(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_version(text)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
NUMBERISH = (
    st.integers(min_value=-(2**66), max_value=2**66)
    | st.integers(min_value=-200, max_value=200).map(str)
    | st.sampled_from(["", "1e5", "-0", " 7 ", "0x10", "1.5", "nan"])
    | JSON_SCALARS
)
SCALED = (
    st.fixed_dictionaries(
        {}, optional={"number": NUMBERISH, "scale": NUMBERISH | st.integers(-130, 130)}
    )
    | ANY_JSON
)
ENUMISH = (
    st.integers(min_value=-2, max_value=8)
    | st.sampled_from(["POWER", "pcc", "AUTO_CONTROLLED", "X_FAILSAFE", "NORMAL", "OFF", "3"])
    | JSON_SCALARS
)
INSTRUCTION = st.fixed_dictionaries(
    {},
    optional={
        "controlMode": ENUMISH,
        "controlState": ENUMISH,
        "setpointPower": SCALED,
        "timestamp": NUMBERISH | st.sampled_from(["2024-05-15T10:40:00Z", "1715769600000"]),
    },
)
STATE_REPLY = st.fixed_dictionaries(
    {},
    optional={
        "header": ANY_JSON,
        "state": st.fixed_dictionaries(
            {},
            optional={
                "stateOfCharge": SCALED,
                "stateOfHealth": SCALED,
                "stateOfEnergy": SCALED,
                "usableCapacity": SCALED,
                "stateOfOperation": ENUMISH,
            },
        )
        | ANY_JSON,
    },
)
CONTROL_REPLY = st.fixed_dictionaries(
    {},
    optional={
        "currentControlInstructions": INSTRUCTION | ANY_JSON,
        "desiredControlInstructions": INSTRUCTION | ANY_JSON,
    },
)


@given(SCALED)
@FUZZ
def test_fuzz_scaled_number(value: object) -> None:
    try:
        result = parse_scaled_number(value)
    except ProtocolError:
        return
    assert isinstance(result, float)
    assert math.isfinite(result)


@given(STATE_REPLY | ANY_JSON)
@FUZZ
def test_fuzz_state_reply(reply: object) -> None:
    try:
        state = parse_battery_state(reply)
    except ProtocolError:
        return
    assert isinstance(state, BatteryState)
    assert state.power_w is None


@given(CONTROL_REPLY | ANY_JSON)
@FUZZ
def test_fuzz_control_reply(reply: object) -> None:
    try:
        control = parse_control_status(reply)
    except ProtocolError:
        return
    assert isinstance(control, ControlStatus)
    if control.desired is not None:
        assert control.command_status in (CommandStatus.PENDING, CommandStatus.CONFIRMED)
    else:
        assert control.command_status is None


@given(st.text(max_size=80) | ANY_JSON.map(json.dumps))
@FUZZ
def test_fuzz_version(text: str) -> None:
    try:
        version = parse_version(text)
    except ProtocolError:
        return
    assert version and len(version) <= 64


# --------------------------------------------------------------------------------------------------
# The simulator itself: its other endpoints, request validation, command line and .env
# --------------------------------------------------------------------------------------------------


async def test_simulator_directory_doc_and_api_list(setup: Setup) -> None:
    async with setup.session.get(setup.url + "/") as response:
        directory = await response.json()
    assert {entry["uri"] for entry in directory["uris"]} >= {"/", "/version", "/doc", "/app/v1/*"}
    async with setup.session.get(setup.url + "/doc") as response:
        doc = await response.json()
    assert doc["openapi"] == "3.1.0"
    assert f"/app/v1/{MODIFY_REQUEST}" in doc["paths"]
    body = {"header": {"reqId": 1234}}
    async with setup.session.post(setup.url + "/app/v1/ApiListRequest", json=body) as response:
        api_list = await response.json()
    assert api_list["header"] == {"reqId": 1234}
    assert api_list["apis"][0]["name"] == "app"
    async with setup.session.post(setup.url + "/app/v1/NoSuchRequest", json=body) as response:
        assert response.status == 404


def _request(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "header": {"reqId": "99", "timeoutMs": 10000},
        "deviceId": {"type": {"id": 2}, "stringValue": BAT1},
    }
    body.update(extra)
    return {key: value for key, value in body.items() if value is not None}


@pytest.mark.parametrize(
    ("name", "body", "status", "code"),
    [
        (STATE_REQUEST, "not json", 400, "INVALID_ARGUMENT"),
        (STATE_REQUEST, {"deviceId": {}}, 400, "INVALID_ARGUMENT"),
        (STATE_REQUEST, {"header": {"reqId": 1.5}}, 400, "INVALID_ARGUMENT"),
        (STATE_REQUEST, {"header": {"reqId": 1, "timeoutMs": -1}}, 400, "INVALID_ARGUMENT"),
        (
            STATE_REQUEST,
            _request(deviceId={"type": {"id": 1}, "stringValue": BAT1}),
            400,
            "INVALID_ARGUMENT",
        ),
        (STATE_REQUEST, _request(deviceId={"stringValue": BAT1}), 400, "INVALID_ARGUMENT"),
        (
            STATE_REQUEST,
            _request(deviceId={"type": {"id": 2}, "stringValue": BAT1.lower()}),
            404,
            "NOT_FOUND",
        ),
        (MODIFY_REQUEST, _request(controlMode=7), 400, "INVALID_ARGUMENT"),
        (MODIFY_REQUEST, _request(controlMode="TURBO"), 400, "INVALID_ARGUMENT"),
        (MODIFY_REQUEST, _request(controlMode=True), 400, "INVALID_ARGUMENT"),
        (MODIFY_REQUEST, _request(setpointPower=5), 400, "INVALID_ARGUMENT"),
        (
            MODIFY_REQUEST,
            _request(setpointPower={"number": 1, "scale": 30}),
            400,
            "INVALID_ARGUMENT",
        ),
        (MODIFY_REQUEST, _request(setpointPower={"number": 11, "scale": 3}), 400, "OUT_OF_RANGE"),
    ],
)
async def test_simulator_rejects_bad_requests(
    setup: Setup, name: str, body: object, status: int, code: str
) -> None:
    data = body if isinstance(body, str) else json.dumps(body)
    async with setup.session.post(f"{setup.url}/app/v1/{name}", data=data) as response:
        assert response.status == status
        reply = await response.json()
    assert reply["error"]["code"] == code
    header = body.get("header") if isinstance(body, dict) else None
    if isinstance(header, dict) and isinstance(header.get("reqId"), int | str):
        assert reply["header"]["reqId"] == header["reqId"]
    else:
        assert "header" not in reply


async def test_simulator_modify_keeps_what_is_not_sent(setup: Setup) -> None:
    async def modify(**extra: Any) -> None:
        url = f"{setup.url}/app/v1/{MODIFY_REQUEST}"
        async with setup.session.post(url, json=_request(**extra)) as response:
            assert response.status == 200
            assert await response.json() == {"header": {"reqId": "99"}}

    await modify(controlMode="CONTROL_MODE_POWER", setpointPower={"number": "-15", "scale": 2})
    await modify(controlMode=0)  # proto3: unset, keeps power
    await modify(controlMode="2")  # keeps the setpoint
    desired = setup.sim.batteries[BAT1].desired
    assert desired is not None
    assert (desired.mode, desired.setpoint_w) == (2, -1500)


async def test_simulator_capacity_scales(
    start_app: StartApp, session: aiohttp.ClientSession
) -> None:
    app = create_app(batteries=["A1"], latency=0)
    sim = app[FLEXCONNECT]
    sim.batteries["A1"].usable_capacity_wh = 2345
    sim.batteries["A1"].stored_energy_wh = 2345
    server = await start_app(app)
    backend = FlexConnectBackend(session, "127.0.0.1", server.port)
    snapshot = await backend.async_get_snapshot("a1")  # hex: sent upper-case
    assert snapshot.raw[STATE_REQUEST]["state"]["usableCapacity"] == {"number": 2345}
    assert snapshot.state.usable_capacity_wh == 2345.0
    assert snapshot.state.state_of_charge == 100.0
    assert snapshot.info.name == "FlexConnect A1"


def _cli(argv: list[str]) -> argparse.Namespace:
    """Parse like ``python -m simulator``: a top-level --host, then the sub-command."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    sub = parser.add_subparsers(dest="backend", required=True)
    add_arguments(sub.add_parser("flexconnect"))
    return parser.parse_args(argv)


def test_cli_defaults_without_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOSTNAME", "container-name")  # the process environment is ignored
    monkeypatch.setenv("PORT", "1")
    assert env_settings() == {}
    args = _cli(["flexconnect"])
    assert (args.host, args.port, args.latency, args.speedup, args.battery) == (
        "127.0.0.1",
        8080,
        5.0,
        1.0,
        None,
    )
    assert _cli(["--host", ALL_INTERFACES, "flexconnect"]).host == ALL_INTERFACES
    app = app_from_args(args)
    assert list(app[FLEXCONNECT].batteries) == list(DEMO_BATTERIES)


def test_cli_defaults_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "# ===== AWS Connection =====\nAWS_REGION=eu-central-1\nAWS_SECRET_ACCESS_KEY=\n"
        "# ===== Settings =====\nPORT=9099\nHOSTNAME=0.0.0.0\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    assert env_settings() == {"PORT": "9099", "HOSTNAME": ALL_INTERFACES}
    args = _cli(["flexconnect"])
    assert (args.host, args.port) == (ALL_INTERFACES, 9099)
    argv = "flexconnect --host 127.0.0.2 --port 1234 --latency 0.5 --speedup 10"
    args = _cli([*argv.split(), "--battery", "AA", "--battery", "BB"])
    assert (args.host, args.port) == ("127.0.0.2", 1234)
    app = app_from_args(args)
    sim = app[FLEXCONNECT]
    assert list(sim.batteries) == ["AA", "BB"]
    assert (sim.latency, sim.speedup) == (0.5, 10.0)
    assert not sim.empty_modify_reply
    assert app_from_args(_cli(["flexconnect", "--empty-modify-reply"]))[
        FLEXCONNECT
    ].empty_modify_reply


def test_cli_env_with_empty_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "client.env"
    env_file.write_text("PORT=\nHOSTNAME=\n", encoding="utf-8")
    assert env_settings(env_file) == {}
    (tmp_path / ".env").write_text("PORT=eighty\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):  # a bad PORT in .env is reported like a bad --port
        _cli(["flexconnect"])


# --------------------------------------------------------------------------------------------------
# Fuzzing: every request, odd bodies, every status -> the documented error class
# --------------------------------------------------------------------------------------------------

HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
ODD_BODIES: dict[str, tuple[bytes, str]] = {
    "html": (HTML, "text/html"),
    "html_as_json": (b"\n  <!DOCTYPE html>" + HTML, "application/json"),
    "empty": (b"", "application/json"),
    "blank": (b" \r\n ", "application/json"),
    "garbage": (bytes(range(256)) * 4, "application/octet-stream"),
    "truncated": (
        b'{"header": {"reqId": 1}, "state": {"stateOfCharge": {"number": 5',
        "text/plain",
    ),
    "list": (b'["unexpected", 1, null]', "application/json"),
    "object": (b'{"header": "x", "state": [1], "version": []}', "application/json"),
    "nan": (b'{"state": {"stateOfCharge": {"number": NaN}}, "version": NaN}', "application/json"),
    "huge": (b'{"state": [' + b"0," * 600_000 + b"0]}", "application/json"),
}
STATUSES = (200, 400, 401, 403, 404, 409, 429, 500, 502, 503)
REQUESTS = (STATE_REQUEST, CONTROL_REQUEST, MODIFY_REQUEST, "version")


def flexconnect_expected(name: str, status: int, kind: str) -> type[Exception] | None:
    """Return the documented error of an odd reply (None: accepted)."""
    if kind == "huge":
        return ProtocolError  # over the 1 MiB cap, whatever the status
    if status == 404 and kind == "object" and name != "version":
        return UnknownBatteryError  # a JSON error body on a battery request
    if status in (401, 403):
        return AuthError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return CannotConnectError
    if status in (400, 409) and name == MODIFY_REQUEST:
        return CommandRejectedError
    if status == 200 and name == MODIFY_REQUEST and kind in ("empty", "blank"):
        return None  # "An empty response represents a successful operation"
    return ProtocolError


async def call_flexconnect(backend: FlexConnectBackend, name: str) -> None:
    if name == MODIFY_REQUEST:
        await backend.async_apply(BAT1, ControlCommand(ControlMode.POWER, 100))
    elif name == "version":
        await backend.async_validate()
    else:
        await backend.async_get_snapshot(BAT1)


@pytest.mark.parametrize("kind", list(ODD_BODIES))
@pytest.mark.parametrize("name", REQUESTS)
async def test_fuzz_odd_replies_on_every_request(setup: Setup, name: str, kind: str) -> None:
    body, content_type = ODD_BODIES[kind]
    for status in STATUSES:
        setup.sim.canned[name] = Canned(status=status, raw=body, content_type=content_type)
        expected = flexconnect_expected(name, status, kind)
        if expected is None:
            await call_flexconnect(setup.backend, name)
            continue
        with pytest.raises(BackendError) as caught:
            await call_flexconnect(setup.backend, name)
        assert type(caught.value) is expected, (status, caught.value)
        assert len(str(caught.value)) < 400


@settings(FUZZ, max_examples=150)
@given(
    name=st.sampled_from(REQUESTS),
    status=st.sampled_from(STATUSES),
    body=st.binary(max_size=300) | st.sampled_from([body for body, _ in ODD_BODIES.values()]),
    content_type=st.sampled_from(["application/json", "text/html", "text/plain"]),
)
async def test_fuzz_random_replies_end_in_backend_errors(
    setup: Setup, name: str, status: int, body: bytes, content_type: str
) -> None:
    setup.sim.canned.clear()  # the simulator serves every example
    setup.sim.canned[name] = Canned(status=status, raw=body, content_type=content_type)
    error: BackendError | None = None
    try:
        await call_flexconnect(setup.backend, name)
    except BackendError as err:  # anything else fails the test
        error = err
    if error is None:
        assert status == 200
    elif status not in (200, 404) and len(body) < 1000:
        assert type(error) is flexconnect_expected(name, status, "any")
