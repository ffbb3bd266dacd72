"""Fixtures shared by every test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
import pytest

from simulator.fems import Firmware

StartApp = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/battery_bridge in every test."""


@pytest.fixture
async def start_app() -> AsyncIterator[StartApp]:
    """Serve aiohttp applications (the simulators) on free loopback ports; stop them afterwards."""
    servers: list[TestServer] = []

    async def _start(app: web.Application) -> TestServer:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server(access_log=None)  # no access log: it breaks under freezegun
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.close()


@pytest.fixture(params=list(Firmware), ids=str)
def fems_firmware(request: pytest.FixtureRequest) -> Firmware:
    """Each FEMS firmware family (its error replies): every FEMS loopback test runs against both."""
    return Firmware(request.param)


class ManualClock:
    """A monotonic clock (for a simulator or a client) that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session for the client tests (Home Assistant's is not needed there)."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session
