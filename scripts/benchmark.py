"""Benchmark Battery Bridge's client layer against the project's own simulators (loopback HTTP).

Each simulator (``simulator/fems.py``, ``simulator/flexconnect.py``, ``simulator/enode.py``) is
served in-process on ``127.0.0.1`` (a free port) and driven through the integration's real
clients (``custom_components/battery_bridge/api``): ``async_get_snapshot`` and ``async_apply``
exactly as the coordinator and the controller call them. The script prints figures only; it has
no pass/fail thresholds.

The figures:

requests per poll
    HTTP requests one ``async_get_snapshot(battery_id)`` makes, counted by the simulators' fault
    middleware (``app[FAULTS].requests`` records every request). "first call" is a fresh client's
    first poll (Enode fetches its OAuth token, FlexConnect asks ``GET /version`` once); "steady
    state" is every later poll without a pending command; "while pending" is a poll while a
    command is pending (Enode also fetches its Action; FlexConnect reads desired vs current from
    the same two requests). These counts are deterministic: they describe the client, not the
    machine.
requests per write
    HTTP requests one ``async_apply`` makes once the client is warm.
poll latency / write latency
    Wall time of one ``async_get_snapshot`` / ``async_apply`` (median and p95, nearest rank, in
    ms) over loopback, client and simulator in the same event loop. This is the cost of the
    client layer (JSON parsing, validation) plus aiohttp and the simulator; a real FEMS, a
    FlexConnect development client with the FlexCloud behind it or the Enode cloud answer in tens
    to thousands of ms, so these are lower bounds, useful to compare versions of the code.
time to confirmed
    For commands a backend applies later (FlexConnect: the simulator's ``latency``; Enode: its
    ``action_delay``): real time from just before ``async_apply`` until the first snapshot whose
    ``control.pending`` is false, polling every ``--poll-interval`` seconds. The overshoot over
    the configured delay is what polling adds (at most about one poll interval plus one poll).
    The overshoot depends on the phase: with a delay that is a multiple of the poll interval (the
    defaults, 0.5 s and 0.1 s) it is the per-poll cost accumulated over the polls; otherwise it
    approaches one poll interval. The integration itself polls a pending command every 5 s
    (FlexConnect) / 15 s (Enode), so its real overshoot is up to that interval; the real devices'
    delays (up to a minute) are not simulated. FEMS has no such figure: it applies a setpoint on
    the POST.
keepalive (FEMS)
    The FEMS drops every written value when its REST API timeout runs out, so the integration's
    ``BatteryController`` rewrites the setpoint every half timeout (at least 1 s) with Home
    Assistant's ``async_track_time_interval``. Running Home Assistant here would be heavy, so the
    script reproduces that helper's scheduling (``loop.call_at(loop.time() + interval)`` rescheduled
    when the timer fires, the rewrite run as a task, under a lock like the controller's) around the
    real ``FemsBackend.async_apply``. The intervals are measured on the simulator side (when each
    POST reached ``FemsSimulator.write``), so they include event-loop timer lateness, client and
    transport jitter, but not Home Assistant's own event-loop load. "dropped" tells whether the
    simulator's API timer ever ran out between two rewrites (checked exactly at every POST), and
    the margin is the API timeout minus the longest gap between POSTs.

Limits: loopback simulators on one event loop, not real devices or networks; timings depend on
the machine and its load. Use ``--json`` for one JSON object (CI dashboards).

Usage: .venv/bin/python scripts/benchmark.py [--polls N] [--backend fems|flexconnect|enode|all]
[--json]
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
import json
import math
from pathlib import Path
import statistics
import sys
import time
from typing import Any, Final

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from custom_components.battery_bridge.api.enode import EnodeBackend
from custom_components.battery_bridge.api.errors import BackendError
from custom_components.battery_bridge.api.fems import FemsBackend
from custom_components.battery_bridge.api.flexconnect import FlexConnectBackend
from custom_components.battery_bridge.api.models import BatterySnapshot, ControlCommand, ControlMode
from custom_components.battery_bridge.control import keepalive_interval
from simulator import enode as enode_sim, fems as fems_sim, flexconnect as flexconnect_sim
from simulator.faults import FAULTS

LOCALHOST: Final = "127.0.0.1"
BACKENDS: Final = ("fems", "flexconnect", "enode")
FEMS_PASSWORD: Final = "owner"  # noqa: S105 - the simulated OpenEMS owner password
ENODE_CLIENT_ID: Final = "demo-client"
ENODE_CLIENT_SECRET: Final = "demo-secret"  # noqa: S105 - the simulator's demo credentials
FEMS_SETPOINT_CHANNEL: Final = "SetActivePowerEquals"
KEEPALIVE_METHOD: Final = (
    "asyncio loop.call_at rescheduled like Home Assistant's async_track_time_interval around the "
    "real FemsBackend.async_apply (not Home Assistant's BatteryController); intervals measured "
    "at the simulator: event-loop timer lateness + client + loopback transport jitter"
)

Poll = Callable[[], Awaitable[BatterySnapshot]]


# ------------------------------------------------------------------------------------ helpers


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile (``fraction`` 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    """Return median, p95, min and max (in ms, 3 decimals) and the sample count."""
    ms = [value * 1000 for value in seconds]
    return {
        "n": len(ms),
        "median": round(statistics.median(ms), 3),
        "p95": round(percentile(ms, 0.95), 3),
        "min": round(min(ms), 3),
        "max": round(max(ms), 3),
    }


def _count_summary(counts: Sequence[int]) -> int | None:
    """Return the most common count (they should all be equal), None without samples."""
    if not counts:
        return None
    return Counter(counts).most_common(1)[0][0]


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[int]:
    """Serve ``app`` on a free loopback port; yield the port, stop the server afterwards."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, LOCALHOST, 0)
        await site.start()
        port: int = runner.addresses[0][1]
        yield port
    finally:
        await runner.cleanup()


class RequestCounter:
    """Counts the requests a simulator's fault middleware recorded since the last mark."""

    def __init__(self, app: web.Application) -> None:
        """Count on ``app[FAULTS].requests``."""
        self._requests = app[FAULTS].requests
        self._mark = len(self._requests)

    def mark(self) -> None:
        """Start counting from now."""
        self._mark = len(self._requests)

    def since_mark(self) -> int:
        """Return the number of requests since the last mark."""
        return len(self._requests) - self._mark


async def _timed[T](call: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    start = time.perf_counter()
    result = await call()
    return result, time.perf_counter() - start


@dataclass(slots=True)
class _Runs:
    """Per-call request counts and durations of one kind of call."""

    counts: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


async def _measure[T](counter: RequestCounter, n: int, call: Callable[[], Awaitable[T]]) -> _Runs:
    runs = _Runs()
    for _ in range(n):
        counter.mark()
        _, seconds = await _timed(call)
        runs.counts.append(counter.since_mark())
        runs.seconds.append(seconds)
    return runs


async def _first_poll(counter: RequestCounter, poll: Poll) -> tuple[BatterySnapshot, int]:
    counter.mark()
    snapshot = await poll()
    return snapshot, counter.since_mark()


async def _settle(poll: Poll, poll_interval: float, limit: float) -> None:
    """Poll until no command is pending (or ``limit`` seconds passed)."""
    deadline = time.monotonic() + limit
    while True:
        snapshot = await poll()
        if not snapshot.control.pending or time.monotonic() >= deadline:
            return
        await asyncio.sleep(poll_interval)


async def time_to_confirmed(
    counter: RequestCounter,
    poll: Poll,
    apply: Callable[[ControlCommand], Awaitable[None]],
    commands: Sequence[ControlCommand],
    *,
    delay: float,
    poll_interval: float,
    runs: int,
) -> dict[str, Any]:
    """Apply ``runs`` commands (cycling through ``commands``) and time each until confirmed.

    Returns:
        The configured delay and poll interval, the seconds to confirmed, the overshoot in ms
        and the requests per poll while the command was pending.
    """
    limit = delay * 4 + 5.0
    await _settle(poll, poll_interval, limit)
    elapsed: list[float] = []
    pending_counts: list[int] = []
    for index in range(runs):
        command = commands[index % len(commands)]
        start = time.monotonic()
        await apply(command)
        while True:
            counter.mark()
            snapshot = await poll()
            pending_counts.append(counter.since_mark())
            if not snapshot.control.pending:
                break
            if time.monotonic() - start > limit:
                raise RuntimeError(f"command {command} not confirmed within {limit:g} s")
            await asyncio.sleep(poll_interval)
        elapsed.append(time.monotonic() - start)
    overshoot = [(value - delay) * 1000 for value in elapsed]
    return {
        "configured_delay_s": delay,
        "poll_interval_s": poll_interval,
        "runs": runs,
        "seconds": {
            "median": round(statistics.median(elapsed), 4),
            "max": round(max(elapsed), 4),
        },
        "overshoot_ms": {
            "mean": round(statistics.fmean(overshoot), 3),
            "max": round(max(overshoot), 3),
        },
        "requests_per_poll_while_pending": _count_summary(pending_counts),
    }


def _base_result(
    battery_id: str, first: int, polls: _Runs, writes: _Runs, command: ControlCommand
) -> dict[str, Any]:
    return {
        "battery_id": battery_id,
        "requests_per_poll": {
            "first_call": first,
            "steady_state": _count_summary(polls.counts),
            "steady_state_range": [min(polls.counts), max(polls.counts)],
        },
        "requests_per_write": _count_summary(writes.counts),
        "poll_latency_ms": summary_ms(polls.seconds),
        "write_command": {"mode": command.mode.value, "setpoint_w": command.setpoint_w},
        "write_latency_ms": summary_ms(writes.seconds),
    }


def _add_confirmed(result: dict[str, Any], confirmed: dict[str, Any]) -> None:
    result["requests_per_poll"]["while_pending"] = confirmed.pop("requests_per_poll_while_pending")
    result["time_to_confirmed"] = confirmed


@dataclass(slots=True)
class Settings:
    """What to run (the parsed command line)."""

    polls: int
    backends: tuple[str, ...]
    as_json: bool
    delay: float
    poll_interval: float
    confirm_runs: int
    keepalive_ticks: int
    api_timeout: float


# --------------------------------------------------------------------------------------- FEMS


class RecordingFemsSimulator(fems_sim.FemsSimulator):
    """The FEMS simulator, remembering when each POST arrived and whether the setpoint was gone."""

    def __init__(self, **options: Any) -> None:
        """Set up the simulator (``options`` as for :class:`FemsSimulator`)."""
        super().__init__(**options)
        self.post_times: list[float] = []
        self.dropped_at: list[float] = []  # clock times the API timer had dropped the setpoint

    def write(self, address: str, value: Any) -> None:
        """Check whether the API timer dropped ``address`` before this POST, then write."""
        had = address in self.written
        self.advance()  # fires the API timer if it ran out
        if had and address not in self.written:
            self.dropped_at.append(self.clock())
        self.post_times.append(self.clock())
        super().write(address, value)


class Keepalive:
    """The controller's keepalive, as Home Assistant's ``async_track_time_interval`` runs it.

    The timer is rescheduled ``interval`` seconds after it fired (not after the rewrite), and the
    rewrite runs as a task holding a lock, like ``BatteryController._async_keepalive``.
    """

    def __init__(
        self,
        rewrite: Callable[[], Awaitable[None]],
        interval: float,
        ticks: int,
        lock: asyncio.Lock,
    ) -> None:
        """Rewrite with ``rewrite`` every ``interval`` seconds, ``ticks`` times."""
        self._rewrite = rewrite
        self._interval = interval
        self._ticks = ticks
        self._lock = lock
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self.fired = 0
        self.failures = 0
        self.lateness: list[float] = []  # timer lateness per tick, s

    def _schedule(self) -> None:
        when = self._loop.time() + self._interval
        self._handle = self._loop.call_at(when, self._listener, when)

    def _listener(self, when: float) -> None:
        self.lateness.append(self._loop.time() - when)
        self.fired += 1
        last = self.fired >= self._ticks
        if not last:
            self._schedule()
        task = self._loop.create_task(self._run(last))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, last: bool) -> None:
        async with self._lock:
            try:
                await self._rewrite()
            except BackendError:
                self.failures += 1
        if last and not self._done.done():
            self._done.set_result(None)

    async def run(self) -> None:
        """Start the timer and return after the last rewrite."""
        self._schedule()
        try:
            await self._done
        finally:
            if self._handle is not None:
                self._handle.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def bench_keepalive(session: aiohttp.ClientSession, settings: Settings) -> dict[str, Any]:
    """Measure the FEMS keepalive against a simulator with a short API timeout."""
    app = fems_sim.create_app(api_timeout=settings.api_timeout)
    sim = RecordingFemsSimulator(api_timeout=settings.api_timeout)
    app[fems_sim.SIM] = sim
    async with serve(app) as port:
        backend = FemsBackend(session, LOCALHOST, port, FEMS_PASSWORD)
        battery_id = backend.ess_id
        snapshot = await backend.async_get_snapshot(battery_id)  # learns the API timeout
        timeout = snapshot.capabilities.command_timeout_s
        every = keepalive_interval(timeout)  # the controller's own rule, without the option
        if timeout is None or every is None:
            raise RuntimeError("the FEMS simulator reported no API timeout")
        interval = every.total_seconds()
        command = ControlCommand(ControlMode.POWER, 2000)
        lock = asyncio.Lock()
        async with lock:
            await backend.async_apply(battery_id, command)  # the user's write starts the timer

        async def rewrite() -> None:
            await backend.async_apply(battery_id, command)

        keepalive = Keepalive(rewrite, interval, settings.keepalive_ticks, lock)
        await keepalive.run()
        sim.advance()
        address = f"{battery_id}/{FEMS_SETPOINT_CHANNEL}"
        still_written = address in sim.written
    gaps = [b - a for a, b in zip(sim.post_times, sim.post_times[1:], strict=False)]
    deviations = [gap - interval for gap in gaps]
    drift = sim.post_times[-1] - (sim.post_times[0] + interval * len(gaps))
    return {
        "method": KEEPALIVE_METHOD,
        "api_timeout_s": timeout,
        "interval_s": interval,
        "rewrites": keepalive.fired,
        "posts": sim.posts,
        "failures": keepalive.failures,
        "interval_deviation_ms": {
            "mean": round(statistics.fmean(deviations) * 1000, 3),
            "max_abs": round(max(abs(value) for value in deviations) * 1000, 3),
        },
        "timer_lateness_ms": {
            "mean": round(statistics.fmean(keepalive.lateness) * 1000, 3),
            "max": round(max(keepalive.lateness) * 1000, 3),
        },
        "cumulative_drift_ms": round(drift * 1000, 3),
        "max_gap_s": round(max(gaps), 4),
        "margin_s": round(timeout - max(gaps), 4),
        "dropped": bool(sim.dropped_at),
        "drops": len(sim.dropped_at),
        "setpoint_held_at_end": still_written,
    }


async def bench_fems(session: aiohttp.ClientSession, settings: Settings) -> dict[str, Any]:
    """Requests, poll and write latency of the FEMS client; then its keepalive."""
    app = fems_sim.create_app()
    async with serve(app) as port:
        counter = RequestCounter(app)
        backend = FemsBackend(session, LOCALHOST, port, FEMS_PASSWORD)
        battery_id = backend.ess_id
        command = ControlCommand(ControlMode.POWER, 2000)

        async def poll() -> BatterySnapshot:
            return await backend.async_get_snapshot(battery_id)

        async def write() -> None:
            await backend.async_apply(battery_id, command)

        _, first = await _first_poll(counter, poll)
        polls = await _measure(counter, settings.polls, poll)
        writes = await _measure(counter, settings.polls, write)
    result = _base_result(battery_id, first, polls, writes, command)
    result["time_to_confirmed"] = None  # applied on the POST
    if settings.keepalive_ticks > 0:
        result["keepalive"] = await bench_keepalive(session, settings)
    return result


# -------------------------------------------------------------------------------- FlexConnect


async def bench_flexconnect(session: aiohttp.ClientSession, settings: Settings) -> dict[str, Any]:
    """Requests, poll and write latency and time to confirmed of the FlexConnect client."""
    app = flexconnect_sim.create_app(latency=settings.delay)
    async with serve(app) as port:
        counter = RequestCounter(app)
        backend = FlexConnectBackend(session, LOCALHOST, port)
        battery_id = flexconnect_sim.DEMO_BATTERIES[0]
        command = ControlCommand(ControlMode.POWER, -2000)

        async def poll() -> BatterySnapshot:
            return await backend.async_get_snapshot(battery_id)

        async def apply(cmd: ControlCommand) -> None:
            await backend.async_apply(battery_id, cmd)

        async def write() -> None:
            await apply(command)

        _, first = await _first_poll(counter, poll)
        polls = await _measure(counter, settings.polls, poll)
        writes = await _measure(counter, settings.polls, write)
        result = _base_result(battery_id, first, polls, writes, command)
        if settings.confirm_runs > 0:
            # Alternate the setpoint: a command equal to the current one is confirmed at once.
            confirmed = await time_to_confirmed(
                counter,
                poll,
                apply,
                [ControlCommand(ControlMode.POWER, -1000), command],
                delay=settings.delay,
                poll_interval=settings.poll_interval,
                runs=settings.confirm_runs,
            )
            _add_confirmed(result, confirmed)
    return result


# -------------------------------------------------------------------------------------- Enode


async def bench_enode(session: aiohttp.ClientSession, settings: Settings) -> dict[str, Any]:
    """Requests, poll and write latency and time to confirmed of the Enode client."""
    app = enode_sim.create_app(action_delay=settings.delay)
    async with serve(app) as port:
        counter = RequestCounter(app)
        url = f"http://{LOCALHOST}:{port}"
        backend = EnodeBackend(
            session,
            ENODE_CLIENT_ID,
            ENODE_CLIENT_SECRET,
            environment="sandbox",
            api_url=url,
            token_url=f"{url}/oauth2/token",
        )
        battery_id = enode_sim.POWERWALL_ID

        async def poll() -> BatterySnapshot:
            return await backend.async_get_snapshot(battery_id)

        async def apply(cmd: ControlCommand) -> None:
            await backend.async_apply(battery_id, cmd)

        snapshot, first = await _first_poll(counter, poll)
        modes = snapshot.capabilities.modes
        mode = ControlMode.EXPORT_FOCUS if ControlMode.EXPORT_FOCUS in modes else modes[0]
        command = ControlCommand(mode)

        async def write() -> None:
            await apply(command)

        polls = await _measure(counter, settings.polls, poll)  # no Action yet: steady state
        writes = await _measure(counter, settings.polls, write)
        result = _base_result(battery_id, first, polls, writes, command)
        if settings.confirm_runs > 0:
            others = [other for other in modes if other is not mode][:1]
            commands = [ControlCommand(other) for other in others] + [command]
            confirmed = await time_to_confirmed(
                counter,
                poll,
                apply,
                commands,
                delay=settings.delay,
                poll_interval=settings.poll_interval,
                runs=settings.confirm_runs,
            )
            _add_confirmed(result, confirmed)
    return result


# ------------------------------------------------------------------------------------- output

RUNNERS: Final[
    dict[str, Callable[[aiohttp.ClientSession, Settings], Awaitable[dict[str, Any]]]]
] = {"fems": bench_fems, "flexconnect": bench_flexconnect, "enode": bench_enode}
TITLES: Final = {"fems": "FEMS", "flexconnect": "FlexConnect", "enode": "Enode"}


def _row(label: str, text: str) -> str:
    return f"  {label:<20} {text}"


def _latency(stats: dict[str, Any]) -> str:
    return (
        f"median {stats['median']:.2f} ms, p95 {stats['p95']:.2f} ms "
        f"(min {stats['min']:.2f}, max {stats['max']:.2f}, n={stats['n']})"
    )


def _keepalive_rows(keepalive: dict[str, Any]) -> list[str]:
    dev = keepalive["interval_deviation_ms"]
    late = keepalive["timer_lateness_ms"]
    dropped = f"YES ({keepalive['drops']}x)" if keepalive["dropped"] else "no"
    return [
        _row(
            "keepalive",
            f"every {keepalive['interval_s']:g} s, API timeout {keepalive['api_timeout_s']:g} s, "
            f"{keepalive['rewrites']} rewrites ({keepalive['posts']} POSTs, "
            f"{keepalive['failures']} failed)",
        ),
        _row(
            "",
            f"interval deviation mean {dev['mean']:+.2f} ms, max |dev| {dev['max_abs']:.2f} ms, "
            f"cumulative drift {keepalive['cumulative_drift_ms']:+.2f} ms",
        ),
        _row("", f"timer lateness mean {late['mean']:.2f} ms, max {late['max']:.2f} ms"),
        _row(
            "",
            f"setpoint dropped by the API timer: {dropped}; longest gap "
            f"{keepalive['max_gap_s']:.3f} s, margin {keepalive['margin_s']:.3f} s",
        ),
        _row("", "(simulator-side: timer lateness + client + loopback jitter, not HA's loop)"),
    ]


def format_table(report: dict[str, Any]) -> str:
    """Return the report as readable text, one block per backend."""
    polls = report["settings"]["polls"]
    lines = [
        "Battery Bridge benchmark: loopback simulators, the integration's real client layer",
        f"({polls} polls and {polls} writes per backend; timings are lower bounds, not devices)",
    ]
    for name, result in report["backends"].items():
        rpp = result["requests_per_poll"]
        cmd = result["write_command"]
        setpoint = "" if cmd["setpoint_w"] is None else f" {cmd['setpoint_w']} W"
        pending = rpp.get("while_pending")
        requests = f"first call {rpp['first_call']}, steady state {rpp['steady_state']}"
        if pending is not None:
            requests += f", while pending {pending}"
        lines += [
            "",
            f"{TITLES[name]} (battery {result['battery_id']})",
            _row("requests per poll", requests),
            _row("requests per write", f"{result['requests_per_write']} ({cmd['mode']}{setpoint})"),
            _row("poll latency", _latency(result["poll_latency_ms"])),
            _row("write latency", _latency(result["write_latency_ms"])),
        ]
        confirmed = result.get("time_to_confirmed")
        if confirmed is not None:
            seconds = confirmed["seconds"]
            overshoot = confirmed["overshoot_ms"]
            lines += [
                _row(
                    "time to confirmed",
                    f"delay {confirmed['configured_delay_s']:g} s, polled every "
                    f"{confirmed['poll_interval_s']:g} s, {confirmed['runs']} runs: "
                    f"median {seconds['median']:.3f} s, max {seconds['max']:.3f} s",
                ),
                _row(
                    "",
                    f"overshoot over the delay: mean {overshoot['mean']:.1f} ms, "
                    f"max {overshoot['max']:.1f} ms",
                ),
            ]
        elif name == "fems":
            lines.append(_row("time to confirmed", "n/a (the FEMS applies a setpoint on the POST)"))
        if (keepalive := result.get("keepalive")) is not None:
            lines += _keepalive_rows(keepalive)
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark Battery Bridge's clients against the simulators (loopback)."
    )
    parser.add_argument("--polls", type=int, default=50, help="polls and writes per backend")
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--delay",
        type=float,
        default=0.5,
        help="FlexConnect latency / Enode action_delay of the simulators, s (default 0.5)",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.1, help="polling while pending, s (default 0.1)"
    )
    parser.add_argument(
        "--confirm-runs", type=int, default=3, help="commands timed until confirmed (default 3)"
    )
    parser.add_argument(
        "--keepalive-ticks", type=int, default=6, help="FEMS keepalive rewrites (0: skip)"
    )
    parser.add_argument(
        "--api-timeout",
        type=float,
        default=2.0,
        help="FEMS simulator API timeout for the keepalive, s (default 2.0: 1 s keepalive)",
    )
    args = parser.parse_args(argv)
    if args.polls < 1:
        parser.error("--polls must be at least 1")
    return Settings(
        polls=args.polls,
        backends=BACKENDS if args.backend == "all" else (args.backend,),
        as_json=args.json,
        delay=args.delay,
        poll_interval=args.poll_interval,
        confirm_runs=max(0, args.confirm_runs),
        keepalive_ticks=max(0, args.keepalive_ticks),
        api_timeout=args.api_timeout,
    )


async def run(settings: Settings) -> dict[str, Any]:
    """Run the selected benchmarks; return the report (settings and one result per backend)."""
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for name in settings.backends:
            results[name] = await RUNNERS[name](session, settings)
    return {
        "settings": {
            "polls": settings.polls,
            "delay_s": settings.delay,
            "poll_interval_s": settings.poll_interval,
            "confirm_runs": settings.confirm_runs,
            "keepalive_ticks": settings.keepalive_ticks,
            "fems_api_timeout_s": settings.api_timeout,
            "python": sys.version.split()[0],
            "aiohttp": aiohttp.__version__,
        },
        "backends": results,
    }


async def async_main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the benchmarks and print the table or the JSON object."""
    settings = parse_args(argv)
    report = await run(settings)
    print(json.dumps(report, indent=2) if settings.as_json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(async_main()))
