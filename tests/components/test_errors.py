"""Tests of the one error table (errors.py): flow keys, poll errors, command errors."""

from __future__ import annotations

import json
from pathlib import Path

from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers.update_coordinator import UpdateFailed
import pytest

from custom_components.battery_bridge.api import (
    AuthError,
    BackendError,
    CannotConnectError,
    CommandRejectedError,
    NotSupportedError,
    ProtocolError,
    RateLimitedError,
    UnknownBatteryError,
)
from custom_components.battery_bridge.errors import (
    ERROR_KEYS,
    command_error,
    error_keys,
    flow_error,
    poll_error,
)


class _OddProtocolError(ProtocolError):
    """A subclass the table does not list: it takes its nearest listed class's row."""


@pytest.mark.parametrize(
    ("error", "flow"),
    [
        (AuthError("no"), "invalid_auth"),
        (CannotConnectError("down"), "cannot_connect"),
        (RateLimitedError("slow down", 30), "cannot_connect"),
        (ProtocolError("html"), "invalid_response"),
        (_OddProtocolError("odd"), "invalid_response"),
        (UnknownBatteryError("ess9"), "unknown_battery"),
        (NotSupportedError("no REST API here"), "not_supported"),
        (CommandRejectedError("no"), "unknown"),
        (BackendError("?"), "unknown"),
    ],
)
def test_flow_error(error: BackendError, flow: str) -> None:
    """Each error class has its config flow error key."""
    assert flow_error(error) == flow


def test_every_key_translated() -> None:
    """Every key of the table is a flow error or an exception of strings.json."""
    strings = json.loads(
        (Path(__file__).parents[2] / "custom_components/battery_bridge/strings.json").read_text()
    )
    for keys in ERROR_KEYS.values():
        assert keys.flow in strings["config"]["error"]
        assert keys.poll in strings["exceptions"]
        assert keys.command in strings["exceptions"]


@pytest.mark.parametrize(
    ("error", "key", "placeholders"),
    [
        (AuthError("bad password"), "authentication_failed", {"error": "bad password"}),
        (UnknownBatteryError("ess9"), "unknown_battery", {"battery": "Garage"}),
        (RateLimitedError("slow down", 30), "rate_limited", {"battery": "Garage"}),
        (CannotConnectError("down"), "update_failed", {"battery": "Garage", "error": "down"}),
        (CommandRejectedError("no"), "update_failed", {"battery": "Garage", "error": "no"}),
    ],
)
def test_poll_error(error: BackendError, key: str, placeholders: dict[str, str]) -> None:
    """A failed poll: re-authentication for rejected credentials, else UpdateFailed."""
    raised = poll_error(error, "Garage")
    assert isinstance(
        raised, ConfigEntryAuthFailed if isinstance(error, AuthError) else UpdateFailed
    )
    assert raised.translation_key == key
    assert raised.translation_placeholders == placeholders
    if isinstance(raised, UpdateFailed):
        assert raised.retry_after == (30 if isinstance(error, RateLimitedError) else None)


@pytest.mark.parametrize(
    ("error", "key"),
    [
        (AuthError("bad password"), "authentication_failed"),
        (UnknownBatteryError("ess9"), "command_not_supported"),
        (NotSupportedError("no"), "command_not_supported"),
        (CommandRejectedError("no"), "command_rejected"),
        (RateLimitedError("slow down"), "communication_error"),
        (ProtocolError("html"), "communication_error"),
    ],
)
def test_command_error(error: BackendError, key: str) -> None:
    """A failed write is a translated HomeAssistantError naming the battery and the error."""
    raised = command_error(error, "Garage")
    assert type(raised) is HomeAssistantError
    assert raised.translation_key == key
    expected = {"error": str(error)}
    if key != "authentication_failed":
        expected["battery"] = "Garage"
    assert raised.translation_placeholders == expected
    assert error_keys(error).command == key
