"""HTTP plumbing shared by the backend clients: one request, the body, errors, Retry-After.

``send`` performs one exchange over the injected session and returns an :class:`HttpReply` (or
raises ``CannotConnectError`` / ``ProtocolError``); the clients classify the status themselves.
``what`` in every function is the prefix of the messages, e.g. ``"Enode get battery"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
import logging
import math
import re
from typing import Final

import aiohttp
from yarl import URL

from ._json import loads_strict
from .errors import CannotConnectError, ProtocolError

_LOGGER = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1 << 20  # 1 MiB: far above any documented reply
MAX_MESSAGE: Final = 200  # longest server text put into an error message
RETRY_AFTER_MAX_S: Final = 86400.0  # a longer Retry-After is cut to a day
_CHUNK: Final = 64 * 1024

_DAYS: Final = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAYS: Final = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_MONTH: Final = f"({'|'.join(_MONTHS)})"
_TIME: Final = "([0-9]{2}):([0-9]{2}):([0-9]{2})"
# RFC 9110 section 5.6.7: IMF-fixdate, and the obsolete rfc850-date and asctime-date forms
_IMF_FIXDATE: Final = re.compile(f"{_DAYS}, ([0-9]{{2}}) {_MONTH} ([0-9]{{4}}) {_TIME} GMT")
_RFC850_DATE: Final = re.compile(f"{_LONG_DAYS}, ([0-9]{{2}})-{_MONTH}-([0-9]{{2}}) {_TIME} GMT")
_ASCTIME_DATE: Final = re.compile(f"{_DAYS} {_MONTH} ([0-9 ][0-9]) {_TIME} ([0-9]{{4}})")
_DELAY_SECONDS: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # RFC: digits; a fraction is harmless


@dataclass(frozen=True, slots=True)
class HttpReply:
    """Status, body (at most ``MAX_BODY_BYTES``), content type and ``Retry-After`` of a reply."""

    status: int
    body: bytes
    content_type: str
    retry_after: str | None = None

    @property
    def is_empty(self) -> bool:
        """Return True for a body that is empty or only whitespace."""
        return not self.body.strip()

    @property
    def is_html(self) -> bool:
        """Return True for an HTML page (by content type, or a body starting with ``<``)."""
        return "html" in self.content_type.lower() or self.body.lstrip().startswith(b"<")


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str | URL,
    what: str,
    *,
    request_timeout: float,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str | int] | None = None,
    json: object = None,
    data: Mapping[str, str] | None = None,
    max_body: int = MAX_BODY_BYTES,
) -> HttpReply:
    """Send one request (no redirects followed) and return the reply with its whole body.

    Args:
        session: The injected aiohttp session.
        method: The HTTP method.
        url: The full URL.
        what: The prefix of messages, e.g. ``"FlexConnect BatteryStateRequest"``.
        request_timeout: Seconds for the whole exchange, body included.
        headers: Request headers.
        params: Query parameters.
        json: A JSON body (None: none).
        data: A form body (None: none).
        max_body: The largest body accepted, in bytes.

    Raises:
        CannotConnectError: Timeout, connection or transport error (messages name only the type).
        ProtocolError: The body is larger than ``max_body``.
    """
    try:
        async with session.request(
            method,
            url,
            headers=None if headers is None else dict(headers),
            params=params,
            json=json,
            data=data,
            timeout=aiohttp.ClientTimeout(total=request_timeout),
            allow_redirects=False,
        ) as response:
            too_big = ProtocolError(f"{what}: the reply is larger than {max_body} bytes")
            if (response.content_length or 0) > max_body:
                raise too_big
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > max_body:
                    raise too_big
                chunks.append(chunk)
            reply = HttpReply(
                response.status,
                b"".join(chunks),
                response.content_type,
                response.headers.get("Retry-After"),
            )
    except TimeoutError as err:
        raise CannotConnectError(f"{what}: did not answer within {request_timeout:g} s") from err
    except (aiohttp.ClientError, ValueError, RuntimeError) as err:
        raise CannotConnectError(f"{what}: connection failed ({type(err).__name__})") from err
    _LOGGER.debug("%s -> HTTP %s, %d bytes", what, reply.status, len(reply.body))
    return reply


def decode_json(reply: HttpReply, what: str) -> object:
    """Return the JSON of a reply body.

    Raises:
        ProtocolError: An empty body, an HTML page, not UTF-8, malformed JSON, NaN / Infinity.
    """
    if reply.is_empty:
        raise ProtocolError(f"{what}: empty reply (HTTP {reply.status})")
    if reply.is_html:
        raise ProtocolError(f"{what}: an HTML page instead of JSON (HTTP {reply.status})")
    try:
        text = reply.body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProtocolError(f"{what}: the reply is not UTF-8 (HTTP {reply.status})") from err
    try:
        return loads_strict(text)
    except (ValueError, RecursionError) as err:
        raise ProtocolError(f"{what}: malformed JSON (HTTP {reply.status})") from err


def try_decode_json(reply: HttpReply) -> object:
    """Return the JSON of a reply body, or None when it has none (for error replies)."""
    try:
        return decode_json(reply, "")
    except ProtocolError:
        return None


def _http_date(text: str, now: datetime) -> datetime | None:
    """Return an RFC 9110 HTTP-date (any of its three forms) in UTC, or None."""
    if match := _IMF_FIXDATE.fullmatch(text):
        day, month, year, hour, minute, second = match.groups()
    elif match := _RFC850_DATE.fullmatch(text):
        day, month, short_year, hour, minute, second = match.groups()
        # RFC 9110: a two-digit year more than 50 years ahead is in the past century
        this_year = now.year
        year_number = this_year - this_year % 100 + int(short_year)
        if year_number > this_year + 50:
            year_number -= 100
        year = str(year_number)
    elif match := _ASCTIME_DATE.fullmatch(text):
        month, day, hour, minute, second, year = match.groups()
    else:
        return None
    try:
        return datetime(
            int(year),
            _MONTHS.index(month) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=UTC,
        )
    except ValueError:  # e.g. 31 Feb, hour 25
        return None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait (RFC 9110 section 10.2.3).

    Delay-seconds and HTTP-dates (seconds from ``now``; a past date is 0) are understood, cut
    to ``RETRY_AFTER_MAX_S``; None for a missing, negative or unreadable value.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        now = now or datetime.now(UTC)
        moment = _http_date(text, now)
        if moment is None:
            return None
        seconds = max(0.0, (moment - now).total_seconds())
    return min(seconds, RETRY_AFTER_MAX_S) if math.isfinite(seconds) else RETRY_AFTER_MAX_S


def scrub(text: str, secrets: Iterable[str] = (), limit: int = MAX_MESSAGE) -> str:
    """Return a server text as one line of at most ``limit`` characters, secrets as ``***``.

    Whitespace runs become one space (in the secrets too), then the secrets are replaced, longest
    first, and only then is the text cut, so no part of a secret is left.
    """
    text = " ".join(text.split())
    for secret in sorted({" ".join(s.split()) for s in secrets} - {""}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text[:limit]
