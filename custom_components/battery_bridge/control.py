"""The battery controller: the only place that writes to a battery.

Entities and actions express intents; the controller checks them against the battery's
capabilities, composes the ``ControlCommand`` the backend wants from what is in force
(``in_force``), writes it (one write at a time per battery) and asks for a refresh. The command it
keeps applied is the *active intent*; where the device forgets commands a ``Keepalive`` rewrites
it, and a timed override's end is watched by its ``OverrideLifecycle``. Charge / discharge limits
belong to the active intent: every later command carries them along.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.util import dt as dt_util

from .api import (
    AuthError,
    BackendError,
    BatterySnapshot,
    Capabilities,
    ControlCommand,
    ControlMode,
    ControlPolicy,
    OverrideMode,
)
from .api.registry import backend_spec
from .const import CONF_KEEPALIVE_INTERVAL, DOMAIN, LOGGER
from .coordinator import BatteryCoordinator
from .errors import command_error
from .keepalive import Keepalive
from .override_lifecycle import OverrideLifecycle
from .overrides import SETPOINT_SIGN, Override, target_reached

# The setpoint bounds where the backend reports none (FlexConnect), in W.
FALLBACK_SETPOINT_BOUND_W: Final = 10_000

type IntentListener = Callable[[Override | None, Override | None, object | None], None]
"""Told after each write: the override that ran before it, the one running now (or None) and
the write's owner (``None``: a user's write, or an override's own end)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveIntent:
    """The command the controller last wrote and keeps applied, and when it was requested.

    ``override``: set while the command is a timed override (its end and its fallback).
    ``owner``: who wrote it, as given to the write (the charge plan); ``None``: a user.
    """

    command: ControlCommand
    since: datetime
    override: Override | None = None
    owner: object | None = None


class Meaning(StrEnum):
    """The two meanings of "in force"."""

    REPORTED = "reported"
    """What the entities show: the mode the battery confirms (else the one in force, else the
    policy's ``release_mode``) and the commanded setpoint while the mode in force takes one."""
    BASIS = "basis"
    """What the next command builds on: what was requested last (by anyone), our own intent where
    it is newer than the data, else what the battery reports."""


@dataclass(frozen=True, slots=True)
class InForce:
    """A mode and a setpoint in force (``None``: not known, or no setpoint in this mode)."""

    mode: ControlMode | None
    setpoint_w: int | None


def in_force(
    snapshot: BatterySnapshot,
    policy: ControlPolicy,
    active: ActiveIntent | None,
    fetched_at: datetime | None,
    meaning: Meaning,
) -> InForce:
    """Return what is in force on a battery, in one of the two meanings.

    The backend's requested command wins (it may come from another app), unless our intent is
    newer than the poll that started at ``fetched_at`` or the backend reports no request (FEMS);
    else what the battery reports. A reported setpoint counts only where it was commanded
    (``reported_setpoint_is_a_command``), so the power a FEMS's own control applies now is never
    taken for ours.
    """
    control = snapshot.control
    desired, current = control.desired, control.current
    ours = None if active is None else active.command
    ours_newer = active is not None and (fetched_at is None or active.since >= fetched_at)

    def pick[T](requested: T | None, own: T | None, reported: T | None) -> T | None:
        if own is not None and (requested is None or ours_newer):
            return own
        return requested if requested is not None else reported

    mode = pick(
        desired.mode if desired else None,
        ours.mode if ours else None,
        current.mode if current else None,
    )
    setpoint = pick(
        desired.setpoint_w if desired else None,
        ours.setpoint_w if ours else None,
        current.setpoint_w if current and policy.reported_setpoint_is_a_command else None,
    )
    if meaning is Meaning.BASIS:
        return InForce(mode, setpoint)
    capabilities = snapshot.capabilities
    if mode is not None and mode not in capabilities.setpoint_modes:
        setpoint = None
    if current is not None and current.mode is not None:
        return InForce(current.mode, setpoint)
    if mode is None and policy.release_mode in capabilities.modes:
        return InForce(policy.release_mode, setpoint)
    return InForce(mode, setpoint)


def setpoint_bounds(capabilities: Capabilities) -> tuple[int, int]:
    """Return the setpoint bounds in W (+ = discharge), with a fallback where none is reported."""
    low = capabilities.min_power_w
    high = capabilities.max_power_w
    return (
        -FALLBACK_SETPOINT_BOUND_W if low is None else low,
        FALLBACK_SETPOINT_BOUND_W if high is None else high,
    )


def limit_maxima(capabilities: Capabilities) -> tuple[int, int]:
    """Return the largest charge and discharge limits in W (magnitudes of the setpoint bounds)."""
    low, high = setpoint_bounds(capabilities)
    return max(0, -low), max(0, high)


def settable_modes(capabilities: Capabilities) -> list[ControlMode]:
    """Return the modes that can be set, in the backend's order."""
    return [mode for mode in capabilities.modes if mode is not ControlMode.UNKNOWN]


def _invalid(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders or None,
    )


def _checked_power(capabilities: Capabilities, watts: float) -> int:
    """Return a setpoint rounded to W; refuse one outside the battery's setpoint bounds."""
    low, high = setpoint_bounds(capabilities)
    value = round(watts)
    if not low <= value <= high:
        raise _invalid("setpoint_out_of_range", value=str(value), min=str(low), max=str(high))
    return value


def _checked_setpoint(capabilities: Capabilities, watts: float) -> int:
    """Return a setpoint rounded to W; refuse it where the battery takes none or out of bounds."""
    if not capabilities.setpoint_modes:
        raise _invalid("setpoint_not_supported")
    return _checked_power(capabilities, watts)


def _checked_mode(capabilities: Capabilities, mode: str) -> ControlMode:
    """Return ``mode`` as a ``ControlMode``; refuse one the battery cannot set."""
    offered = settable_modes(capabilities)
    if mode not in offered:
        raise _invalid("mode_not_supported", mode=mode, modes=", ".join(offered) or "-")
    return ControlMode(mode)


def _checked_limit(
    capabilities: Capabilities, watts: float | None, battery: str, *, charge: bool
) -> int | None:
    """Return a charge or discharge limit rounded to W (``None``: release it).

    Refuse one where the battery takes no limits, or one outside 0 ... the maximum.
    """
    if not capabilities.charge_discharge_limits:
        raise _invalid("power_limits_not_supported", battery=battery)
    if watts is None:
        return None
    high = limit_maxima(capabilities)[0 if charge else 1]
    value = round(watts)
    if not 0 <= value <= high:
        raise _invalid("power_limit_out_of_range", value=str(value), max=str(high))
    return value


def _with_limit(command: ControlCommand, value: int | None, *, charge: bool) -> ControlCommand:
    """Return ``command`` with its charge (or discharge) limit set to ``value``."""
    if charge:
        return replace(command, charge_limit_w=value)
    return replace(command, discharge_limit_w=value)


def _override_command(
    snapshot: BatterySnapshot,
    policy: ControlPolicy,
    battery: str,
    mode: OverrideMode,
    power_w: float | None,
    *,
    duration: timedelta | None,
    until_soc: float | None,
) -> ControlCommand:
    """Return the command an override writes; refuse one the battery cannot run.

    A zero duration counts as none: an override needs a duration, a target or both.
    """
    capabilities = snapshot.capabilities
    if not settable_modes(capabilities):
        raise _invalid("override_read_only", battery=battery)
    target = policy.override_modes.get(mode)
    if target is None or target not in capabilities.modes:
        raise _invalid("override_not_supported", battery=battery, mode=mode)
    if not duration and until_soc is None:
        raise _invalid("override_needs_end")
    if mode is OverrideMode.HOLD and until_soc is not None:
        raise _invalid("override_hold_until_soc")
    setpoint: int | None = None
    if target in capabilities.setpoint_modes:
        if mode is not OverrideMode.HOLD and power_w is None:
            raise _invalid("override_power_required", mode=mode)
        setpoint = _checked_power(capabilities, SETPOINT_SIGN[mode] * (power_w or 0))
    soc = snapshot.state.state_of_charge
    if soc is not None and until_soc is not None and target_reached(mode, soc, until_soc):
        raise _invalid("override_soc_reached", soc=f"{soc:g}", until_soc=f"{until_soc:g}")
    return ControlCommand(mode=target, setpoint_w=setpoint)


def _with_limits(command: ControlCommand, limits: tuple[int | None, int | None]) -> ControlCommand:
    """Return ``command`` with the limits of our intent (they outlive every command)."""
    charge, discharge = limits
    return replace(command, charge_limit_w=charge, discharge_limit_w=discharge)


def _limit_write(
    fallback: ControlCommand, running: Override | None, value: int | None, *, charge: bool
) -> tuple[ControlCommand, Override | None]:
    """Return the command (and the changed running override) that sets one limit."""
    command = _with_limit(fallback, value, charge=charge)
    if running is None:
        return command, None
    fallback = _with_limit(running.fallback, value, charge=charge)
    return command, replace(running, command=command, fallback=fallback)


def _end_write(
    running: Override | None, only: Override | None, still_wanted: Callable[[], bool] | None
) -> tuple[ControlCommand, Override | None] | None:
    """Return the write that ends ``running`` (``only``: if that one runs), else ``None``."""
    if running is None or (only is not None and running is not only):
        return None
    if still_wanted is not None and not still_wanted():
        return None
    return running.fallback, None


def _setpoint_command(
    capabilities: Capabilities, policy: ControlPolicy, basis: Callable[[], InForce], value: int
) -> ControlCommand:
    """Return the command that writes setpoint ``value`` (in W).

    Its mode: the policy's, else the one in force, else the first mode that takes a setpoint.
    """
    mode = policy.setpoint_mode or basis().mode
    if mode is None or mode not in capabilities.modes:
        mode = next(
            (m for m in capabilities.modes if m in capabilities.setpoint_modes),
            min(capabilities.setpoint_modes),
        )
    return ControlCommand(mode=mode, setpoint_w=value)


def _command_for_mode(
    capabilities: Capabilities,
    policy: ControlPolicy,
    basis: Callable[[], InForce],
    mode: ControlMode,
) -> ControlCommand:
    """Return the command that switches to ``mode``, with the setpoint the policy carries."""
    setpoint: int | None = None
    if mode in capabilities.setpoint_modes:
        setpoint = basis().setpoint_w or 0
    elif policy.mode_keeps_setpoint:
        setpoint = basis().setpoint_w
    return ControlCommand(mode=mode, setpoint_w=setpoint)


def _fallback_command(
    capabilities: Capabilities,
    policy: ControlPolicy,
    active: ActiveIntent | None,
    basis: Callable[[], InForce],
    battery: str,
) -> ControlCommand:
    """Return what an override returns to: our intent, else the battery's mode, else release."""
    if active is not None:
        return active.command
    mode = basis().mode
    if mode is None or mode not in capabilities.modes:
        mode = policy.release_mode
    if mode is None:
        raise _invalid("override_no_fallback", battery=battery)
    return _command_for_mode(capabilities, policy, basis, mode)


class IntentListeners:
    """The listeners told after each write of one controller."""

    def __init__(self) -> None:
        """Start with no listener."""
        self._listeners: list[IntentListener] = []

    @callback
    def async_add(self, listener: IntentListener) -> CALLBACK_TYPE:
        """Call ``listener`` after each write; return the function that removes it."""
        self._listeners.append(listener)

        @callback
        def remove() -> None:
            if listener in self._listeners:  # idempotent: a second call does nothing
                self._listeners.remove(listener)

        return remove

    def notify(
        self, previous: Override | None, override: Override | None, owner: object | None
    ) -> None:
        """Tell every listener about a write."""
        for listener in list(self._listeners):
            listener(previous, override, owner)


class BatteryController:
    """Compose commands from intents and write them to one battery, one at a time."""

    def __init__(
        self, hass: HomeAssistant, entry: ConfigEntry, coordinator: BatteryCoordinator
    ) -> None:
        """Set up the controller of the battery ``coordinator`` polls. Nothing is written here."""
        self.hass = hass
        self.entry = entry
        self.coordinator = coordinator
        self.policy = backend_spec(coordinator.kind).control_policy
        self._lock = asyncio.Lock()
        self._active: ActiveIntent | None = None
        self._stopped = False
        self._keepalive = Keepalive(
            hass,
            name=coordinator.name,
            lock=self._lock,
            command_fn=lambda: None if self._stopped or not self._active else self._active.command,
            capabilities_fn=lambda: coordinator.data.capabilities,
            option_fn=lambda: entry.options.get(CONF_KEEPALIVE_INTERVAL),
            write=lambda command: coordinator.backend.async_apply(coordinator.battery_id, command),
        )
        self._overrides = OverrideLifecycle(
            hass, entry, coordinator, running=lambda: self.override, end=self._async_end_override
        )
        self._intent_listeners = IntentListeners()

    @callback
    def async_add_intent_listener(self, listener: IntentListener) -> CALLBACK_TYPE:
        """Call ``listener`` after each write (the charge plan notices a user's write)."""
        return self._intent_listeners.async_add(listener)

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
        return self._keepalive.running

    @property
    def _snapshot(self) -> BatterySnapshot:
        return self.coordinator.data

    def reported(self) -> InForce:
        """Return what the entities show (``in_force``, ``Meaning.REPORTED``)."""
        return self._in_force(Meaning.REPORTED)

    def basis(self) -> InForce:
        """Return what the next command builds on (``in_force``, ``Meaning.BASIS``)."""
        return self._in_force(Meaning.BASIS)

    def _in_force(self, meaning: Meaning) -> InForce:
        fetched = self.coordinator.fetch_started_at
        return in_force(self._snapshot, self.policy, self._active, fetched, meaning)

    def charge_discharge_limits(self) -> tuple[int | None, int | None]:
        """Return the charge and discharge limits of our intent in W (``None``: no limit)."""
        if self._active is None:
            return None, None
        command = self._active.command
        return command.charge_limit_w, command.discharge_limit_w

    async def async_set_power(self, watts: float) -> None:
        """Set a power setpoint in W (+ = discharge, - = charge)."""
        capabilities = self._snapshot.capabilities
        value = _checked_setpoint(capabilities, watts)

        def compose() -> tuple[ControlCommand, Override | None]:
            command = _setpoint_command(capabilities, self.policy, self.basis, value)
            return _with_limits(command, self.charge_discharge_limits()), None

        await self._async_write(compose)

    async def async_set_mode(self, mode: str) -> None:
        """Set a control or operation mode (a ``ControlMode`` value)."""
        new_mode = _checked_mode(self._snapshot.capabilities, mode)

        def compose() -> tuple[ControlCommand, Override | None]:
            command = _command_for_mode(
                self._snapshot.capabilities, self.policy, self.basis, new_mode
            )
            return _with_limits(command, self.charge_discharge_limits()), None

        await self._async_write(compose)

    async def async_set_charge_limit(self, watts: float | None) -> None:
        """Limit the charge power to ``watts`` (a magnitude, W); ``None`` releases the limit."""
        await self._async_set_limit(watts, charge=True)

    async def async_set_discharge_limit(self, watts: float | None) -> None:
        """Limit the discharge power to ``watts`` (a magnitude, W); ``None`` releases the limit."""
        await self._async_set_limit(watts, charge=False)

    async def _async_set_limit(self, watts: float | None, *, charge: bool) -> None:
        """Rewrite our command (else the mode in force) with one limit; an override keeps running."""
        battery = self.coordinator.battery_name
        value = _checked_limit(self._snapshot.capabilities, watts, battery, charge=charge)
        await self._async_write(
            lambda: _limit_write(self._fallback(), self.override, value, charge=charge)
        )

    def _fallback(self) -> ControlCommand:
        """Return what an override returns to: our intent, else the battery's mode, else release."""
        capabilities, battery = self._snapshot.capabilities, self.coordinator.battery_name
        return _fallback_command(capabilities, self.policy, self._active, self.basis, battery)

    async def async_start_override(
        self,
        mode: OverrideMode,
        *,
        power_w: float | None = None,
        duration: timedelta | None = None,
        until_soc: float | None = None,
        ends_at: datetime | None = None,
        owner: object | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> None:
        """Start an override until ``now + duration`` or ``until_soc``, whichever comes first.

        ``ends_at``: an absolute end instead of a duration (kept exactly, so a caller can tell its
        own override by it). ``owner``: who writes (handed to the intent listeners).
        ``still_wanted``: asked under the write lock; False drops the write (another write came
        first). A running override is replaced; its fallback stays the one to return to.
        """
        snapshot, battery = self._snapshot, self.coordinator.battery_name
        if ends_at is not None and duration is None:
            duration = ends_at - dt_util.utcnow()
        command = _override_command(
            snapshot, self.policy, battery, mode, power_w, duration=duration, until_soc=until_soc
        )

        def compose() -> tuple[ControlCommand, Override | None] | None:
            if still_wanted is not None and not still_wanted():
                return None
            running = self.override
            override = Override.start(
                mode,
                _with_limits(command, self.charge_discharge_limits()),
                fallback=running.fallback if running is not None else self._fallback(),
                duration=duration,
                until_soc=until_soc,
                ends_at=ends_at,
            )
            return override.command, override

        await self._async_write(compose, owner)

    async def async_stop_override(
        self, owner: object | None = None, still_wanted: Callable[[], bool] | None = None
    ) -> None:
        """End the running override now and write its fallback; without one nothing happens.

        ``owner`` and ``still_wanted`` as for ``async_start_override``.
        """
        await self._async_end_override(owner=owner, still_wanted=still_wanted)

    async def async_restore_override(self, override: Override) -> None:
        """Take up an override stored before a restart (nothing else is written).

        One that ended meanwhile (end time passed, target reached in the first poll) gets its
        fallback written once; one still running resumes its timers and keepalive.
        """
        self._active = ActiveIntent(
            command=override.command, since=override.started_at, override=override
        )
        if override.ended(dt_util.utcnow(), self._snapshot.state.state_of_charge):
            await self._overrides.async_end(override)
            return
        self._keepalive.async_restart()
        self._overrides.async_track(None if self._stopped else override)

    async def _async_end_override(
        self,
        only: Override | None = None,
        *,
        owner: object | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> None:
        """Write the running override's fallback (``only``: if that override still runs)."""
        await self._async_write(lambda: _end_write(self.override, only, still_wanted), owner)

    async def _async_write(
        self,
        compose: Callable[[], tuple[ControlCommand, Override | None] | None],
        owner: object | None = None,
    ) -> None:
        """Compose (``None``: nothing to write) and write a command, make it the active intent.

        Composed under the lock, a command builds on the write before it. A command without an
        override ends a running override without reverting (the user's intent wins).
        """
        async with self._lock:
            if (composed := compose()) is None:
                return
            command, override = composed
            await self._async_apply(command)
            await self._async_set_active(command, override, owner)
        # Entities that show the active intent (a FEMS reports no requested setpoint) re-render
        # now; the refresh then shows what the backend says.
        self.coordinator.async_update_listeners()
        await self.coordinator.async_request_refresh()

    async def _async_set_active(
        self, command: ControlCommand, override: Override | None, owner: object | None
    ) -> None:
        """Make a written command the active intent (under the lock); track and store overrides."""
        previous = self.override
        self._active = ActiveIntent(
            command=command, since=dt_util.utcnow(), override=override, owner=owner
        )
        self._keepalive.async_restart()
        self._overrides.async_track(None if self._stopped else override)
        await self._overrides.async_store(override, had_override=previous is not None)
        self._intent_listeners.notify(previous, override, owner)

    async def _async_apply(self, command: ControlCommand) -> None:
        """Write ``command``; map a backend error to a translated Home Assistant error."""
        LOGGER.debug("Writing %s to %s", command, self.coordinator.name)
        coordinator = self.coordinator
        try:
            await coordinator.backend.async_apply(coordinator.battery_id, command)
        except BackendError as err:
            if isinstance(err, AuthError):
                self.entry.async_start_reauth(self.hass)
            raise command_error(err, self.coordinator.battery_name) from err

    def keepalive_interval(self) -> timedelta | None:
        """Return how often the active command must be rewritten, or None when it persists."""
        return self._keepalive.interval()

    @callback
    def async_stop(self) -> None:
        """Stop writing (entry unload, Home Assistant stop); a FEMS then releases after its timeout."""
        self._stopped = True
        self._keepalive.async_stop()
        self._overrides.async_stop()
