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
SMALL = ["--polls", "3", "--confirm-runs", "1", "--delay", "2", "--batteries", "3", "--rounds", "2"]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No ``hass`` fixture here: the benchmark starts (and stops) its own Home Assistant."""


@pytest.fixture(scope="module")
def benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("battery_bridge_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def _check_common(result: dict, polls: int) -> None:
    assert result["requests_per_write"] == 1  # the write alone: its refresh is debounced
    for key in ("poll_latency_ms", "write_latency_ms"):
        assert set(result[key]) == LATENCY_KEYS
        assert result[key]["n"] == polls


def _check_confirmed(result: dict, pending_interval_s: int) -> None:
    confirmed = result["time_to_confirmed"]
    assert confirmed["configured_delay_s"] == 2.0
    assert confirmed["poll_interval_while_pending_s"] == pending_interval_s  # the coordinator's
    assert confirmed["runs"] == 1
    assert set(confirmed["seconds"]) == {"median", "max"}
    assert set(confirmed["overshoot_s"]) == {"mean", "max"}


async def test_benchmark_json(benchmark: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    # 0.06 h = 216 s: keepalive ticks at 30 ... 210 s; the fault at 108 s fails the 120 s one.
    argv = [*SMALL, "--json", "--hours", "0.06", "--keepalive-faults", "1"]
    assert await benchmark.async_main(argv) == 0
    report = json.loads(capsys.readouterr().out)

    assert report["settings"]["polls"] == 3
    backends = report["backends"]
    assert list(backends) == ["fems", "flexconnect", "enode"]

    fems = backends["fems"]
    _check_common(fems, 3)
    assert fems["requests_per_poll"] == {
        "setup": 1,
        "steady_state": 1,
        "steady_state_range": [1, 1],
        "while_pending": None,  # a FEMS applies a setpoint on the POST
    }
    assert fems["write"] == {"call": "async_set_power", "value": 2000}
    assert fems["time_to_confirmed"] is None

    flex = backends["flexconnect"]
    _check_common(flex, 3)
    assert flex["requests_per_poll"]["setup"] == 3  # with GET /version
    assert flex["requests_per_poll"]["steady_state"] == 2
    assert flex["requests_per_poll"]["while_pending"] == 2
    assert flex["write"] == {"call": "async_set_power", "value": -2000}
    _check_confirmed(flex, 5)

    enode = backends["enode"]
    _check_common(enode, 3)
    assert enode["requests_per_poll"]["setup"] == 2  # with the token
    assert enode["requests_per_poll"]["steady_state"] == 1
    assert enode["requests_per_poll"]["while_pending"] == 2  # with the Action
    assert enode["write"] == {"call": "async_set_mode", "value": "export_focus"}
    _check_confirmed(enode, 15)

    many = report["many_batteries"]
    assert many["batteries"] == 3
    assert many["entities"] > 0
    assert many["setup"]["requests"] == sum(many["setup"]["requests_by_path"].values())
    assert many["poll_round"]["rounds"] == 2
    assert many["poll_round"]["requests_per_battery_poll"] == 2
    assert set(many["poll_round"]["wall_ms"]) == LATENCY_KEYS

    keepalive = report["keepalive"]
    assert keepalive["api_timeout_s"] == 60.0
    assert keepalive["interval_s"] == 30.0
    # Six ticks and the retry of the failed one a quarter interval (7.5 s) later.
    assert keepalive["rewrites"] == 7
    assert keepalive["failed_rewrites"] == 1
    assert keepalive["lapses"] == 0  # the retry came well within the 60 s API timeout
    assert keepalive["injected_faults"] == 1
    assert keepalive["warnings_logged"] >= 1  # the failed rewrite
    assert keepalive["polls"] > 0
    assert isinstance(keepalive["lapses"], int)
    assert set(keepalive["gap_s"]) == {"median", "max"}
    assert keepalive["held_at_end"] is True
    assert keepalive["keepalive_active_at_end"] is True


async def test_benchmark_table_one_backend(
    benchmark: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--polls", "2", "--backend", "fems", "--confirm-runs", "0", "--hours", "0.02"]
    assert await benchmark.async_main(argv) == 0
    out = capsys.readouterr().out
    assert "One battery per entry" in out
    assert "FEMS" in out
    assert "Enode" not in out
    assert "batteries in one FlexConnect entry" not in out  # --batteries needs FlexConnect
    assert "FEMS keepalive (virtual time)" in out
    assert "lapses (setpoint dropped)" in out
