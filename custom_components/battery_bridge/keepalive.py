"""The keepalive: rewrite a command before the device drops it (FEMS API timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later, async_track_time_interval

from .api import BackendError, Capabilities, ControlCommand
from .const import DOMAIN, LOGGER

# The keepalive never runs more often than this, whatever the options say.
MIN_KEEPALIVE_INTERVAL: Final = timedelta(seconds=1)
# A failed rewrite is retried after this share of the interval (not only at the next tick): at the
# default half-timeout interval one failure would otherwise use up the whole device timeout.
RETRY_SHARE: Final = 4


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


def retry_delay(interval: timedelta) -> timedelta:
    """Return how soon a failed rewrite is tried again: a quarter interval, at least 1 s."""
    return min(max(interval / RETRY_SHARE, MIN_KEEPALIVE_INTERVAL), interval)


def needs_keepalive(command: ControlCommand, capabilities: Capabilities) -> bool:
    """Return True when the device drops ``command``: a setpoint mode or a limit, and a timeout."""
    return capabilities.command_timeout_s is not None and (
        command.mode in capabilities.setpoint_modes
        or command.charge_limit_w is not None
        or command.discharge_limit_w is not None
    )


class Keepalive:
    """Rewrite a command the device would drop, under the lock of the battery's other writes.

    ``command_fn`` returns the active command (``None``: none), ``capabilities_fn`` the battery's
    capabilities, ``option_fn`` the keepalive option (s); all are asked again at every tick.
    ``write`` writes; a failed rewrite is logged once and retried every quarter interval until one
    succeeds (the regular ticks go on as well).
    """

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        name: str,
        lock: asyncio.Lock,
        command_fn: Callable[[], ControlCommand | None],
        capabilities_fn: Callable[[], Capabilities],
        option_fn: Callable[[], float | None],
        write: Callable[[ControlCommand], Awaitable[None]],
    ) -> None:
        """Set up a stopped keepalive for the battery called ``name`` in logs."""
        self._hass = hass
        self._name = name
        self._lock = lock
        self._command_fn = command_fn
        self._capabilities_fn = capabilities_fn
        self._option_fn = option_fn
        self._write = write
        self._cancel: CALLBACK_TYPE | None = None
        self._retry: CALLBACK_TYPE | None = None
        self._failing = False

    def interval(self) -> timedelta | None:
        """Return how often a command must be rewritten, or None when the device keeps it."""
        return keepalive_interval(self._capabilities_fn().command_timeout_s, self._option_fn())

    def _command(self) -> ControlCommand | None:
        """Return the command to keep now, if any (``needs_keepalive``)."""
        command = self._command_fn()
        if command is None or not needs_keepalive(command, self._capabilities_fn()):
            return None
        return command

    @property
    def running(self) -> bool:
        """Return True while a command is being rewritten at the interval."""
        return self._cancel is not None

    @callback
    def async_restart(self) -> None:
        """Start (or restart from now) if there is a command to keep, else stop."""
        self.async_stop()
        self._failing = False
        interval = self.interval()
        if interval is None or self._command() is None:
            return
        LOGGER.debug("Keeping %s alive every %s", self._name, interval)
        self._cancel = async_track_time_interval(
            self._hass,
            self._async_tick,
            interval,
            name=f"{DOMAIN} keepalive {self._name}",
            cancel_on_shutdown=True,
        )

    @callback
    def async_stop(self) -> None:
        """Stop rewriting (and any pending retry)."""
        if self._cancel is not None:
            self._cancel()
            self._cancel = None
        self._cancel_retry()

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry()
            self._retry = None

    async def _async_retry(self, now: datetime) -> None:
        self._retry = None
        await self._async_tick(now)

    async def _async_tick(self, _now: datetime) -> None:
        """Rewrite the command; stop when there is none to keep any more."""
        async with self._lock:
            command = self._command()
            if command is None:
                self.async_stop()
                return
            try:
                await self._write(command)
            except BackendError as err:
                interval = self.interval() or MIN_KEEPALIVE_INTERVAL
                if not self._failing:
                    self._failing = True
                    LOGGER.warning(
                        "Keepalive of %s failed, retrying every %s: %s",
                        self._name,
                        retry_delay(interval),
                        err,
                    )
                if self._retry is None and self.running:
                    self._retry = async_call_later(
                        self._hass, retry_delay(interval), self._async_retry
                    )
                return
            self._cancel_retry()
            if self._failing:
                self._failing = False
                LOGGER.info("Keepalive of %s works again", self._name)
