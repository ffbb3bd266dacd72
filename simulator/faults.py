"""Fault injection shared by every simulator.

Tests queue faults on ``app[FAULTS]``; the middleware applies them to the next matching requests:

    app[FAULTS].add(Fault.HTML_ERROR, count=2)
    app[FAULTS].add(Fault.SLOW, delay=5.0, path="/rest/channel")
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware


class Fault(StrEnum):
    """What can go wrong with a reply."""

    SLOW = "slow"  # wait ``delay`` seconds, then answer normally
    SERVER_ERROR = "server_error"  # HTTP ``status`` (default 500) with a short text body
    MALFORMED_JSON = "malformed_json"  # 200 with a body that is not JSON
    HTML_ERROR = "html_error"  # a Jetty/nginx-style HTML error page with ``status``
    DROP = "drop"  # close the connection without an answer
    WRONG_TYPES = "wrong_types"  # 200 with valid JSON of the wrong shape (a list of strings)
    EMPTY = "empty"  # 200 with an empty body


class Countdown(Protocol):
    """A queued reply for the next ``count`` requests whose path starts with ``path``."""

    count: int

    @property
    def path(self) -> str | None:
        """Return the path prefix it applies to (None: every path)."""


def take_next[QueuedT: Countdown](queue: list[QueuedT], path: str) -> QueuedT | None:
    """Return the first entry of ``queue`` for a request to ``path``, using up one of its count."""
    for queued in queue:
        if queued.path is None or path.startswith(queued.path):
            queued.count -= 1
            if queued.count <= 0:
                queue.remove(queued)
            return queued
    return None


@dataclass(slots=True)
class _Queued:
    fault: Fault
    count: int
    delay: float
    status: int
    path: str | None


class FaultInjector:
    """A queue of faults, consumed by the fault middleware."""

    def __init__(self) -> None:
        """Start with no faults."""
        self._queue: list[_Queued] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request seen

    def add(
        self,
        fault: Fault,
        *,
        count: int = 1,
        delay: float = 0.0,
        status: int = 500,
        path: str | None = None,
    ) -> None:
        """Apply ``fault`` to the next ``count`` requests (whose path starts with ``path``)."""
        self._queue.append(_Queued(fault, count, delay, status, path))

    def clear(self) -> None:
        """Forget every queued fault."""
        self._queue.clear()

    def take(self, path: str) -> _Queued | None:
        """Return the fault for a request to ``path``, if one is queued."""
        return take_next(self._queue, path)


FAULTS = web.AppKey("faults", FaultInjector)

HTML_PAGE = (
    '<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html;charset=ISO-8859-1"/>\n'
    "<title>Error {status} Server Error</title>\n</head>\n<body><h2>HTTP ERROR {status} Server Error</h2>\n"
    "<table>\n<tr><th>URI:</th><td>{path}</td></tr>\n<tr><th>STATUS:</th><td>{status}</td></tr>\n"
    '</table>\n<hr/><a href="https://eclipse.org/jetty">Powered by Jetty:// 12.0.16</a><hr/>\n'
    "</body>\n</html>\n"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record the request and apply the next queued fault, if any."""
    injector = request.app[FAULTS]
    injector.requests.append((request.method, request.path))
    queued = injector.take(request.path)
    if queued is None:
        return await handler(request)
    match queued.fault:
        case Fault.SLOW:
            await asyncio.sleep(queued.delay)
            return await handler(request)
        case Fault.SERVER_ERROR:
            return web.Response(status=queued.status, text="Internal Server Error")
        case Fault.MALFORMED_JSON:
            return web.Response(text='{"value": 1,', content_type="application/json")
        case Fault.HTML_ERROR:
            return web.Response(
                status=queued.status,
                text=HTML_PAGE.format(status=queued.status, path=request.path),
                content_type="text/html",
            )
        case Fault.DROP:
            transport = request.transport
            if transport is not None:
                transport.close()
            raise ConnectionResetError("simulated dropped connection")
        case Fault.WRONG_TYPES:
            return web.json_response(["unexpected", "shape"])
        case Fault.EMPTY:
            return web.Response(status=200, body=b"", content_type="application/json")


def new_app(*, middlewares: list[Middleware] | None = None) -> web.Application:
    """Return an application with the fault middleware and an injector installed."""
    app = web.Application(middlewares=[fault_middleware, *(middlewares or [])])
    app[FAULTS] = FaultInjector()
    return app
