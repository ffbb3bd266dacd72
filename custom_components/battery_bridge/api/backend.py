"""The Backend protocol every client implements, and the spec that describes a backend.

A ``BackendSpec`` (one per backend module, as ``SPEC``; the registry is ``registry.py``) is data
for the integration: how to build the client from plain settings, which settings the user enters,
how an entry is named, how often to poll, how commands combine. No Home Assistant imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, runtime_checkable

from .models import ControlMode

if TYPE_CHECKING:
    import aiohttp

    from .models import BackendKind, BatteryInfo, BatterySnapshot, ControlCommand

# Setting keys several backends share (the same strings as Home Assistant's CONF_HOST, ...).
SETTING_HOST: Final = "host"
SETTING_PORT: Final = "port"
SETTING_PASSWORD: Final = "password"  # noqa: S105 - a key name
SETTING_CAN_WRITE: Final = "can_write"
"""Where the answer of ``WriteProbe.async_probe_write`` is kept (the factory reads it)."""


class Backend(Protocol):
    """One account / device / client of one backend, serving one or more batteries.

    Implementations take an injected ``aiohttp.ClientSession`` and their endpoint settings in
    ``__init__``; they never close the session. Every method raises only ``BackendError``
    subclasses (see ``errors.py``). Optional extras are protocols of their own (``WriteProbe``),
    which the integration looks for on the instance.
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


@runtime_checkable
class WriteProbe(Protocol):
    """Optional: a backend that can find out at set-up whether its settings allow writing."""

    async def async_probe_write(self) -> bool:
        """Return True when commands would be accepted; changes nothing on the battery."""


@runtime_checkable
class CommandResume(Protocol):
    """Optional: a backend whose commands outlive a poll (Enode Actions) and can be found again.

    Home Assistant keeps the last ``ControlStatus.command_id`` of each battery across a restart
    and hands it back here before the first poll, so that the command's state is not lost.
    """

    def resume_command(self, battery_id: str, command_id: str) -> None:
        """Track again the command an earlier run created; the next snapshot reads its state."""


class OverrideMode(StrEnum):
    """What a timed override makes the battery do."""

    CHARGE = "charge"
    DISCHARGE = "discharge"
    HOLD = "hold"


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlPolicy:
    """How a backend combines modes and setpoints into one command."""

    setpoint_mode: ControlMode | None
    """The mode a new setpoint switches to; ``None``: the setpoint is written with the current mode."""
    mode_keeps_setpoint: bool
    """Whether a mode without a setpoint still carries the current setpoint along."""
    override_modes: Mapping[OverrideMode, ControlMode]
    """The mode each override writes (with ``SETPOINT_SIGN`` x power where the mode takes a
    setpoint); an override that is missing is not supported."""
    release_mode: ControlMode | None = None
    """The fallback of an override when nothing of ours is in force and the battery reports no mode."""
    reported_setpoint_is_a_command: bool = True
    """Whether the setpoint the battery reports was commanded (FlexConnect: its current instruction)
    or is only what its own control applies now (FEMS): switching to a setpoint mode carries the
    former along and starts the latter at 0 W, so a momentary value (say -5 kW while the sun
    shines) is not frozen into a command."""


# Setpoint backends: charge / discharge / hold are power mode at -P / +P / 0 W.
SETPOINT_OVERRIDES: Final[Mapping[OverrideMode, ControlMode]] = dict.fromkeys(
    OverrideMode, ControlMode.POWER
)


class FieldType(StrEnum):
    """The kind of value a config field holds (the integration picks the form widget)."""

    TEXT = "text"  # stripped
    HOST = "host"  # stripped; named in messages about the entry
    PORT = "port"  # an integer 1..65535
    PASSWORD = "password"  # noqa: S105 - a type name; taken as typed
    URL = "url"  # optional http(s) URL, stripped, without a trailing slash
    CHOICE = "choice"  # one of ``ConfigField.choices``


@dataclass(frozen=True, slots=True)
class ConfigField:
    """One setting the user enters; stored in the config entry data under ``key``."""

    key: str
    type: FieldType = FieldType.TEXT
    default: str | int | None = None
    """Used when the field is left empty."""
    required: bool = True
    secret: bool = False
    """The credential: asked again by re-authentication, never suggested in a form."""
    advanced: bool = False
    """Shown in a collapsed section of advanced settings."""
    reconfigurable: bool = True
    """Offered by reconfiguration (else fixed for the life of the entry)."""
    choices: tuple[str, ...] = ()


type Settings = Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendSpec:
    """Everything the integration needs to know about one backend."""

    kind: str
    create: Callable[[Settings, aiohttp.ClientSession], Backend]
    """Build the client from settings (the config entry data) and the shared session; no I/O."""
    fields: tuple[ConfigField, ...]
    unique_id: Callable[[Settings], str]
    """The config entry's unique id: the same backend cannot be added twice."""
    title: Callable[[Settings], str]
    """The config entry's default title."""
    poll_interval: timedelta
    min_poll_interval: timedelta
    pending_poll_interval: timedelta | None = None
    """How often to poll while a command is pending (``None``: commands apply at once)."""
    control_policy: ControlPolicy
    lists_batteries: bool = False
    """The backend lists its batteries (the user picks; new ones are added by themselves)."""
    battery_id_setting: str | None = None
    """The setting that names the entry's only battery; ``None``: batteries are listed or typed."""
    battery_ids_unique: bool = True
    """Battery ids are unique across entries (else they are prefixed by the entry id)."""
    normalize_battery_id: Callable[[str], str] = str.strip
    """A typed battery id as stored (so one battery cannot be added in two spellings)."""
    commands_expire: bool = False
    """Written commands lapse unless rewritten (a keepalive interval can be set)."""
    redact: frozenset[str] = frozenset()
    """Keys of settings and raw replies that diagnostics must not show."""

    @property
    def secret(self) -> ConfigField | None:
        """Return the credential field, if the backend has one."""
        return next((field for field in self.fields if field.secret), None)
