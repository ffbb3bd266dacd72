"""The battery controller: the only place that writes to a battery.

Entities express intents (``async_set_power``, ``async_set_mode``); the controller validates them
against the battery's capabilities, composes the ``ControlCommand`` the backend wants, writes it
(serialised per battery), keeps it alive where the device forgets commands (FEMS API timeout) and
asks the coordinator for a refresh so the UI follows.

The command being kept applied is the *active intent*. A timed override (overrides.py) is an
active intent with an end time and/or a target state of charge and a fallback command: a timer at
the end time, and every coordinator update while a target is set, check whether it has ended; then
the fallback is written once (a failed write is retried every ``OVERRIDE_RETRY_INTERVAL``). The
fallback is what was in force when the override started: our own active intent (also when a new
override replaces a running one: the running one's fallback stays), else the mode and setpoint the
battery reports, else the policy's ``release_mode`` (FEMS: ``auto``). A write through a number or
select while an override runs ends it without reverting: the user's intent wins. Running overrides
are stored (``OverrideStore``) and resumed or ended at the next set-up.

Charge / discharge power limits (``async_set_charge_limit`` / ``async_set_discharge_limit``,
batteries with ``Capabilities.power_limits``) are part of the active intent: every later command
carries them along (a setpoint, a mode, an override and its fallback); changing one rewrites the
active command with the new limit and leaves a running override running. While a limit is set the
keepalive runs in every mode, since the device drops the limit with its command timeout too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.event import async_track_point_in_utc_time, async_track_time_interval
from homeassistant.util import dt as dt_util

from .api import (
    AuthError,
    BackendError,
    BackendKind,
    BatterySnapshot,
    Capabilities,
    CommandRejectedError,
    ControlCommand,
    ControlMode,
    NotSupportedError,
)
from .const import CONF_KEEPALIVE_INTERVAL, DOMAIN, LOGGER
from .coordinator import BatteryBridgeConfigEntry, BatteryCoordinator
from .overrides import SETPOINT_SIGN, Override, OverrideMode, override_store, target_reached

# Setpoint bounds when the backend reports none (FlexConnect), in W.
FALLBACK_POWER_LIMIT_W: Final = 10_000
# The keepalive never runs more often than this, whatever the options say.
MIN_KEEPALIVE_INTERVAL: Final = timedelta(seconds=1)
# How long to wait before writing the fallback of an ended override again after a failure.
OVERRIDE_RETRY_INTERVAL: Final = timedelta(seconds=30)


def keepalive_interval(
    command_timeout_s: float | None, option_s: float | None = None
) -> timedelta | None:
    """Return how often a command must be rewritten, or None when the device keeps it.

    Half the device's command timeout by default; the option may shorten it, never lengthen it.
    The floor ``MIN_KEEPALIVE_INTERVAL`` never lifts it above half the timeout: a FEMS set to a
    1 s API timeout would otherwise drop the setpoint just before every rewrite.
    """
    if command_timeout_s is None:
        return None
    half = timedelta(seconds=command_timeout_s / 2)
    interval = half if option_s is None else min(timedelta(seconds=option_s), half)
    return max(interval, min(MIN_KEEPALIVE_INTERVAL, half))


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
_SETPOINT_OVERRIDES: Final = dict.fromkeys(OverrideMode, ControlMode.POWER)

POLICIES: Final[dict[BackendKind, ControlPolicy]] = {
    # A FlexConnect control request carries mode and setpoint together: keep the other one.
    BackendKind.FLEXCONNECT: ControlPolicy(
        setpoint_mode=None, mode_keeps_setpoint=True, override_modes=_SETPOINT_OVERRIDES
    ),
    # A FEMS setpoint is an override of its own control: writing one means mode "power";
    # mode "auto" releases it (no setpoint). A FEMS reports no mode: without an intent of ours it
    # runs its own control, so that is what an override returns to.
    BackendKind.FEMS: ControlPolicy(
        setpoint_mode=ControlMode.POWER,
        mode_keeps_setpoint=False,
        override_modes=_SETPOINT_OVERRIDES,
        release_mode=ControlMode.AUTO,
        reported_setpoint_is_a_command=False,
    ),
    # Enode operation modes take no setpoint; nothing holds the battery idle.
    BackendKind.ENODE: ControlPolicy(
        setpoint_mode=None,
        mode_keeps_setpoint=False,
        override_modes={
            OverrideMode.CHARGE: ControlMode.IMPORT_FOCUS,
            OverrideMode.DISCHARGE: ControlMode.EXPORT_FOCUS,
        },
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveIntent:
    """The command the controller last wrote and keeps applied, and when it was requested.

    ``override``: set while the command is a timed override (its end and its fallback).
    """

    command: ControlCommand
    since: datetime
    override: Override | None = None


def power_limits(capabilities: Capabilities) -> tuple[int, int]:
    """Return the setpoint bounds in W (+ = discharge), with a fallback where none is reported."""
    low = capabilities.min_power_w
    high = capabilities.max_power_w
    return (
        -FALLBACK_POWER_LIMIT_W if low is None else low,
        FALLBACK_POWER_LIMIT_W if high is None else high,
    )


def limit_bounds(capabilities: Capabilities) -> tuple[int, int]:
    """Return the largest charge and discharge limits in W (magnitudes; the setpoint bounds)."""
    low, high = power_limits(capabilities)
    return max(0, -low), max(0, high)


def settable_modes(capabilities: Capabilities) -> list[ControlMode]:
    """Return the modes that can be set, in the backend's order."""
    return [mode for mode in capabilities.modes if mode is not ControlMode.UNKNOWN]


class BatteryController:
    """Write intents to one battery; keep a setpoint or limit alive where the device forgets it."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: BatteryBridgeConfigEntry,
        coordinator: BatteryCoordinator,
    ) -> None:
        """Set up the controller of the battery ``coordinator`` polls. Nothing is written here."""
        self.hass = hass
        self.entry = entry
        self.coordinator = coordinator
        self.policy = POLICIES[coordinator.kind]
        self._lock = asyncio.Lock()
        self._active: ActiveIntent | None = None
        self._cancel_keepalive: CALLBACK_TYPE | None = None
        self._keepalive_failing = False
        self._stopped = False
        self._cancel_override_timer: CALLBACK_TYPE | None = None
        self._cancel_soc_listener: CALLBACK_TYPE | None = None

    @property
    def active(self) -> ActiveIntent | None:
        """Return the intent last written by this controller, if any."""
        return self._active

    @property
    def override(self) -> Override | None:
        """Return the running override, if any."""
        return None if self._active is None else self._active.override

    @property
    def keepalive_active(self) -> bool:
        """Return True while the active command is being rewritten at the keepalive interval."""
        return self._cancel_keepalive is not None

    @property
    def _snapshot(self) -> BatterySnapshot:
        return self.coordinator.data

    def current_mode(self) -> ControlMode | None:
        """Return the mode in force (see ``_in_force``)."""
        control = self._snapshot.control
        return self._in_force(
            control.desired.mode if control.desired else None,
            self._active.command.mode if self._active else None,
            control.current.mode if control.current else None,
        )

    def current_setpoint(self, *, reported: bool = True) -> int | None:
        """Return the setpoint in force (see ``_in_force``); ``reported=False``: only commanded ones."""
        control = self._snapshot.control
        return self._in_force(
            control.desired.setpoint_w if control.desired else None,
            self._active.command.setpoint_w if self._active else None,
            control.current.setpoint_w if control.current and reported else None,
        )

    def displayed_mode(self) -> ControlMode | None:
        """Return the mode the battery is in: the one it reports (confirmed), else the one in force.

        A battery that reports no mode (FEMS) runs in the policy's ``release_mode`` while nothing
        of ours is in force. Requested but unconfirmed modes are not shown here (see ``pending``).
        """
        control = self._snapshot.control
        if control.current is not None and control.current.mode is not None:
            return control.current.mode
        mode = self.current_mode()
        release = self.policy.release_mode
        if mode is None and release is not None and release in self._snapshot.capabilities.modes:
            return release
        return mode

    def commanded_setpoint(self) -> int | None:
        """Return the commanded setpoint in force while the mode in force takes one, else None.

        Reported setpoints count only where they are commands (``reported_setpoint_is_a_command``),
        so the power a FEMS's own control applies now is never shown as ours.
        """
        mode = self.current_mode()
        if mode is not None and mode not in self._snapshot.capabilities.setpoint_modes:
            return None
        return self.current_setpoint(reported=self.policy.reported_setpoint_is_a_command)

    def _in_force[T](self, requested: T | None, ours: T | None, reported: T | None) -> T | None:
        """Pick what a new command builds on.

        What the backend says was requested last (it may come from another app), unless our own
        intent is newer than the poll behind the data or the backend reports no request (FEMS);
        else what the device reports it is doing.
        """
        if ours is not None and (requested is None or self._intent_is_newer()):
            return ours
        return requested if requested is not None else reported

    def _intent_is_newer(self) -> bool:
        """Return True when our intent was written after the poll behind the current data began."""
        fetched = self.coordinator.fetch_started_at
        return self._active is not None and (fetched is None or self._active.since >= fetched)

    async def async_set_power(self, watts: float) -> None:
        """Set a power setpoint in W (+ = discharge, - = charge)."""
        capabilities = self._snapshot.capabilities
        if not capabilities.setpoint_modes:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="setpoint_not_supported"
            )
        value = self._checked_setpoint(watts)

        def compose() -> tuple[ControlCommand, Override | None]:
            mode = self.policy.setpoint_mode or self.current_mode()
            if mode is None or mode not in capabilities.modes:
                mode = next(
                    (m for m in capabilities.modes if m in capabilities.setpoint_modes),
                    min(capabilities.setpoint_modes),
                )
            return self._with_limits(ControlCommand(mode=mode, setpoint_w=value)), None

        await self._async_write(compose)

    def _checked_setpoint(self, watts: float) -> int:
        """Return the setpoint rounded to W; refuse one outside the battery's bounds."""
        low, high = power_limits(self._snapshot.capabilities)
        value = round(watts)
        if not low <= value <= high:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="setpoint_out_of_range",
                translation_placeholders={"value": str(value), "min": str(low), "max": str(high)},
            )
        return value

    async def async_set_mode(self, mode: str) -> None:
        """Set a control or operation mode (a ``ControlMode`` value)."""
        capabilities = self._snapshot.capabilities
        offered = settable_modes(capabilities)
        if mode not in offered:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="mode_not_supported",
                translation_placeholders={"mode": mode, "modes": ", ".join(offered) or "-"},
            )
        new_mode = ControlMode(mode)
        await self._async_write(lambda: (self._with_limits(self._command_for_mode(new_mode)), None))

    def current_limits(self) -> tuple[int | None, int | None]:
        """Return the charge and discharge limits of our intent in W (``None``: no limit)."""
        if self._active is None:
            return None, None
        command = self._active.command
        return command.charge_limit_w, command.discharge_limit_w

    def _with_limits(self, command: ControlCommand) -> ControlCommand:
        """Return ``command`` with the limits of our intent (they outlive every command)."""
        charge, discharge = self.current_limits()
        return replace(command, charge_limit_w=charge, discharge_limit_w=discharge)

    async def async_set_charge_limit(self, watts: float | None) -> None:
        """Limit the charge power to ``watts`` (a magnitude, W); ``None`` releases the limit."""
        await self._async_set_limit(watts, charge=True)

    async def async_set_discharge_limit(self, watts: float | None) -> None:
        """Limit the discharge power to ``watts`` (a magnitude, W); ``None`` releases the limit."""
        await self._async_set_limit(watts, charge=False)

    async def _async_set_limit(self, watts: float | None, *, charge: bool) -> None:
        """Write the active command (else the mode in force) with one limit changed.

        A running override keeps running: its command and its fallback get the new limit.
        """
        capabilities = self._snapshot.capabilities
        battery = self.coordinator.battery_name
        if not capabilities.power_limits:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="power_limits_not_supported",
                translation_placeholders={"battery": battery},
            )
        value: int | None = None
        if watts is not None:
            high = limit_bounds(capabilities)[0 if charge else 1]
            value = round(watts)
            if not 0 <= value <= high:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="power_limit_out_of_range",
                    translation_placeholders={"value": str(value), "max": str(high)},
                )

        def changed(command: ControlCommand) -> ControlCommand:
            if charge:
                return replace(command, charge_limit_w=value)
            return replace(command, discharge_limit_w=value)

        def compose() -> tuple[ControlCommand, Override | None]:
            command = changed(self._fallback())
            running = self.override
            if running is None:
                return command, None
            return command, replace(running, command=command, fallback=changed(running.fallback))

        await self._async_write(compose)

    def _command_for_mode(self, mode: ControlMode) -> ControlCommand:
        """Return the command that switches to ``mode``, with the setpoint the policy carries."""
        setpoint: int | None = None
        if mode in self._snapshot.capabilities.setpoint_modes:
            setpoint = self.current_setpoint(reported=self.policy.reported_setpoint_is_a_command)
            if setpoint is None:
                setpoint = 0
        elif self.policy.mode_keeps_setpoint:
            setpoint = self.current_setpoint()
        return ControlCommand(mode=mode, setpoint_w=setpoint)

    async def _async_write(
        self, compose: Callable[[], tuple[ControlCommand, Override | None]]
    ) -> None:
        """Compose and write a command, make it the active intent, update keepalive, refresh.

        The command is composed under the lock, so it builds on the write before it. A command
        without an override ends a running override without reverting (the user's intent wins).
        """
        async with self._lock:
            command, override = compose()
            await self._async_apply(command)
            await self._async_set_active(command, override)
        await self._async_written()

    async def _async_written(self) -> None:
        # Entities that show the active intent (a FEMS reports no requested setpoint) re-render
        # now; the refresh then shows what the backend says.
        self.coordinator.async_update_listeners()
        await self.coordinator.async_request_refresh()

    async def _async_set_active(self, command: ControlCommand, override: Override | None) -> None:
        """Make a written command the active intent (under the lock); track and store overrides."""
        had_override = self.override is not None
        self._active = ActiveIntent(command=command, since=dt_util.utcnow(), override=override)
        self._keepalive_failing = False
        self._async_update_keepalive()
        self._async_track_override()
        store = override_store(self.hass)
        entry_id, subentry_id = self.entry.entry_id, self.coordinator.subentry.subentry_id
        if override is not None:
            await store.async_set(entry_id, subentry_id, override)
        elif had_override:
            await store.async_delete(entry_id, subentry_id)

    # Timed overrides

    async def async_start_override(
        self,
        mode: OverrideMode,
        *,
        power_w: float | None = None,
        duration: timedelta | None = None,
        until_soc: float | None = None,
    ) -> None:
        """Start an override until ``now + duration`` or ``until_soc`` (whichever comes first).

        A running override is replaced; its fallback stays the one to return to. A zero duration
        counts as none.
        """
        capabilities = self._snapshot.capabilities
        battery = {"battery": self.coordinator.battery_name}
        if not settable_modes(capabilities):
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="override_read_only",
                translation_placeholders=battery,
            )
        target = self.policy.override_modes.get(mode)
        if target is None or target not in capabilities.modes:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="override_not_supported",
                translation_placeholders={**battery, "mode": mode},
            )
        if not duration and until_soc is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="override_needs_end"
            )
        if mode is OverrideMode.HOLD and until_soc is not None:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="override_hold_until_soc"
            )
        setpoint: int | None = None
        if target in capabilities.setpoint_modes:
            if mode is not OverrideMode.HOLD and power_w is None:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="override_power_required",
                    translation_placeholders={"mode": mode},
                )
            setpoint = self._checked_setpoint(SETPOINT_SIGN[mode] * (power_w or 0))
        command = ControlCommand(mode=target, setpoint_w=setpoint)
        soc = self._snapshot.state.state_of_charge
        if soc is not None and until_soc is not None and target_reached(mode, soc, until_soc):
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="override_soc_reached",
                translation_placeholders={"soc": f"{soc:g}", "until_soc": f"{until_soc:g}"},
            )

        def compose() -> tuple[ControlCommand, Override | None]:
            running = self.override
            now = dt_util.utcnow()
            override = Override(
                mode=mode,
                power_w=None if setpoint is None else abs(setpoint),
                command=self._with_limits(command),
                fallback=running.fallback if running is not None else self._fallback(),
                started_at=now,
                ends_at=now + duration if duration else None,
                until_soc=until_soc,
            )
            return override.command, override

        await self._async_write(compose)

    def _fallback(self) -> ControlCommand:
        """Return what an override returns to: our intent, else the battery's mode, else release."""
        if self._active is not None:
            return self._active.command
        mode = self.current_mode()
        if mode is None or mode not in self._snapshot.capabilities.modes:
            mode = self.policy.release_mode
        if mode is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="override_no_fallback",
                translation_placeholders={"battery": self.coordinator.battery_name},
            )
        return self._command_for_mode(mode)

    async def async_stop_override(self) -> None:
        """End the running override now and write its fallback; without one nothing happens."""
        await self._async_end_override(retry=False)

    async def async_restore_override(self, override: Override) -> None:
        """Take up an override stored before a restart.

        One that ended meanwhile (end time passed, target reached in the first poll) gets its
        fallback written once; one still running resumes its timers (and a FEMS keepalive, whose
        first rewrite is at its first tick). Nothing else is written.
        """
        self._active = ActiveIntent(
            command=override.command, since=override.started_at, override=override
        )
        if override.ended(dt_util.utcnow(), self._snapshot.state.state_of_charge):
            await self._async_end_override(retry=True)
            return
        self._async_update_keepalive()
        self._async_track_override()

    async def _async_end_override(self, *, retry: bool, only: Override | None = None) -> None:
        """Write the running override's fallback and make it the active intent.

        ``retry``: a failure is logged and the write retried after ``OVERRIDE_RETRY_INTERVAL``
        (timers); else it is raised (the stop action). ``only``: end it only if it is still this
        override (a timer or poll that saw its end must not end a newer one that replaced it).
        """
        async with self._lock:
            override = self.override
            if override is None or (only is not None and override is not only):
                return
            try:
                await self._async_apply(override.fallback)
            except HomeAssistantError as err:
                if not retry:
                    raise
                LOGGER.warning(
                    "Could not end the override of %s, retrying in %s: %s",
                    self.coordinator.name,
                    OVERRIDE_RETRY_INTERVAL,
                    err,
                )
                self._async_schedule_end(override, dt_util.utcnow() + OVERRIDE_RETRY_INTERVAL)
                return
            LOGGER.debug("Override of %s ended", self.coordinator.name)
            await self._async_set_active(override.fallback, None)
        await self._async_written()

    @callback
    def _async_track_override(self) -> None:
        """Watch the running override's end (time and state of charge); none: stop watching."""
        self._async_cancel_override_tracking()
        override = self.override
        if override is None or self._stopped:
            return
        if override.ends_at is not None:
            self._async_schedule_end(override, override.ends_at)
        if override.until_soc is not None:
            self._cancel_soc_listener = self.coordinator.async_add_listener(self._async_check_soc)

    @callback
    def _async_schedule_end(self, override: Override, when: datetime) -> None:
        """End ``override`` at ``when`` (its end time, or a retry after a failed end)."""
        if self._cancel_override_timer is not None:
            self._cancel_override_timer()

        async def _async_due(_now: datetime) -> None:
            self._cancel_override_timer = None
            await self._async_end_override(retry=True, only=override)

        self._cancel_override_timer = async_track_point_in_utc_time(self.hass, _async_due, when)

    @callback
    def _async_check_soc(self) -> None:
        """End the override when a poll shows its target state of charge."""
        override = self.override
        if override is not None and override.soc_reached(self._snapshot.state.state_of_charge):
            self.entry.async_create_task(
                self.hass,
                self._async_end_override(retry=True, only=override),
                f"{DOMAIN} end override {self.coordinator.name}",
            )

    @callback
    def _async_cancel_override_tracking(self) -> None:
        for cancel in (self._cancel_override_timer, self._cancel_soc_listener):
            if cancel is not None:
                cancel()
        self._cancel_override_timer = None
        self._cancel_soc_listener = None

    async def _async_apply(self, command: ControlCommand) -> None:
        """Call the backend; map its errors to translated Home Assistant errors."""
        coordinator = self.coordinator
        LOGGER.debug("Writing %s to %s", command, coordinator.name)
        placeholders = {"battery": coordinator.battery_name}
        try:
            await coordinator.backend.async_apply(coordinator.battery_id, command)
        except NotSupportedError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_not_supported",
                translation_placeholders={**placeholders, "error": str(err)},
            ) from err
        except CommandRejectedError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_rejected",
                translation_placeholders={**placeholders, "error": str(err)},
            ) from err
        except AuthError as err:
            self.entry.async_start_reauth(self.hass)
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="authentication_failed",
                translation_placeholders={"error": str(err)},
            ) from err
        except BackendError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="communication_error",
                translation_placeholders={**placeholders, "error": str(err)},
            ) from err

    # Keepalive

    def keepalive_interval(self) -> timedelta | None:
        """Return how often the active command must be rewritten, or None when it persists.

        See ``keepalive_interval`` (the module function) for the rule.
        """
        return keepalive_interval(
            self._snapshot.capabilities.command_timeout_s,
            self.entry.options.get(CONF_KEEPALIVE_INTERVAL),
        )

    def _needs_keepalive(self) -> bool:
        """Return True while the active command has a setpoint mode or a limit the device drops."""
        if self._active is None or self._stopped:
            return False
        capabilities = self._snapshot.capabilities
        command = self._active.command
        return capabilities.command_timeout_s is not None and (
            command.mode in capabilities.setpoint_modes
            or command.charge_limit_w is not None
            or command.discharge_limit_w is not None
        )

    @callback
    def _async_update_keepalive(self) -> None:
        """Start (or restart from now) the keepalive if the active command needs it, else stop it."""
        self._async_cancel_keepalive()
        interval = self.keepalive_interval()
        if interval is None or not self._needs_keepalive():
            return
        LOGGER.debug("Keeping %s alive every %s", self.coordinator.name, interval)
        self._cancel_keepalive = async_track_time_interval(
            self.hass,
            self._async_keepalive,
            interval,
            name=f"{DOMAIN} keepalive {self.coordinator.name}",
            cancel_on_shutdown=True,
        )

    @callback
    def _async_cancel_keepalive(self) -> None:
        if self._cancel_keepalive is not None:
            self._cancel_keepalive()
            self._cancel_keepalive = None

    async def _async_keepalive(self, _now: datetime) -> None:
        """Rewrite the active command; on failure log once and retry at the next tick."""
        async with self._lock:
            active = self._active
            if active is None or not self._needs_keepalive():
                self._async_cancel_keepalive()
                return
            try:
                await self.coordinator.backend.async_apply(
                    self.coordinator.battery_id, active.command
                )
            except BackendError as err:
                if not self._keepalive_failing:
                    self._keepalive_failing = True
                    LOGGER.warning(
                        "Keepalive of %s failed, retrying every %s: %s",
                        self.coordinator.name,
                        self.keepalive_interval(),
                        err,
                    )
                return
            if self._keepalive_failing:
                self._keepalive_failing = False
                LOGGER.info("Keepalive of %s works again", self.coordinator.name)

    @callback
    def async_stop(self) -> None:
        """Stop writing (entry unload, Home Assistant stop); a FEMS then releases after its timeout."""
        self._stopped = True
        self._async_cancel_keepalive()
        self._async_cancel_override_tracking()
