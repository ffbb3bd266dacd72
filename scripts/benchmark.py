"""Benchmark Battery Bridge in a Home Assistant test harness against the loopback simulators.

Real config entries of the integration (its coordinator, controller and clients) run in
pytest-homeassistant-custom-component's Home Assistant against ``simulator/`` on 127.0.0.1. Time
to confirmed and the FEMS keepalive run in virtual time: Home Assistant's timers fire at their
due times and the idle time between them is skipped. Figures only, no thresholds; loopback lower
bounds, not devices. ``--help`` lists the options and explains the figures.
"""

from __future__ import annotations

from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Home Assistant's test time patches come first (as in its test harness): utcnow then follows
# the virtual clock.
import pytest_homeassistant_custom_component.patch_time  # noqa: F401  # isort: skip

import argparse
import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
import itertools
import json
import logging
import math
import statistics
import tempfile
import time
from typing import Any, Final
from unittest.mock import patch

import aiohttp
from aiohttp import web
from aiohttp.resolver import AsyncResolver
import freezegun
import freezegun.api
from homeassistant import loader
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, frame
from homeassistant.helpers.update_coordinator import REQUEST_REFRESH_DEFAULT_COOLDOWN
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
    get_scheduled_timer_handles,
)

from custom_components.battery_bridge.const import DOMAIN
from simulator import enode as enode_sim, fems as fems_sim, flexconnect as flexconnect_sim
from simulator.faults import FAULTS, Fault

LOCALHOST: Final = "127.0.0.1"
BACKENDS: Final = ("fems", "flexconnect", "enode")
FEMS_PASSWORD: Final = "owner"  # noqa: S105 - the simulated OpenEMS owner password
FEMS_SETPOINT: Final = "SetActivePowerEquals"
INTEGRATION_LOGGER: Final = "custom_components.battery_bridge"
SETTLE_S: Final = REQUEST_REFRESH_DEFAULT_COOLDOWN + 5.0  # past the refresh debouncer's cooldown
PENDING_FOREVER_S: Final = 3600.0  # real-time part: a written command stays pending throughout
MAX_STEPS: Final = 2_000_000  # virtual time: a timer loop that never lets time pass is a bug

type Command = tuple[str, int | str]  # ("power", watts) or ("mode", ControlMode value)


# ------------------------------------------------------------------------------------ helpers


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile (``fraction`` 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


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


def most_common(counts: Sequence[int]) -> int | None:
    """Return the most common count (they should all be equal), None without samples."""
    return Counter(counts).most_common(1)[0][0] if counts else None


def _monotonic() -> float:
    """Return ``time.monotonic()`` looked up at each call, so that freezegun's clock is seen."""
    return time.monotonic()


class InFlight:
    """Counts the requests a simulator is answering (virtual time never jumps over one)."""

    def __init__(self) -> None:
        """Start with none."""
        self.count = 0

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Count the request while it is answered."""
        self.count += 1
        try:
            return await handler(request)
        finally:
            self.count -= 1


@asynccontextmanager
async def serve(app: web.Application, in_flight: InFlight) -> AsyncIterator[int]:
    """Serve ``app`` on a free loopback port; yield the port, stop the server afterwards."""
    app.middlewares.append(in_flight.middleware)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, LOCALHOST, 0)
        await site.start()
        port: int = runner.addresses[0][1]
        yield port
    finally:
        await runner.cleanup()


class RequestLog:
    """The requests a simulator's fault middleware recorded since the last mark."""

    def __init__(self, app: web.Application, is_write: Callable[[str, str], bool]) -> None:
        """Count on ``app[FAULTS].requests``; ``is_write(method, path)`` tells writes apart."""
        self._requests = app[FAULTS].requests
        self._is_write = is_write
        self._mark = len(self._requests)

    def mark(self) -> None:
        """Start counting from now."""
        self._mark = len(self._requests)

    def kinds_since_mark(self) -> dict[str, int]:
        """Return how many requests since the last mark went to each path (its last segment)."""
        paths = Counter("/" + path.rsplit("/", 1)[-1] for _, path in self._requests[self._mark :])
        return dict(paths.most_common())

    def since_mark(self, *, writes_only: bool = False) -> int:
        """Return the number of requests (or of write requests) since the last mark."""
        new = self._requests[self._mark :]
        return (
            sum(1 for method, path in new if self._is_write(method, path))
            if writes_only
            else len(new)
        )


@dataclass(slots=True)
class Runs:
    """Request counts and durations of one kind of call."""

    counts: list[int]
    seconds: list[float]


async def measure(
    log: RequestLog, n: int, call: Callable[[], Awaitable[object]], *, writes_only: bool = False
) -> Runs:
    """Call ``call`` ``n`` times; record the requests and the wall time of each call."""
    runs = Runs([], [])
    for _ in range(n):
        log.mark()
        start = time.perf_counter()
        await call()
        runs.seconds.append(time.perf_counter() - start)
        runs.counts.append(log.since_mark(writes_only=writes_only))
    return runs


# ---------------------------------------------------------------------- Home Assistant harness


@asynccontextmanager
async def home_assistant() -> AsyncIterator[HomeAssistant]:
    """Yield a test Home Assistant (temporary config dir) that loads custom_components/."""
    resolver = AsyncResolver()
    resolver.real_close = resolver.close  # type: ignore[attr-defined]  # what HA closes it with
    with (
        tempfile.TemporaryDirectory(prefix="battery-bridge-benchmark-") as config_dir,
        # as in the test harness: no zeroconf, so no network component is needed
        patch("homeassistant.helpers.aiohttp_client._async_make_resolver", return_value=resolver),
    ):
        async with async_test_home_assistant(config_dir=config_dir) as hass:
            hass.data.pop(loader.DATA_CUSTOM_COMPONENTS)  # find custom_components/battery_bridge
            frame.async_setup(hass)
            try:
                yield hass
            finally:
                for entry in hass.config_entries.async_entries(DOMAIN):
                    if entry.state is ConfigEntryState.LOADED:
                        await hass.config_entries.async_unload(entry.entry_id)
                await hass.async_stop(force=True)


def battery_entry(
    backend: str, data: dict[str, Any], battery_ids: Sequence[str]
) -> MockConfigEntry:
    """Return a config entry of ``backend`` with one battery subentry per id.

    The keys are the integration's stored entry format (config flow output), which set-up reads.
    """
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"{backend} benchmark",
        data={"backend": backend, **data},
        subentries_data=[
            {
                "data": {"battery_id": battery_id},
                "subentry_type": "battery",
                "title": f"Battery {index}",
                "unique_id": battery_id,
            }
            for index, battery_id in enumerate(battery_ids, start=1)
        ],
    )


async def set_up(hass: HomeAssistant, entry: MockConfigEntry) -> list[Any]:
    """Set up ``entry`` as Home Assistant does; return its batteries' runtimes (in order)."""
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    if entry.state is not ConfigEntryState.LOADED:
        raise RuntimeError(f"the {entry.title} entry did not load: {entry.state}")
    return list(entry.runtime_data.batteries.values())


async def refresh(coordinator: Any) -> None:
    """Poll through the coordinator; a failed poll means the benchmark itself is broken."""
    await coordinator.async_refresh()
    if not coordinator.last_update_success:
        raise RuntimeError(f"poll of {coordinator.name} failed: {coordinator.last_exception}")


async def write(controller: Any, command: Command) -> None:
    """Write ``command`` through the controller, as the number and select entities do."""
    kind, value = command
    if kind == "power":
        await controller.async_set_power(value)
    else:
        await controller.async_set_mode(value)


def _pending(coordinator: Any) -> bool:
    return bool(coordinator.data.control.pending)


class VirtualTime:
    """Run Home Assistant's timers at their due times, skipping the idle time between them.

    Runs under ``freeze_time(tick=True)``: time passes as usual while anything runs, so every
    poll and write costs its real time; once Home Assistant is idle and no simulator request is in
    flight, the clock (loop, monotonic, utcnow, the simulators) jumps to the next timer.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        factory: freezegun.api.TickingDateTimeFactory,
        in_flight: InFlight,
    ) -> None:
        """Drive ``hass``'s loop with the ticking clock ``factory``."""
        self._hass = hass
        self._factory = factory
        self._in_flight = in_flight
        self._loop = hass.loop

    def now(self) -> float:
        """Return the loop's (virtual) time."""
        return self._loop.time()

    async def _idle(self) -> None:
        while True:
            await self._hass.async_block_till_done(wait_background_tasks=True)
            if not self._in_flight.count:
                return
            await asyncio.sleep(0)

    def _next_timer(self) -> float | None:
        handles = get_scheduled_timer_handles(self._loop)
        return min((handle.when() for handle in handles if not handle.cancelled()), default=None)

    async def run(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Let ``seconds`` pass (stop early once ``until()``); return whether ``until()`` held."""
        end = self.now() + seconds
        for _ in range(MAX_STEPS):
            await self._idle()
            if until is not None and until():
                return True
            now = self.now()
            if now >= end:
                return False
            due = self._next_timer()
            target = end if due is None else min(due, end)
            if target > now:  # 2 us beyond: the clock's resolution is 1 us
                self._factory.move_to(self._factory() + timedelta(seconds=target - now + 2e-6))
            await asyncio.sleep(0)  # the loop moves the due timers to its ready queue...
            await asyncio.sleep(0)  # ...and runs them before the next idle check
        raise RuntimeError("virtual time did not advance")


@asynccontextmanager
async def virtual_clock() -> AsyncIterator[freezegun.api.TickingDateTimeFactory]:
    """Yield the ticking freezegun clock that ``VirtualTime`` moves; stop it afterwards."""
    freezer = freezegun.freeze_time(tick=True)
    factory = freezer.start()
    if not isinstance(factory, freezegun.api.TickingDateTimeFactory):
        raise TypeError(f"freeze_time(tick=True) gave a {type(factory).__name__}")
    try:
        yield factory
    finally:
        freezer.stop()


class LogCounter(logging.Handler):
    """Counts the integration's warnings and errors (a failed keepalive logs one)."""

    def __init__(self) -> None:
        """Count from WARNING up."""
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record."""
        self.records.append(record)


@contextmanager
def counting_warnings() -> Iterator[LogCounter]:
    """Yield a ``LogCounter`` attached to the integration's logger while the block runs."""
    counter = LogCounter()
    logger = logging.getLogger(INTEGRATION_LOGGER)
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)


# ------------------------------------------------------------------------------------ targets


@dataclass(slots=True)
class Settings:
    """What to run (the parsed command line)."""

    polls: int
    backends: tuple[str, ...]
    as_json: bool
    delay: float
    confirm_runs: int
    batteries: int
    rounds: int
    hours: float
    api_timeout: float
    keepalive_faults: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One backend: its simulator, its entry data and which of its requests are writes."""

    title: str
    create_app: Callable[[float, Callable[[], float]], web.Application]
    """The simulator, given the delay until a command applies and its clock."""
    entry_data: Callable[[int], dict[str, Any]]
    battery_id: Callable[[web.Application], str]
    is_write: Callable[[str, str], bool]
    write: Command
    """The write that is measured."""
    alternate: Command | None
    """Written in turn with ``write`` for time to confirmed; None: applied on the request."""


def _fems_app(delay: float, clock: Callable[[], float]) -> web.Application:
    del delay  # a FEMS applies a setpoint on the POST
    return fems_sim.create_app(clock=clock)


def _flexconnect_app(delay: float, clock: Callable[[], float]) -> web.Application:
    return flexconnect_sim.create_app(
        batteries=[flexconnect_sim.DEMO_BATTERIES[0]], latency=delay, clock=clock
    )


def _enode_app(delay: float, clock: Callable[[], float]) -> web.Application:
    # One battery only: the account watch would add any other one (and reload the entry).
    powerwall = enode_sim.demo_batteries()[0]
    return enode_sim.create_app(action_delay=delay, batteries=[powerwall], clock=clock)


def _enode_data(port: int) -> dict[str, Any]:
    url = f"http://{LOCALHOST}:{port}"
    return {
        "client_id": "demo-client",
        "client_secret": "demo-secret",  # the simulator's demo credentials
        "environment": "sandbox",
        "api_url": url,
        "token_url": f"{url}/oauth2/token",
    }


TARGETS: Final = {
    "fems": Target(
        title="FEMS",
        create_app=_fems_app,
        entry_data=lambda port: {
            "host": LOCALHOST,
            "port": port,
            "password": FEMS_PASSWORD,
            "ess_id": "ess0",
            "can_write": True,
        },
        battery_id=lambda app: app[fems_sim.SIM].ess_id,
        is_write=lambda method, _path: method == "POST",
        write=("power", 2000),
        alternate=None,
    ),
    "flexconnect": Target(
        title="FlexConnect",
        create_app=_flexconnect_app,
        entry_data=lambda port: {"host": LOCALHOST, "port": port},
        battery_id=lambda app: next(iter(app[flexconnect_sim.FLEXCONNECT].batteries)),
        is_write=lambda _method, path: path.endswith("/BatteryControlModifyRequest"),
        write=("power", -2000),
        alternate=("power", -1000),  # a setpoint equal to the current one confirms at once
    ),
    "enode": Target(
        title="Enode",
        create_app=_enode_app,
        entry_data=_enode_data,
        battery_id=lambda app: next(iter(app[enode_sim.SIM].batteries)),
        is_write=lambda method, path: method == "POST" and path.endswith("/operation-mode"),
        write=("mode", "export_focus"),
        alternate=("mode", "import_focus"),
    ),
}


# ------------------------------------------------------------------- one battery, real time


async def bench_backend(name: str, settings: Settings) -> dict[str, Any]:
    """Set-up, poll and write requests and latency through the real coordinator and controller."""
    target = TARGETS[name]
    in_flight = InFlight()
    app = target.create_app(PENDING_FOREVER_S, time.monotonic)
    async with serve(app, in_flight) as port, home_assistant() as hass:
        log = RequestLog(app, target.is_write)
        battery_id = target.battery_id(app)
        entry = battery_entry(name, target.entry_data(port), [battery_id])
        log.mark()
        (battery,) = await set_up(hass, entry)
        setup_requests = log.since_mark()
        coordinator, controller = battery.coordinator, battery.controller
        polls = await measure(log, settings.polls, lambda: refresh(coordinator))
        # The first write's refresh is the debouncer's immediate one; the measured writes fall in
        # its cooldown, so they are the write alone (the refresh they ask for is coalesced).
        await write(controller, target.write)
        writes = await measure(
            log, settings.polls, lambda: write(controller, target.write), writes_only=True
        )
        pending_counts: list[int] = []
        if _pending(coordinator):  # the simulators keep the command pending here
            pending = await measure(log, settings.polls, lambda: refresh(coordinator))
            pending_counts = pending.counts
    kind, value = target.write
    return {
        "battery_id": battery_id,
        "requests_per_poll": {
            "setup": setup_requests,
            "steady_state": most_common(polls.counts),
            "steady_state_range": [min(polls.counts), max(polls.counts)],
            "while_pending": most_common(pending_counts),
        },
        "requests_per_write": most_common(writes.counts),
        "poll_latency_ms": summary_ms(polls.seconds),
        "write": {"call": f"async_set_{kind}", "value": value},
        "write_latency_ms": summary_ms(writes.seconds),
    }


# --------------------------------------------------------------- one battery, virtual time


async def bench_confirmed(
    name: str, settings: Settings, factory: freezegun.api.TickingDateTimeFactory
) -> dict[str, Any] | None:
    """Time from a write until the coordinator's own polling shows it confirmed (virtual time)."""
    target = TARGETS[name]
    if target.alternate is None or settings.confirm_runs < 1:
        return None
    in_flight = InFlight()
    app = target.create_app(settings.delay, _monotonic)
    async with serve(app, in_flight) as port, home_assistant() as hass:
        clock = VirtualTime(hass, factory, in_flight)
        entry = battery_entry(name, target.entry_data(port), [target.battery_id(app)])
        (battery,) = await set_up(hass, entry)
        coordinator, controller = battery.coordinator, battery.controller
        limit = settings.delay * 4 + 120.0
        elapsed: list[float] = []
        intervals: list[float] = []
        for index in range(settings.confirm_runs):
            await clock.run(SETTLE_S)
            command = (target.alternate, target.write)[index % 2]
            start = clock.now()
            await write(controller, command)
            if _pending(coordinator):
                intervals.append(coordinator.update_interval.total_seconds())
            if not await clock.run(limit, until=lambda: not _pending(coordinator)):
                raise RuntimeError(f"{command} not confirmed within {limit:g} s")
            elapsed.append(clock.now() - start)
    overshoot = [value - settings.delay for value in elapsed]
    return {
        "configured_delay_s": settings.delay,
        "poll_interval_while_pending_s": most_common([round(value) for value in intervals]),
        "runs": len(elapsed),
        "seconds": {"median": round(statistics.median(elapsed), 3), "max": round(max(elapsed), 3)},
        "overshoot_s": {
            "mean": round(statistics.fmean(overshoot), 3),
            "max": round(max(overshoot), 3),
        },
    }


# ----------------------------------------------------------------------- FEMS keepalive, 24 h


class RecordingFemsSimulator(fems_sim.FemsSimulator):
    """The FEMS simulator, remembering each setpoint POST and each time its API timer ran out."""

    def __init__(self, **options: Any) -> None:
        """Set up the simulator (``options`` as for :class:`FemsSimulator`)."""
        super().__init__(**options)
        self.setpoint_posts: list[float] = []
        self.lapses: list[float] = []  # clock times the API timer dropped the written values

    def advance(self) -> None:
        """Note an API timer that ran out, then move the physics as usual."""
        if self.written and self.last_post is not None and self.api_timeout > 0:
            expiry = self.last_post + self.api_timeout
            if expiry <= self.clock():
                self.lapses.append(expiry)
        super().advance()

    def write(self, address: str, value: Any) -> None:
        """Record a setpoint POST, then write."""
        super().write(address, value)
        if address.endswith(f"/{FEMS_SETPOINT}") and value is not None:
            self.setpoint_posts.append(self.clock())


def _fault_times(hours: float, faults: int) -> list[float]:
    """Return when (seconds after the write) to fail the next keepalive POST, evenly spread."""
    span = hours * 3600
    return [span * (index + 1) / (faults + 1) for index in range(faults)]


async def bench_keepalive(
    settings: Settings, factory: freezegun.api.TickingDateTimeFactory
) -> dict[str, Any]:
    """Hold a setpoint for ``settings.hours`` of virtual time; measure gaps and lapses."""
    in_flight = InFlight()
    app = fems_sim.create_app(api_timeout=settings.api_timeout)
    sim = RecordingFemsSimulator(api_timeout=settings.api_timeout, clock=_monotonic)
    app[fems_sim.SIM] = sim
    log = RequestLog(app, TARGETS["fems"].is_write)
    real_start = freezegun.api.real_perf_counter()
    async with serve(app, in_flight) as port, home_assistant() as hass:
        clock = VirtualTime(hass, factory, in_flight)
        entry = battery_entry("fems", TARGETS["fems"].entry_data(port), [sim.ess_id])
        (battery,) = await set_up(hass, entry)
        controller = battery.controller
        with counting_warnings() as warnings:
            log.mark()
            start = clock.now()
            await write(controller, TARGETS["fems"].write)  # the user's write starts the timer
            interval = controller.keepalive_interval()
            done = 0.0
            for at in _fault_times(settings.hours, settings.keepalive_faults):
                await clock.run(at - done)
                done = at
                app[FAULTS].add(
                    Fault.SERVER_ERROR, path=f"/rest/channel/{sim.ess_id}/{FEMS_SETPOINT}"
                )
            await clock.run(settings.hours * 3600 - done)
            keepalive_active = controller.keepalive_active
            requests = log.since_mark()
            writes = log.since_mark(writes_only=True)
            elapsed = clock.now() - start
            sim.advance()  # a lapse at the very end shows too
    posts = sim.setpoint_posts
    gaps = [later - earlier for earlier, later in itertools.pairwise(posts)]
    lapsed = sum(max(0.0, gap - settings.api_timeout) for gap in gaps)
    return {
        "hours": round(elapsed / 3600, 4),
        "api_timeout_s": settings.api_timeout,
        "interval_s": None if interval is None else interval.total_seconds(),
        "rewrites": max(0, len(posts) - 1),
        "failed_rewrites": writes - len(posts),
        "injected_faults": settings.keepalive_faults,
        "polls": requests - writes,
        "gap_s": {
            "median": round(statistics.median(gaps), 4) if gaps else None,
            "max": round(max(gaps), 4) if gaps else None,
        },
        "margin_s": round(settings.api_timeout - max(gaps), 4) if gaps else None,
        "lapses": len(sim.lapses),
        "lapsed_s": round(lapsed, 4),
        "held_at_end": f"{sim.ess_id}/{FEMS_SETPOINT}" in sim.written,
        "keepalive_active_at_end": keepalive_active,
        "warnings_logged": len(warnings.records),
        "real_seconds": round(freezegun.api.real_perf_counter() - real_start, 2),
    }


# ------------------------------------------------------------------ many batteries, real time


def ski(index: int) -> str:
    """Return a FlexConnect battery id (40 upper-case hexadecimal digits) for ``index``."""
    return f"{index:040X}"


async def bench_many(settings: Settings) -> dict[str, Any]:
    """``settings.batteries`` FlexConnect batteries in one entry: set-up, poll rounds."""
    count = settings.batteries
    ids = [ski(index) for index in range(1, count + 1)]
    in_flight = InFlight()
    app = flexconnect_sim.create_app(batteries=ids, latency=PENDING_FOREVER_S)
    async with serve(app, in_flight) as port, home_assistant() as hass:
        log = RequestLog(app, TARGETS["flexconnect"].is_write)
        entry = battery_entry("flexconnect", TARGETS["flexconnect"].entry_data(port), ids)
        cpu, wall = time.process_time(), time.perf_counter()
        batteries = await set_up(hass, entry)
        setup_wall, setup_cpu = time.perf_counter() - wall, time.process_time() - cpu
        setup_requests = log.since_mark()
        setup_kinds = log.kinds_since_mark()
        entities = len(er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id))
        coordinators = [battery.coordinator for battery in batteries]
        round_wall: list[float] = []
        round_cpu: list[float] = []
        round_requests: list[int] = []
        for _ in range(settings.rounds):
            log.mark()
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(refresh(coordinator) for coordinator in coordinators))
            round_wall.append(time.perf_counter() - wall)
            round_cpu.append(time.process_time() - cpu)
            round_requests.append(log.since_mark())
    return {
        "backend": "flexconnect",
        "batteries": len(batteries),
        "entities": entities,
        "setup": {
            "wall_s": round(setup_wall, 3),
            "cpu_s": round(setup_cpu, 3),
            "requests": setup_requests,
            "requests_by_path": setup_kinds,
        },
        "poll_round": {
            "rounds": settings.rounds,
            "wall_ms": summary_ms(round_wall),
            "cpu_ms_per_battery_poll": round(sum(round_cpu) / (settings.rounds * count) * 1000, 3),
            "requests_per_battery_poll": round(sum(round_requests) / (settings.rounds * count), 3),
        },
    }


# ------------------------------------------------------------------------------------- output

HEADLINE: Final = (
    "Battery Bridge benchmark: the integration's coordinator and controller in a Home Assistant "
    "test harness"
)
EPILOG: Final = """\
figures (one battery per entry, one entry per backend, a fresh Home Assistant each):
  requests         per coordinator poll (set-up: everything the entry's set-up asked, client
                   warm-up included; pending: while a command is not yet applied) and per
                   controller write (write requests only: the refresh a write asks for is
                   debounced, one at most every 10 s)
  latency          wall time of coordinator.async_refresh() / controller.async_set_*(), client,
                   coordinator, entity updates and the in-process simulator together
  confirmed        virtual time from a controller write until the coordinator's own polling
                   (its pending interval) shows the command applied; --delay is the simulator's
  N batteries      one FlexConnect entry with N battery subentries: set-up time, CPU per battery
                   poll (all N coordinators polled at once; the in-process simulator included)
  keepalive        a setpoint held for --hours of virtual time against a FEMS simulator with
                   --api-timeout: gaps between setpoint POSTs and lapses (the API timer ran out
                   and dropped the setpoint); --keepalive-faults fails that many POSTs
"""


def _cell(value: object, suffix: str = "") -> str:
    return "-" if value is None else f"{value}{suffix}"


def _latency_cell(stats: dict[str, Any]) -> str:
    return f"{stats['median']:.2f} / {stats['p95']:.2f}"


def table(title: str, rows: Sequence[Sequence[str]], header: Sequence[str] = ()) -> list[str]:
    """Return ``rows`` (under ``header``, if any) as aligned text lines, with ``title`` above."""
    every = [header, *rows] if header else list(rows)
    widths = [max(len(row[col]) for row in every) for col in range(len(every[0]))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    lines = ["", title]
    if header:
        lines += [line(header).rstrip(), line(["-" * width for width in widths])]
    return lines + [line(row).rstrip() for row in rows]


def _backend_rows(backends: dict[str, Any]) -> list[list[str]]:
    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> list[str]:
        return [label, *(cell(result) for result in backends.values())]

    def confirmed(result: dict[str, Any], key: str) -> str:
        figures = result.get("time_to_confirmed")
        if figures is None:
            return "-"
        if key == "seconds":
            return f"{figures['seconds']['median']:.1f} / {figures['seconds']['max']:.1f} s"
        return (
            f"{figures['configured_delay_s']:g} s + poll every "
            f"{_cell(figures['poll_interval_while_pending_s'], ' s')}"
        )

    return [
        row("requests at set-up", lambda r: _cell(r["requests_per_poll"]["setup"])),
        row("requests per poll", lambda r: _cell(r["requests_per_poll"]["steady_state"])),
        row("  while pending", lambda r: _cell(r["requests_per_poll"]["while_pending"])),
        row("requests per write", lambda r: _cell(r["requests_per_write"])),
        row("write", lambda r: f"{r['write']['call']}({r['write']['value']})"),
        row("poll ms, median / p95", lambda r: _latency_cell(r["poll_latency_ms"])),
        row("write ms, median / p95", lambda r: _latency_cell(r["write_latency_ms"])),
        row("confirmed, median / max", lambda r: confirmed(r, "seconds")),
        row("  delay + polling", lambda r: confirmed(r, "delay")),
    ]


def _many_rows(many: dict[str, Any]) -> list[list[str]]:
    setup, polls = many["setup"], many["poll_round"]
    per_battery = setup["wall_s"] / many["batteries"] * 1000
    paths = ", ".join(f"{path} {count}" for path, count in setup["requests_by_path"].items())
    return [
        ["set-up", f"{setup['wall_s']:.2f} s wall ({per_battery:.1f} ms per battery)"],
        ["  CPU", f"{setup['cpu_s']:.2f} s"],
        ["  requests", f"{setup['requests']} ({paths})"],
        ["entities", str(many["entities"])],
        [
            "poll round (all at once)",
            f"{polls['wall_ms']['median']:.1f} ms wall, median of {polls['rounds']}",
        ],
        ["CPU per battery poll", f"{polls['cpu_ms_per_battery_poll']:.3f} ms"],
        ["requests per battery poll", f"{polls['requests_per_battery_poll']:g}"],
    ]


def _keepalive_rows(keepalive: dict[str, Any]) -> list[list[str]]:
    gaps = keepalive["gap_s"]
    return [
        ["simulated", f"{keepalive['hours']:g} h ({keepalive['real_seconds']:g} s real)"],
        [
            "API timeout / interval",
            f"{keepalive['api_timeout_s']:g} s / {_cell(keepalive['interval_s'], ' s')}",
        ],
        [
            "rewrites (failed)",
            (
                f"{keepalive['rewrites']} ({keepalive['failed_rewrites']}, "
                f"{keepalive['injected_faults']} injected)"
            ),
        ],
        ["polls", str(keepalive["polls"])],
        ["gap, median / max", f"{_cell(gaps['median'], ' s')} / {_cell(gaps['max'], ' s')}"],
        ["margin (timeout - max gap)", _cell(keepalive["margin_s"], " s")],
        ["lapses (setpoint dropped)", f"{keepalive['lapses']} ({keepalive['lapsed_s']:g} s)"],
        [
            "held at end / keepalive on",
            (
                f"{'yes' if keepalive['held_at_end'] else 'NO'} / "
                f"{'yes' if keepalive['keepalive_active_at_end'] else 'no'}"
            ),
        ],
        ["warnings logged", str(keepalive["warnings_logged"])],
    ]


def format_table(report: dict[str, Any]) -> str:
    """Return the report as readable text: one table per part."""
    settings = report["settings"]
    polls = settings["polls"]
    lines = [
        HEADLINE,
        f"against loopback simulators ({polls} polls and writes each; lower bounds, not devices)",
    ]
    backends = report["backends"]
    titles = [TARGETS[name].title for name in backends]
    lines += table("One battery per entry", _backend_rows(backends), ["", *titles])
    if (many := report.get("many_batteries")) is not None:
        title = f"{many['batteries']} batteries in one FlexConnect entry"
        lines += table(title, _many_rows(many))
    if (keepalive := report.get("keepalive")) is not None:
        lines += table("FEMS keepalive (virtual time)", _keepalive_rows(keepalive))
    return "\n".join(lines)


NUMBER_OPTIONS: Final[tuple[tuple[str, type[float | int], float, str], ...]] = (
    ("--polls", int, 50, "polls and writes per backend"),
    ("--delay", float, 5.0, "FlexConnect latency / Enode action delay, virtual s"),
    ("--confirm-runs", int, 3, "commands timed until confirmed, 0: skip"),
    ("--batteries", int, 100, "FlexConnect batteries in one entry, 0: skip"),
    ("--rounds", int, 5, "poll rounds of those batteries"),
    ("--hours", float, 24.0, "virtual hours of FEMS keepalive, 0: skip"),
    ("--api-timeout", float, 60.0, "FEMS API timeout, s"),
    ("--keepalive-faults", int, 0, "keepalive POSTs to fail"),
)


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark Battery Bridge in a Home Assistant test harness (loopback).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    for flag, kind, default, text in NUMBER_OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default:g})")
    args = parser.parse_args(argv)
    if args.polls < 1 or args.rounds < 1:
        parser.error("--polls and --rounds must be at least 1")
    return Settings(
        polls=args.polls,
        backends=BACKENDS if args.backend == "all" else (args.backend,),
        as_json=args.json,
        delay=args.delay,
        confirm_runs=max(0, args.confirm_runs),
        batteries=max(0, args.batteries),
        rounds=args.rounds,
        hours=max(0.0, args.hours),
        api_timeout=args.api_timeout,
        keepalive_faults=max(0, args.keepalive_faults),
    )


async def run(settings: Settings) -> dict[str, Any]:
    """Run the selected parts; return the report."""
    backends = {name: await bench_backend(name, settings) for name in settings.backends}
    many = None
    if settings.batteries and "flexconnect" in settings.backends:
        many = await bench_many(settings)
    keepalive = None
    async with virtual_clock() as factory:
        for name, result in backends.items():
            result["time_to_confirmed"] = await bench_confirmed(name, settings, factory)
        if settings.hours and "fems" in settings.backends:
            keepalive = await bench_keepalive(settings, factory)
    return {
        "settings": {
            "polls": settings.polls,
            "delay_s": settings.delay,
            "confirm_runs": settings.confirm_runs,
            "batteries": settings.batteries,
            "rounds": settings.rounds,
            "hours": settings.hours,
            "fems_api_timeout_s": settings.api_timeout,
            "keepalive_faults": settings.keepalive_faults,
            "python": sys.version.split()[0],
            "aiohttp": aiohttp.__version__,
        },
        "backends": backends,
        "many_batteries": many,
        "keepalive": keepalive,
    }


async def async_main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the benchmarks and print the table or the JSON object."""
    settings = parse_args(argv)
    report = await run(settings)
    print(json.dumps(report, indent=2) if settings.as_json else format_table(report))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("homeassistant.loader").setLevel(logging.ERROR)  # "custom integration"
    sys.exit(asyncio.run(async_main()))
