"""The shared HTTP plumbing (api/_http.py) and JSON helpers (api/_json.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
import socket

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings, strategies as st
import pytest

from custom_components.battery_bridge.api import CannotConnectError, ProtocolError
from custom_components.battery_bridge.api._http import (
    MAX_BODY_BYTES,
    MAX_MESSAGE,
    RETRY_AFTER_MAX_S,
    HttpReply,
    decode_json,
    parse_retry_after,
    scrub,
    send,
    try_decode_json,
)
from custom_components.battery_bridge.api._json import loads_strict, parse_rfc3339, type_name
from tests.conftest import StartApp

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


# --------------------------------------------------------------------------------------------------
# send
# --------------------------------------------------------------------------------------------------


async def _stream_forever(request: web.Request) -> web.StreamResponse:
    """Answer with an endless chunked body (no Content-Length)."""
    response = web.StreamResponse()
    await response.prepare(request)
    chunk = b"x" * 65536
    try:
        while True:
            await response.write(chunk)
    except ConnectionError:
        pass
    return response


async def _echo(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "method": request.method,
            "query": dict(request.query),
            "header": request.headers.get("X-Test"),
            "body": await request.text(),
        },
        headers={"Retry-After": "12"},
    )


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(text="late")


def _app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/forever", _stream_forever)
    app.router.add_get("/big", _big)
    app.router.add_get("/exact", _exact)
    app.router.add_get("/redirect", _redirect)
    return app


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"7" * (MAX_BODY_BYTES + 1), content_type="application/json")


async def _exact(request: web.Request) -> web.Response:
    return web.Response(body=b"7" * MAX_BODY_BYTES, content_type="application/json")


async def _redirect(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/echo"})


@pytest.fixture
async def server(start_app: StartApp, socket_enabled: None) -> TestServer:
    return await start_app(_app())


async def test_send_returns_the_reply(server: TestServer, session: aiohttp.ClientSession) -> None:
    reply = await send(
        session,
        "POST",
        server.make_url("/echo"),
        "Test echo",
        request_timeout=5,
        headers={"X-Test": "yes"},
        params={"page": 2},
        json={"a": 1},
    )
    assert reply.status == 200
    assert reply.content_type == "application/json"
    assert reply.retry_after == "12"
    assert decode_json(reply, "Test") == {
        "method": "POST",
        "query": {"page": "2"},
        "header": "yes",
        "body": '{"a": 1}',
    }
    form = await send(
        session, "POST", str(server.make_url("/echo")), "Test", request_timeout=5, data={"k": "v"}
    )
    assert loads_strict(form.body) == {"method": "POST", "query": {}, "header": None, "body": "k=v"}


async def test_send_does_not_follow_redirects(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    reply = await send(session, "GET", server.make_url("/redirect"), "Test", request_timeout=5)
    assert reply.status == 302


async def test_send_timeout(server: TestServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(CannotConnectError, match=r"^Test slow: did not answer within 0\.1 s$"):
        await send(session, "GET", server.make_url("/slow"), "Test slow", request_timeout=0.1)


async def test_send_body_cap(server: TestServer, session: aiohttp.ClientSession) -> None:
    reply = await send(session, "GET", server.make_url("/exact"), "Test", request_timeout=5)
    assert len(reply.body) == MAX_BODY_BYTES
    with pytest.raises(ProtocolError, match="larger than"):
        await send(session, "GET", server.make_url("/big"), "Test", request_timeout=5)
    # an endless body is cut off after the cap, long before the timeout
    with pytest.raises(ProtocolError, match="larger than 1000 bytes"):
        await send(
            session,
            "GET",
            server.make_url("/forever"),
            "Test",
            request_timeout=30,
            max_body=1000,
        )
    with pytest.raises(ProtocolError, match="larger than"):
        await send(session, "GET", server.make_url("/forever"), "Test", request_timeout=30)


async def test_send_connection_errors(session: aiohttp.ClientSession, socket_enabled: None) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CannotConnectError, match=r"^Test: connection failed \(\w+\)$"):
        await send(session, "GET", f"http://127.0.0.1:{port}/", "Test", request_timeout=5)
    with pytest.raises(CannotConnectError, match="connection failed"):  # not a URL (ValueError)
        await send(session, "GET", "http://[::1/", "Test", request_timeout=5)
    closed = aiohttp.ClientSession()
    await closed.close()
    with pytest.raises(CannotConnectError, match=r"connection failed \(RuntimeError\)"):
        await send(closed, "GET", f"http://127.0.0.1:{port}/", "Test", request_timeout=5)


# --------------------------------------------------------------------------------------------------
# decode_json, HttpReply
# --------------------------------------------------------------------------------------------------


def _reply(body: bytes, content_type: str = "application/json", status: int = 200) -> HttpReply:
    return HttpReply(status, body, content_type)


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        (b"", "application/json", "empty reply"),
        (b" \r\n\t", "application/json", "empty reply"),
        (b'{"a": 1}', "text/html", "HTML page"),
        (b'{"a": 1}', "TEXT/HTML", "HTML page"),
        (b"\n  <html><body>Error</body></html>", "application/json", "HTML page"),
        (b'{"a": "\xff"}', "application/json", "not UTF-8"),
        (b'{"a": 1', "application/json", "malformed JSON"),
        (b'{"a": NaN}', "application/json", "malformed JSON"),
        (b'{"a": Infinity}', "application/json", "malformed JSON"),
        (b"[-Infinity]", "application/json", "malformed JSON"),
        (b"NaN", "application/json", "malformed JSON"),
        (b"[" * 100_000, "application/json", "malformed JSON"),  # RecursionError
        (b"\xef\xbb\xbf{}", "application/json", "malformed JSON"),  # a BOM is not JSON
    ],
)
def test_decode_json_rejects(body: bytes, content_type: str, match: str) -> None:
    reply = _reply(body, content_type, status=418)
    with pytest.raises(ProtocolError, match=rf"^Test: .*{match}.*\(HTTP 418\)$"):
        decode_json(reply, "Test")
    assert try_decode_json(reply) is None


def test_decode_json_accepts() -> None:
    assert decode_json(_reply(b' {"a": [1, 2.5, null, true]} \n'), "T") == {
        "a": [1, 2.5, None, True]
    }
    assert decode_json(_reply(b'"\xc3\xa4"', "text/plain"), "T") == "ä"
    assert try_decode_json(_reply(b"0")) == 0


def test_reply_properties() -> None:
    assert _reply(b"  ").is_empty
    assert not _reply(b" 1 ").is_empty
    assert _reply(b"x", "text/html").is_html
    assert _reply(b"\t<!doctype html>").is_html
    assert not _reply(b"[1]").is_html
    with pytest.raises(AttributeError):
        _reply(b"").status = 500  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# Retry-After
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("2.5", 2.5),
        ("-1", None),
        ("+5", None),
        ("1e3", None),
        ("inf", None),
        ("NaN", None),
        ("soon", None),
        ("٣", None),  # a non-ASCII digit
        ("1" + "0" * 400, RETRY_AFTER_MAX_S),  # beyond the float range
        ("999999", RETRY_AFTER_MAX_S),
        # the three HTTP-date forms of RFC 9110 section 5.6.7
        ("Sun, 01 Mar 2026 12:01:30 GMT", 90.0),
        ("Sunday, 01-Mar-26 12:01:30 GMT", 90.0),
        ("Sun Mar  1 12:01:30 2026", 90.0),
        ("Sun Mar 01 12:01:30 2026", 90.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # in the past: retry now
        ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),  # two-digit year: 1994
        ("Sun, 01 Mar 2099 12:00:00 GMT", RETRY_AFTER_MAX_S),
        ("Sun, 31 Feb 2026 12:00:00 GMT", None),  # no such day
        ("Sun, 01 Mar 2026 25:00:00 GMT", None),
        ("Sun, 01 Mar 2026 12:01:30 UTC", None),
        ("sun, 01 mar 2026 12:01:30 gmt", None),  # HTTP-date is case-sensitive
        ("2026-03-01T12:01:30Z", None),
        ("Sun, 01 Mar 2026", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_parse_retry_after_two_digit_years() -> None:
    # RFC 9110: a two-digit year more than 50 years ahead is in the past century
    soon = parse_retry_after("Monday, 01-Mar-27 12:00:00 GMT", NOW)
    assert soon == RETRY_AFTER_MAX_S  # 2027, a year ahead (capped)
    assert parse_retry_after("Monday, 01-Mar-77 12:00:00 GMT", NOW) == 0.0  # 1977, not 2077
    assert parse_retry_after("Friday, 01-Mar-75 12:00:00 GMT", NOW) == RETRY_AFTER_MAX_S  # 2075


def test_parse_retry_after_defaults_to_the_current_time() -> None:
    ahead = datetime.now(UTC) + timedelta(hours=1)
    header = ahead.strftime("%a, %d %b %Y %H:%M:%S GMT")
    seconds = parse_retry_after(header)
    assert seconds is not None
    assert 3500 < seconds <= 3600


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_fuzz_parse_retry_after(header: str) -> None:
    seconds = parse_retry_after(header, NOW)
    assert seconds is None or 0.0 <= seconds <= RETRY_AFTER_MAX_S


# --------------------------------------------------------------------------------------------------
# scrub
# --------------------------------------------------------------------------------------------------


def test_scrub_replaces_every_secret() -> None:
    text = "user pw=hunter2 token=abc.def again hunter2"
    assert scrub(text, ("hunter2", "abc.def")) == "user pw=*** token=*** again ***"
    assert scrub(text, ("", "hunter2")) == "user pw=*** token=abc.def again ***"
    assert scrub(text) == text


def test_scrub_replaces_longer_secrets_first() -> None:
    # a secret that contains another must not leave its remainder behind
    assert scrub("key=abcdef", ("abc", "abcdef")) == "key=***"


def test_scrub_cuts_after_replacing() -> None:
    secret = "S" * 50
    text = "x" * (MAX_MESSAGE - 10) + secret
    assert scrub(text, (secret,)) == "x" * (MAX_MESSAGE - 10) + "***"
    assert scrub(text) == "x" * (MAX_MESSAGE - 10) + "S" * 10  # cut, but nothing to hide
    assert scrub("a" * 500, limit=20) == "a" * 20


def test_scrub_makes_one_line() -> None:
    assert scrub("first\n  second\r\n\tthird ") == "first second third"
    # a secret is found whatever whitespace the server put into it
    assert scrub("pw: two\n words!", ("two words",)) == "pw: ***!"
    assert scrub("pw: two words", ("two\twords", " \n ")) == "pw: ***"


SECRET_TEXT = st.text(st.characters(exclude_characters="*"), max_size=300)


@settings(max_examples=300, deadline=None)
@given(SECRET_TEXT, SECRET_TEXT, SECRET_TEXT.filter(lambda s: s.strip()))
def test_fuzz_scrub(before: str, after: str, secret: str) -> None:
    scrubbed = scrub(f"{before}{secret}{after}", (secret,))
    assert len(scrubbed) <= MAX_MESSAGE
    assert " ".join(secret.split()) not in scrubbed


# --------------------------------------------------------------------------------------------------
# _json: type names, strict JSON, RFC 3339
# --------------------------------------------------------------------------------------------------


def test_type_name_and_loads_strict() -> None:
    assert type_name(None) == "null"
    assert type_name([1]) == "list"
    assert loads_strict('{"a": [1e308]}') == {"a": [1e308]}
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match=constant):
            loads_strict(f"[{constant}]")


PLUS_2 = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-10-07T17:05:00Z", datetime(2024, 10, 7, 17, 5, tzinfo=UTC)),
        ("2024-10-07t17:05:00z", datetime(2024, 10, 7, 17, 5, tzinfo=UTC)),
        ("2024-10-07T17:05:00z", datetime(2024, 10, 7, 17, 5, tzinfo=UTC)),
        ("2024-10-07t17:05:00Z", datetime(2024, 10, 7, 17, 5, tzinfo=UTC)),
        ("2024-10-07 17:05:00Z", datetime(2024, 10, 7, 17, 5, tzinfo=UTC)),
        ("2024-10-07T19:05:00+02:00", datetime(2024, 10, 7, 19, 5, tzinfo=PLUS_2)),
        (
            "2024-10-07T11:35:00-05:30",
            datetime(2024, 10, 7, 11, 35, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
        ),
        ("2024-10-07T17:05:00-00:00", datetime(2024, 10, 7, 17, 5, tzinfo=UTC)),
        ("2024-10-07T17:05:00+00:00", datetime(2024, 10, 7, 17, 5, tzinfo=UTC)),
        ("2024-10-07T17:05:00.5Z", datetime(2024, 10, 7, 17, 5, 0, 500000, tzinfo=UTC)),
        ("2024-10-07T17:05:00.123Z", datetime(2024, 10, 7, 17, 5, 0, 123000, tzinfo=UTC)),
        ("2024-10-07T17:05:00.123456Z", datetime(2024, 10, 7, 17, 5, 0, 123456, tzinfo=UTC)),
        # more than 6 fraction digits (e.g. .NET's 7, Go's 9): cut to microseconds
        ("2024-10-07T17:05:00.1234567Z", datetime(2024, 10, 7, 17, 5, 0, 123456, tzinfo=UTC)),
        (
            "2024-10-07T17:05:00.123456789+02:00",
            datetime(2024, 10, 7, 17, 5, 0, 123456, tzinfo=PLUS_2),
        ),
        (
            "2024-10-07T17:05:00." + "9" * 30 + "Z",
            datetime(2024, 10, 7, 17, 5, 0, 999999, tzinfo=UTC),
        ),
        # no offset: read as UTC (documented)
        ("2024-10-07T17:05:00", datetime(2024, 10, 7, 17, 5, tzinfo=UTC)),
        ("2024-10-07T17:05:00.25", datetime(2024, 10, 7, 17, 5, 0, 250000, tzinfo=UTC)),
        # a leap second
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        (" 2024-10-07T17:05:00Z\n", datetime(2024, 10, 7, 17, 5, tzinfo=UTC)),
    ],
)
def test_parse_rfc3339(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-10-07",  # a date only
        "17:05:00Z",  # a time only
        "2024-10-07T17:05Z",  # no seconds
        "20241007T170500Z",  # ISO 8601 basic format
        "2024-10-07T17:05:00+0200",  # offset without a colon
        "2024-10-07T17:05:00+02",
        "2024-10-07T17:05:00,5Z",  # a comma fraction
        "2024-10-07T17:05:00.Z",
        "2024-10-07T17:05:00 Z",
        "2024-10-07X17:05:00Z",
        "2024-13-07T17:05:00Z",
        "2024-02-30T17:05:00Z",
        "2024-10-07T24:00:00Z",
        "2024-10-07T17:61:00Z",
        "0000-10-07T17:05:00Z",
        "2024-10-07T17:05:00+24:00",
        "2024-10-07T17:05:00+02:60",
        "\uff12\uff10\uff12\uff14-10-07T17:05:00Z",  # full-width digits
        "1728320700",
        "yesterday",
    ],
)
def test_parse_rfc3339_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 30)),
    st.integers(-1439, 1439) | st.none(),
    st.integers(0, 12),
    st.booleans(),
)
def test_fuzz_parse_rfc3339_round_trip(
    moment: datetime, minutes: int | None, digits: int, lower: bool
) -> None:
    zone = "Z"
    tz = UTC
    if minutes is not None:
        sign = "-" if minutes < 0 else "+"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        tz = timezone(timedelta(minutes=minutes))
    micro = f"{moment.microsecond:06d}"
    fraction = f".{(micro + '1' * 6)[:digits]}" if digits else ""
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}{fraction}{zone}"
    )
    if lower:
        text = text.lower()
    kept = int(micro[:digits].ljust(6, "0"))
    expected = moment.replace(microsecond=kept, tzinfo=tz)
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()
