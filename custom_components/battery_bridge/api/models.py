"""The normalised model shared by every backend.

Units: watts (W), watt-hours (Wh), percent (%). Battery power is positive when the battery
discharges and negative when it charges, whatever the backend's own convention is; each backend
module converts. A field a backend does not provide is ``None``, never a made-up 0.

What the device reports (``ControlStatus.current``) is kept apart from what was requested
(``ControlStatus.desired``); ``ControlStatus.pending`` is true while the two differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class BackendKind(StrEnum):
    """The backends Battery Bridge speaks to."""

    FLEXCONNECT = "flexconnect"
    FEMS = "fems"
    ENODE = "enode"


class ControlMode(StrEnum):
    """Speakable control / operation modes (the option keys of the select entities).

    FlexConnect: ``power`` / ``pcc`` / ``auto`` (its native controlMode 1 / 2 / 3).
    FEMS: ``auto`` (released: the FEMS runs its own self-consumption) / ``power`` (setpoint, kept alive).
    Enode: the operation modes ``self_reliance`` / ``time_of_use`` / ``import_focus`` / ``export_focus``.
    """

    AUTO = "auto"
    POWER = "power"
    PCC = "pcc"
    SELF_RELIANCE = "self_reliance"
    TIME_OF_USE = "time_of_use"
    IMPORT_FOCUS = "import_focus"
    EXPORT_FOCUS = "export_focus"
    UNKNOWN = "unknown"  # readable only (Enode UNKNOWN); never settable


class OperationState(StrEnum):
    """FlexConnect stateOfOperation 1..5."""

    NORMAL = "normal"
    STANDBY = "standby"
    NOT_READY = "not_ready"
    OFF = "off"
    FAILURE = "failure"


class ControlState(StrEnum):
    """FlexConnect controlState 1..6."""

    INIT = "init"
    POWER = "power"
    PCC = "pcc"
    AUTO_CONTROLLED = "auto_controlled"
    AUTO_UNCONTROLLED = "auto_uncontrolled"
    FAILSAFE = "failsafe"


class ChargeStatus(StrEnum):
    """Enode chargeState.status."""

    CHARGING = "charging"
    DISCHARGING = "discharging"
    IDLE = "idle"
    FAULT = "fault"
    UNKNOWN = "unknown"


class SystemState(StrEnum):
    """FEMS ``_sum/State`` level: 0 Ok, 1 Info, 2 Warning, 3 Fault."""

    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    FAULT = "fault"


class GridMode(StrEnum):
    """FEMS ``_sum/GridMode``: -1 undefined, 1 on-grid, 2 off-grid, 3 off-grid with genset."""

    UNDEFINED = "undefined"
    ON_GRID = "on_grid"
    OFF_GRID = "off_grid"
    OFF_GRID_GENSET = "off_grid_genset"


class CommandStatus(StrEnum):
    """Where the last command stands (Enode Action state; FlexConnect desired vs current)."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class BatteryInfo:
    """Static description of one battery, used for the device registry and the config flow."""

    battery_id: str
    name: str
    manufacturer: str
    model: str | None = None
    serial_number: str | None = None
    sw_version: str | None = None


class Feature(StrEnum):
    """A field of ``BatteryState`` / ``ControlStatus`` a backend reports (``Capabilities.features``)."""

    MEASURES_POWER = "measures_power"
    """``power_w``: the battery's own power."""
    STATE_OF_HEALTH = "state_of_health"
    OPERATION_STATE = "operation_state"
    """``operation_state`` and ``ControlStatus.control_state`` (FlexConnect's state machine)."""
    CHARGE_STATUS = "charge_status"
    SYSTEM_STATE = "system_state"
    """``system_state`` and ``grid_mode`` (the energy system around the battery)."""
    COMMAND_STATUS = "command_status"
    """``ControlStatus.command_status``: where the last requested command stands."""
    REACHABILITY = "reachability"
    """``reachable``: whether the backend can reach the battery."""
    RESERVE = "reserve"
    """``reserve_pct``: the state of charge kept back for outages."""
    ALLOWED_POWER = "allowed_power"
    """``max_charge_power_w`` / ``max_discharge_power_w``: how fast it may charge / discharge now."""
    ENERGY_COUNTERS = "energy_counters"
    """``energy_charged_wh`` / ``energy_discharged_wh`` from the device's meters; without them the
    integration derives the totals from changes of the stored energy."""
    SITE_METERS = "site_meters"
    """Grid, PV and house power and the grid import / export and PV energy totals."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a battery can be told and what it reports; decides which entities and options exist.

    ``modes``: the modes that can be set (empty: read-only battery or entry).
    ``setpoint_modes``: the modes in which a power setpoint applies (empty: no setpoint entity).
    ``min_power_w`` / ``max_power_w``: the setpoint bounds in W (+ = discharge): min is the largest
    charge power as a negative number, max the largest discharge power.
    ``command_timeout_s``: the device drops a written command after this many seconds unless it is
    rewritten (FEMS API timeout); ``None`` when commands persist.
    ``charge_discharge_limits``: the battery takes charge / discharge limits
    (``ControlCommand.charge_limit_w`` / ``discharge_limit_w``) in every mode.
    ``features``: what the backend reports beyond state of charge and stored energy.
    """

    modes: tuple[ControlMode, ...] = ()
    setpoint_modes: frozenset[ControlMode] = frozenset()
    min_power_w: int | None = None
    max_power_w: int | None = None
    command_timeout_s: float | None = None
    charge_discharge_limits: bool = False
    features: frozenset[Feature] = frozenset()


@dataclass(frozen=True, slots=True)
class ControlCommand:
    """An intent to write: a mode and, for modes that take one, a setpoint in W (+ = discharge).

    ``charge_limit_w`` / ``discharge_limit_w``: the largest charge / discharge power the battery
    may use, whatever the mode, as magnitudes in W (>= 0); ``None``: no limit (a limit written
    before is released). Only for batteries with ``Capabilities.charge_discharge_limits``.
    """

    mode: ControlMode
    setpoint_w: int | None = None
    charge_limit_w: int | None = None
    discharge_limit_w: int | None = None


@dataclass(frozen=True, slots=True)
class ControlInstruction:
    """A control mode and setpoint, as reported by the device or as requested."""

    mode: ControlMode | None = None
    setpoint_w: int | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class ControlStatus:
    """Reported (current) and requested (desired) control, and where the last command stands."""

    current: ControlInstruction | None = None
    desired: ControlInstruction | None = None
    control_state: ControlState | None = None
    command_status: CommandStatus | None = None
    command_id: str | None = None

    @property
    def pending(self) -> bool:
        """Return True while a requested command has not been applied yet."""
        return self.command_status is CommandStatus.PENDING


@dataclass(frozen=True, slots=True)
class BatteryState:
    """Measurements of one battery (and, for FEMS, of the site around it)."""

    state_of_charge: float | None = None  # %
    state_of_health: float | None = None  # %
    stored_energy_wh: float | None = None  # Wh
    usable_capacity_wh: float | None = None  # Wh
    power_w: float | None = None  # W, + = discharging
    operation_state: OperationState | None = None
    charge_status: ChargeStatus | None = None
    system_state: SystemState | None = None
    grid_mode: GridMode | None = None
    reserve_pct: float | None = None  # % (Enode dischargeLimit)
    max_charge_power_w: float | None = None  # W, >= 0 (how fast it may charge now)
    max_discharge_power_w: float | None = None  # W, >= 0
    grid_power_w: float | None = None  # W, + = import from the grid
    pv_power_w: float | None = None  # W, >= 0
    house_power_w: float | None = None  # W, >= 0
    energy_charged_wh: float | None = None  # Wh, cumulative (DC side)
    energy_discharged_wh: float | None = None  # Wh, cumulative (DC side)
    grid_import_energy_wh: float | None = None  # Wh, cumulative (bought from the grid)
    grid_export_energy_wh: float | None = None  # Wh, cumulative (sold to the grid)
    pv_energy_wh: float | None = None  # Wh, cumulative (produced by PV)
    reachable: bool | None = None
    last_updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class BatterySnapshot:
    """Everything one poll learns about one battery."""

    info: BatteryInfo
    state: BatteryState
    control: ControlStatus
    capabilities: Capabilities
    raw: dict[str, Any] = field(default_factory=dict)  # the replies as received, for diagnostics
