"""The one table from client-layer errors to translation keys (config flow, polls, commands).

Each ``BackendError`` class has a flow error key (``config.error``), a poll key and a command key
(``exceptions``); an error takes the row of its nearest class in the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers.update_coordinator import UpdateFailed

from .api import (
    AuthError,
    BackendError,
    CannotConnectError,
    CommandRejectedError,
    NotSupportedError,
    ProtocolError,
    RateLimitedError,
    UnknownBatteryError,
)
from .const import DOMAIN


@dataclass(frozen=True, slots=True)
class ErrorKeys:
    """The translation keys of one error class where it can surface."""

    flow: str
    """The config flow's form error (``unknown_battery`` takes the placeholder ``battery_id``;
    ``unknown`` is an unexpected error, worth a traceback in the log)."""
    poll: str
    """The coordinator's error while reading a battery."""
    command: str
    """The controller's error while writing to a battery."""


ERROR_KEYS: Final[dict[type[BackendError], ErrorKeys]] = {
    AuthError: ErrorKeys("invalid_auth", "authentication_failed", "authentication_failed"),
    UnknownBatteryError: ErrorKeys("unknown_battery", "unknown_battery", "command_not_supported"),
    NotSupportedError: ErrorKeys("not_supported", "update_failed", "command_not_supported"),
    CommandRejectedError: ErrorKeys("unknown", "update_failed", "command_rejected"),
    RateLimitedError: ErrorKeys("cannot_connect", "rate_limited", "communication_error"),
    CannotConnectError: ErrorKeys("cannot_connect", "update_failed", "communication_error"),
    ProtocolError: ErrorKeys("invalid_response", "update_failed", "communication_error"),
    BackendError: ErrorKeys("unknown", "update_failed", "communication_error"),
}

# The placeholders of the exception messages that do not name both the battery and the error.
_PLACEHOLDERS: Final[dict[str, tuple[str, ...]]] = {
    "authentication_failed": ("error",),
    "unknown_battery": ("battery",),
    "rate_limited": ("battery",),
}


def error_keys(err: BackendError) -> ErrorKeys:
    """Return the row of the nearest class of ``err`` in ``ERROR_KEYS``."""
    return next(ERROR_KEYS[cls] for cls in type(err).__mro__ if cls in ERROR_KEYS)


def flow_error(err: BackendError) -> str:
    """Return the config flow's error key for ``err``."""
    return error_keys(err).flow


def _placeholders(key: str, err: BackendError, battery: str) -> dict[str, str]:
    values = {"battery": battery, "error": str(err)}
    return {name: values[name] for name in _PLACEHOLDERS.get(key, ("battery", "error"))}


def poll_error(err: BackendError, battery: str) -> ConfigEntryAuthFailed | UpdateFailed:
    """Return the translated error of a failed poll of ``battery`` (its name in messages).

    Rejected credentials raise ``ConfigEntryAuthFailed`` (Home Assistant starts the
    re-authentication); a rate limit passes on how long the backend asked to wait.
    """
    key = error_keys(err).poll
    placeholders = _placeholders(key, err, battery)
    if isinstance(err, AuthError):
        return ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders=placeholders,
        )
    return UpdateFailed(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders,
        retry_after=err.retry_after if isinstance(err, RateLimitedError) else None,
    )


def command_error(err: BackendError, battery: str) -> HomeAssistantError:
    """Return the translated error of a failed write to ``battery`` (its name in messages)."""
    key = error_keys(err).command
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=_placeholders(key, err, battery),
    )
