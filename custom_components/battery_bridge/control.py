"""The battery controller: the only place that writes to a battery.

Entities express intents (``async_set_power``, ``async_set_mode``); the controller validates them
against the battery's capabilities, composes the ``ControlCommand`` the backend wants, writes it
(serialised per battery), keeps it alive where the device forgets commands (FEMS API timeout) and
asks the coordinator for a refresh so the UI follows.

The command being kept applied is the *active intent*. Timed overrides (an intent with an end time
or a target state of charge, and a fallback intent to restore) fit in here later: ``ActiveIntent``
gains ``ends_at`` / ``until_soc`` / ``fallback``, and the keepalive tick, which already re-applies
the active intent, also checks whether it has ended and then applies the fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.event import async_track_time_interval
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

# Setpoint bounds when the backend reports none (FlexConnect), in W.
FALLBACK_POWER_LIMIT_W: Final = 10_000
# The keepalive never runs more often than this, whatever the options say.
MIN_KEEPALIVE_INTERVAL: Final = timedelta(seconds=1)


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


POLICIES: Final[dict[BackendKind, ControlPolicy]] = {
    # A FlexConnect control request carries mode and setpoint together: keep the other one.
    BackendKind.FLEXCONNECT: ControlPolicy(setpoint_mode=None, mode_keeps_setpoint=True),
    # A FEMS setpoint is an override of its own control: writing one means mode "power";
    # mode "auto" releases it (no setpoint).
    BackendKind.FEMS: ControlPolicy(setpoint_mode=ControlMode.POWER, mode_keeps_setpoint=False),
    # Enode operation modes take no setpoint.
    BackendKind.ENODE: ControlPolicy(setpoint_mode=None, mode_keeps_setpoint=False),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveIntent:
    """The command the controller last wrote and keeps applied, and when it was requested."""

    command: ControlCommand
    since: datetime


def power_limits(capabilities: Capabilities) -> tuple[int, int]:
    """Return the setpoint bounds in W (+ = discharge), with a fallback where none is reported."""
    low = capabilities.min_power_w
    high = capabilities.max_power_w
    return (
        -FALLBACK_POWER_LIMIT_W if low is None else low,
        FALLBACK_POWER_LIMIT_W if high is None else high,
    )


def settable_modes(capabilities: Capabilities) -> list[ControlMode]:
    """Return the modes that can be set, in the backend's order."""
    return [mode for mode in capabilities.modes if mode is not ControlMode.UNKNOWN]


class BatteryController:
    """Write intents to one battery; keep a setpoint alive where the device forgets it."""

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

    @property
    def active(self) -> ActiveIntent | None:
        """Return the intent last written by this controller, if any."""
        return self._active

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

    def current_setpoint(self) -> int | None:
        """Return the setpoint in force (see ``_in_force``)."""
        control = self._snapshot.control
        return self._in_force(
            control.desired.setpoint_w if control.desired else None,
            self._active.command.setpoint_w if self._active else None,
            control.current.setpoint_w if control.current else None,
        )

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
        low, high = power_limits(capabilities)
        value = round(watts)
        if not low <= value <= high:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="setpoint_out_of_range",
                translation_placeholders={"value": str(value), "min": str(low), "max": str(high)},
            )

        def compose() -> ControlCommand:
            mode = self.policy.setpoint_mode or self.current_mode()
            if mode is None or mode not in capabilities.modes:
                mode = next(
                    (m for m in capabilities.modes if m in capabilities.setpoint_modes),
                    min(capabilities.setpoint_modes),
                )
            return ControlCommand(mode=mode, setpoint_w=value)

        await self._async_write(compose)

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

        def compose() -> ControlCommand:
            setpoint: int | None = None
            if new_mode in capabilities.setpoint_modes:
                setpoint = self.current_setpoint()
                if setpoint is None:
                    setpoint = 0
            elif self.policy.mode_keeps_setpoint:
                setpoint = self.current_setpoint()
            return ControlCommand(mode=new_mode, setpoint_w=setpoint)

        await self._async_write(compose)

    async def _async_write(self, compose: Callable[[], ControlCommand]) -> None:
        """Compose and write a command, make it the active intent, update keepalive, refresh.

        The command is composed under the lock, so it builds on the write before it.
        """
        async with self._lock:
            command = compose()
            await self._async_apply(command)
            self._active = ActiveIntent(command=command, since=dt_util.utcnow())
            self._keepalive_failing = False
            self._async_update_keepalive()
        # Entities that show the active intent (a FEMS reports no requested setpoint) re-render
        # now; the refresh then shows what the backend says.
        self.coordinator.async_update_listeners()
        await self.coordinator.async_request_refresh()

    async def _async_apply(self, command: ControlCommand) -> None:
        """Call the backend; map its errors to translated Home Assistant errors."""
        coordinator = self.coordinator
        LOGGER.debug("Writing %s to %s", command, coordinator.name)
        placeholders = {"battery": coordinator.subentry.title or coordinator.battery_id}
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
        if self._active is None or self._stopped:
            return False
        capabilities = self._snapshot.capabilities
        return (
            capabilities.command_timeout_s is not None
            and self._active.command.mode in capabilities.setpoint_modes
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
