"""The per-battery data update coordinator, its poll interval and its repair issue."""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime, timedelta

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .api import Backend, BackendError, BatterySnapshot, CommandResume, UnknownBatteryError
from .api.registry import backend_spec
from .battery_store import command_store
from .const import CONF_BATTERY_ID, CONF_SCAN_INTERVAL, DOMAIN, LOGGER, SUBENTRY_BATTERY
from .errors import poll_error

ISSUE_BATTERY_GONE = "battery_gone"
"""Translation key of the repair issue "the backend no longer knows this battery"."""
ISSUE_DATA_ENTRY_ID = "entry_id"
ISSUE_DATA_SUBENTRY_ID = "subentry_id"


def battery_gone_issue_id(subentry_id: str) -> str:
    """Return the id of the repair issue of the battery that the subentry describes."""
    return f"{ISSUE_BATTERY_GONE}_{subentry_id}"


@callback
def async_delete_battery_gone_issues(
    hass: HomeAssistant, entry: ConfigEntry, *, keep: Container[str] = ()
) -> None:
    """Delete the battery-gone issues of ``entry``, except those of the subentry ids in ``keep``.

    The issue registry is searched (not ``entry.subentries``), so the issue of a subentry that
    was removed meanwhile is found too.
    """
    registry = ir.async_get(hass)
    for (domain, issue_id), issue in list(registry.issues.items()):
        data = issue.data or {}
        if (
            domain == DOMAIN
            and data.get(ISSUE_DATA_ENTRY_ID) == entry.entry_id
            and data.get(ISSUE_DATA_SUBENTRY_ID) not in keep
        ):
            ir.async_delete_issue(hass, DOMAIN, issue_id)


def configured_battery_ids(entry: ConfigEntry) -> list[str]:
    """Return the ids of the batteries the entry has subentries for, in their order."""
    return [
        subentry.data[CONF_BATTERY_ID]
        for subentry in entry.get_subentries_of_type(SUBENTRY_BATTERY)
    ]


def scan_interval(entry: ConfigEntry, kind: str) -> timedelta:
    """Return the poll interval: the option if set, else the backend's default; never below its minimum."""
    spec = backend_spec(kind)
    seconds = entry.options.get(CONF_SCAN_INTERVAL)
    interval = spec.poll_interval if seconds is None else timedelta(seconds=seconds)
    return max(interval, spec.min_poll_interval)


class BatteryCoordinator(DataUpdateCoordinator[BatterySnapshot]):
    """Poll one battery's snapshot from its backend.

    A ``BackendError`` becomes a translated error (errors.py: ``ConfigEntryAuthFailed`` for
    rejected credentials, else ``UpdateFailed``): the entities go unavailable, Home Assistant logs
    once then and once at recovery. ``UnknownBatteryError`` (the backend no longer has this battery)
    also raises a fixable repair issue, which the next successful poll deletes; the first poll at
    set-up takes the same path. Where commands outlive a poll (``CommandResume``: Enode Actions),
    the last command id is stored and handed back to the backend after a restart.
    """

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        backend: Backend,
        kind: str,
        subentry: ConfigSubentry,
    ) -> None:
        """Set up the coordinator of the battery that ``subentry`` describes."""
        self.backend = backend
        self.kind = kind
        self.subentry = subentry
        self.battery_id: str = subentry.data[CONF_BATTERY_ID]
        self.battery_name: str = subentry.title or self.battery_id
        """How messages name the battery: its subentry's title, else its id."""
        self.fetch_started_at: datetime | None = None
        """When the poll that produced ``data`` started (a write after it may not show in it)."""
        self._issue_may_exist = True  # an earlier set-up of the entry may have left one
        self._command_id: str | None = None  # the command id last stored
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{self.battery_name} ({kind})",
            update_interval=scan_interval(entry, kind),
            always_update=False,
        )

    async def _async_setup(self) -> None:
        """Hand the backend the command an earlier run left (before the first poll)."""
        if not isinstance(self.backend, CommandResume):
            return
        stored = await command_store(self.hass).async_get(
            self.config_entry.entry_id, self.subentry.subentry_id
        )
        if stored is not None and isinstance(command_id := stored.get("command_id"), str):
            self._command_id = command_id
            self.backend.resume_command(self.battery_id, command_id)

    async def _async_store_command_id(self, snapshot: BatterySnapshot) -> None:
        """Store the snapshot's command id when it changed (``CommandResume`` backends only)."""
        command_id = snapshot.control.command_id
        if command_id == self._command_id or not isinstance(self.backend, CommandResume):
            return
        self._command_id = command_id
        await command_store(self.hass).async_set(
            self.config_entry.entry_id,
            self.subentry.subentry_id,
            None if command_id is None else {"command_id": command_id},
        )

    async def _async_update_data(self) -> BatterySnapshot:
        """Fetch one snapshot."""
        started = dt_util.utcnow()
        try:
            snapshot = await self.backend.async_get_snapshot(self.battery_id)
        except BackendError as err:
            if isinstance(err, UnknownBatteryError):
                self._async_create_battery_gone_issue()
            raise poll_error(err, self.battery_name) from err
        self.fetch_started_at = started
        self.update_interval = self._interval(snapshot)
        await self._async_store_command_id(snapshot)
        if self._issue_may_exist:
            ir.async_delete_issue(
                self.hass, DOMAIN, battery_gone_issue_id(self.subentry.subentry_id)
            )
            self._issue_may_exist = False
        return snapshot

    def _interval(self, snapshot: BatterySnapshot) -> timedelta:
        """Return the poll interval after ``snapshot``: shorter while a command is pending."""
        interval = scan_interval(self.config_entry, self.kind)
        pending = backend_spec(self.kind).pending_poll_interval
        if snapshot.control.pending and pending is not None:
            return min(interval, pending)
        return interval

    @callback
    def _async_create_battery_gone_issue(self) -> None:
        """Raise the repair issue that offers to remove this battery's subentry."""
        subentry_id = self.subentry.subentry_id
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            battery_gone_issue_id(subentry_id),
            is_fixable=True,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_BATTERY_GONE,
            translation_placeholders={
                "battery": self.battery_name,
                "entry": self.config_entry.title,
            },
            data={
                ISSUE_DATA_ENTRY_ID: self.config_entry.entry_id,
                ISSUE_DATA_SUBENTRY_ID: subentry_id,
            },
        )
        self._issue_may_exist = True
