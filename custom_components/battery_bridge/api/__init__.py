"""Battery Bridge client layer: pure asyncio, typed, no Home Assistant imports."""

from __future__ import annotations

from .backend import Backend
from .errors import (
    AuthError,
    BackendError,
    CannotConnectError,
    CommandRejectedError,
    NotSupportedError,
    ProtocolError,
    RateLimitedError,
    UnknownBatteryError,
)
from .models import (
    BackendKind,
    BatteryInfo,
    BatterySnapshot,
    BatteryState,
    Capabilities,
    ChargeStatus,
    CommandStatus,
    ControlCommand,
    ControlInstruction,
    ControlMode,
    ControlState,
    ControlStatus,
    GridMode,
    OperationState,
    SystemState,
)

__all__ = [
    "AuthError",
    "Backend",
    "BackendError",
    "BackendKind",
    "BatteryInfo",
    "BatterySnapshot",
    "BatteryState",
    "CannotConnectError",
    "Capabilities",
    "ChargeStatus",
    "CommandRejectedError",
    "CommandStatus",
    "ControlCommand",
    "ControlInstruction",
    "ControlMode",
    "ControlState",
    "ControlStatus",
    "GridMode",
    "NotSupportedError",
    "OperationState",
    "ProtocolError",
    "RateLimitedError",
    "SystemState",
    "UnknownBatteryError",
]
