"""The lifecycle of a running override: watch its end, end it (retrying), keep it stored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .coordinator import BatteryCoordinator
from .overrides import Override, override_store

# How long to wait before writing the fallback of an ended override again after a failure.
OVERRIDE_RETRY_INTERVAL: Final = timedelta(seconds=30)


class OverrideLifecycle:
    """Watch the running override of one battery and end it when its time or target comes.

    ``running`` returns the override in force; ``end`` writes the fallback of the override it is
    given if that is still the running one (a timer or poll that saw an end must not end a newer
    override) and raises ``HomeAssistantError`` when the write fails: it is retried after
    ``OVERRIDE_RETRY_INTERVAL``. After ``async_stop`` (unload) nothing is scheduled any more, not
    even the retry of an end that was in flight.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        coordinator: BatteryCoordinator,
        *,
        running: Callable[[], Override | None],
        end: Callable[[Override], Awaitable[None]],
    ) -> None:
        """Set up the lifecycle of the battery ``coordinator`` polls; nothing is watched yet."""
        self._hass = hass
        self._entry = entry
        self._coordinator = coordinator
        self._running = running
        self._end = end
        self._cancel_timer: CALLBACK_TYPE | None = None
        self._cancel_soc_listener: CALLBACK_TYPE | None = None
        self._stopped = False

    async def async_store(self, override: Override | None, *, had_override: bool) -> None:
        """Store the running override, or forget the one that ran before (ended, replaced)."""
        store = override_store(self._hass)
        entry_id, subentry_id = self._entry.entry_id, self._coordinator.subentry.subentry_id
        if override is not None:
            await store.async_set(entry_id, subentry_id, override)
        elif had_override:
            await store.async_delete(entry_id, subentry_id)

    @callback
    def async_track(self, override: Override | None) -> None:
        """Watch the end (time and state of charge) of ``override``; ``None``: stop watching."""
        self.async_cancel()
        if override is None:
            return
        if override.ends_at is not None:
            self._async_schedule_end(override, override.ends_at)
        if override.until_soc is not None:
            self._cancel_soc_listener = self._coordinator.async_add_listener(self._async_check_soc)

    async def async_end(self, override: Override) -> None:
        """End ``override`` now; a failure is logged and retried later."""
        try:
            await self._end(override)
        except HomeAssistantError as err:
            LOGGER.warning(
                "Could not end the override of %s, retrying in %s: %s",
                self._coordinator.name,
                OVERRIDE_RETRY_INTERVAL,
                err,
            )
            self._async_schedule_end(override, dt_util.utcnow() + OVERRIDE_RETRY_INTERVAL)

    @callback
    def _async_schedule_end(self, override: Override, when: datetime) -> None:
        """End ``override`` at ``when`` (its end time, or a retry after a failed end)."""
        if self._cancel_timer is not None:
            self._cancel_timer()
            self._cancel_timer = None
        if self._stopped:
            return

        async def _async_due(_now: datetime) -> None:
            self._cancel_timer = None
            await self.async_end(override)

        self._cancel_timer = async_track_point_in_utc_time(self._hass, _async_due, when)

    @callback
    def _async_check_soc(self) -> None:
        """End the override when a poll shows its target state of charge."""
        override = self._running()
        if (
            not self._stopped
            and override is not None
            and override.soc_reached(self._coordinator.data.state.state_of_charge)
        ):
            self._entry.async_create_task(
                self._hass,
                self.async_end(override),
                f"{DOMAIN} end override {self._coordinator.name}",
            )

    @callback
    def async_cancel(self) -> None:
        """Stop watching."""
        for cancel in (self._cancel_timer, self._cancel_soc_listener):
            if cancel is not None:
                cancel()
        self._cancel_timer = None
        self._cancel_soc_listener = None

    @callback
    def async_stop(self) -> None:
        """Stop watching for good (entry unload): a retry of an end in flight is not scheduled."""
        self._stopped = True
        self.async_cancel()
