"""One error taxonomy for every backend.

Messages are for logs and for the translated exceptions of the Home Assistant layer; they never
contain passwords, client secrets, tokens or Authorization headers.
"""

from __future__ import annotations


class BackendError(Exception):
    """Base class of every error raised by the client layer."""


class AuthError(BackendError):
    """The credentials were rejected (wrong password, wrong client secret, missing role)."""


class CannotConnectError(BackendError):
    """The backend could not be reached, the connection dropped or the request timed out."""


class RateLimitedError(CannotConnectError):
    """The backend asked us to slow down (HTTP 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        """Store the number of seconds the backend asked us to wait, when it said."""
        super().__init__(message)
        self.retry_after = retry_after


class ProtocolError(BackendError):
    """The reply was not what the API documents: bad JSON, HTML error page, wrong types."""


class NotSupportedError(BackendError):
    """This battery or backend does not offer the requested data or command."""


class UnknownBatteryError(NotSupportedError):
    """The backend does not know the requested battery identifier."""


class CommandRejectedError(BackendError):
    """The backend refused a command (invalid value, conflicting action, read-only access)."""
