"""Smoke test of scripts/benchmark.py: structure and deterministic request counts, never timings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
import sys
from types import ModuleType

import pytest

pytestmark = pytest.mark.usefixtures("socket_enabled")  # loopback HTTP to the simulators

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
LATENCY_KEYS = {"n", "median", "p95", "min", "max"}


@pytest.fixture(scope="module")
def benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("battery_bridge_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def _check_common(result: dict, polls: int) -> None:
    assert result["requests_per_write"] == 1
    for key in ("poll_latency_ms", "write_latency_ms"):
        assert set(result[key]) == LATENCY_KEYS
        assert result[key]["n"] == polls


async def test_benchmark_json(benchmark: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--polls", "3", "--json", "--delay", "0.2", "--confirm-runs", "1"]
    assert await benchmark.async_main([*argv, "--keepalive-ticks", "2"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert report["settings"]["polls"] == 3
    backends = report["backends"]
    assert list(backends) == ["fems", "flexconnect", "enode"]

    fems = backends["fems"]
    _check_common(fems, 3)
    assert fems["requests_per_poll"] == {
        "first_call": 1,
        "steady_state": 1,
        "steady_state_range": [1, 1],
    }
    assert fems["write_command"] == {"mode": "power", "setpoint_w": 2000}
    assert fems["time_to_confirmed"] is None
    keepalive = fems["keepalive"]
    assert keepalive["api_timeout_s"] == 2.0
    assert keepalive["interval_s"] == 1.0
    assert keepalive["rewrites"] == 2
    assert keepalive["posts"] == 3  # the first write and two rewrites
    assert keepalive["failures"] == 0
    assert {"interval_deviation_ms", "timer_lateness_ms", "margin_s", "dropped"} <= set(keepalive)
    assert isinstance(keepalive["dropped"], bool)

    flex = backends["flexconnect"]
    _check_common(flex, 3)
    assert flex["requests_per_poll"]["first_call"] == 3  # with GET /version
    assert flex["requests_per_poll"]["steady_state"] == 2
    assert flex["requests_per_poll"]["while_pending"] == 2
    assert flex["write_command"] == {"mode": "power", "setpoint_w": -2000}

    enode = backends["enode"]
    _check_common(enode, 3)
    assert enode["requests_per_poll"]["first_call"] == 2  # with the token
    assert enode["requests_per_poll"]["steady_state"] == 1
    assert enode["requests_per_poll"]["while_pending"] == 2  # with the Action
    assert enode["write_command"] == {"mode": "export_focus", "setpoint_w": None}

    for result in (flex, enode):
        confirmed = result["time_to_confirmed"]
        assert confirmed["configured_delay_s"] == 0.2
        assert confirmed["runs"] == 1
        assert set(confirmed["seconds"]) == {"median", "max"}
        assert set(confirmed["overshoot_ms"]) == {"mean", "max"}


async def test_benchmark_table_one_backend(
    benchmark: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--polls", "2", "--backend", "enode", "--confirm-runs", "0"]
    assert await benchmark.async_main(argv) == 0
    out = capsys.readouterr().out
    assert "Enode (battery " in out
    assert "steady state 1" in out
    assert "FEMS" not in out
    assert "time to confirmed" not in out
