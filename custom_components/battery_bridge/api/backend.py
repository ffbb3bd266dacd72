"""The Backend protocol every client implements, and the registry of backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from .models import BackendKind, BatteryInfo, BatterySnapshot, ControlCommand


class Backend(Protocol):
    """One account / device / client of one backend, serving one or more batteries.

    Implementations take an injected ``aiohttp.ClientSession`` and their endpoint settings in
    ``__init__``; they never close the session. Every method raises only ``BackendError``
    subclasses (see ``errors.py``).
    """

    kind: ClassVar[BackendKind]

    async def async_validate(self) -> None:
        """Check that the backend answers and accepts the credentials."""

    async def async_list_batteries(self) -> list[BatteryInfo]:
        """Return the batteries this backend serves."""

    async def async_get_snapshot(self, battery_id: str) -> BatterySnapshot:
        """Poll state and control of one battery (one poll; as few requests as the API allows)."""

    async def async_apply(self, battery_id: str, command: ControlCommand) -> None:
        """Write a command: a mode and, where the mode takes one, a setpoint (W, + = discharge).

        Raises ``NotSupportedError`` for a mode the battery cannot take, ``CommandRejectedError`` when the
        backend refuses it. Rewriting the same command is harmless (FEMS keepalive relies on it).
        """
