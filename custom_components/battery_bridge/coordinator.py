"""The per-battery data update coordinator and the runtime data of a config entry."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from .api import (
    AuthError,
    Backend,
    BackendError,
    BackendKind,
    BatterySnapshot,
    RateLimitedError,
    UnknownBatteryError,
)
from .const import (
    CONF_BATTERY_ID,
    CONF_SCAN_INTERVAL,
    DEFAULT_SCAN_INTERVAL,
    DOMAIN,
    LOGGER,
    MIN_SCAN_INTERVAL,
    PENDING_SCAN_INTERVAL,
    SUBENTRY_BATTERY,
)

if TYPE_CHECKING:
    from .control import BatteryController


@dataclass(kw_only=True, slots=True)
class BatteryRuntime:
    """The runtime objects of one battery (one config subentry)."""

    subentry_id: str
    coordinator: BatteryCoordinator
    controller: BatteryController


@dataclass(kw_only=True, slots=True)
class BatteryBridgeData:
    """``ConfigEntry.runtime_data``: the backend client and, per battery subentry id, its runtime."""

    kind: BackendKind
    backend: Backend
    batteries: dict[str, BatteryRuntime]


type BatteryBridgeConfigEntry = ConfigEntry[BatteryBridgeData]

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


def scan_interval(entry: ConfigEntry, kind: BackendKind) -> timedelta:
    """Return the poll interval: the option if set, else the backend's default; never below its minimum."""
    seconds = entry.options.get(CONF_SCAN_INTERVAL)
    interval = DEFAULT_SCAN_INTERVAL[kind] if seconds is None else timedelta(seconds=seconds)
    return max(interval, MIN_SCAN_INTERVAL[kind])


class BatteryCoordinator(DataUpdateCoordinator[BatterySnapshot]):
    """Poll one battery's snapshot from its backend.

    ``AuthError`` becomes ``ConfigEntryAuthFailed`` (Home Assistant starts the re-authentication
    flow), every other ``BackendError`` an ``UpdateFailed`` with a translation key: the battery's
    entities go unavailable and Home Assistant logs once when that happens and once when it recovers.
    ``UnknownBatteryError`` (the backend no longer has this battery) also raises a fixable repair
    issue, which the next successful poll deletes; at set-up the first poll takes the same path, so
    a battery that is gone when Home Assistant starts gets the issue as well.
    """

    config_entry: BatteryBridgeConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: BatteryBridgeConfigEntry,
        backend: Backend,
        kind: BackendKind,
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
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{self.battery_name} ({kind})",
            update_interval=scan_interval(entry, kind),
            always_update=False,
        )

    async def _async_update_data(self) -> BatterySnapshot:
        """Fetch one snapshot."""
        started = dt_util.utcnow()
        placeholders = {"battery": self.battery_name}
        try:
            snapshot = await self.backend.async_get_snapshot(self.battery_id)
        except AuthError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key="authentication_failed",
                translation_placeholders={"error": str(err)},
            ) from err
        except UnknownBatteryError as err:
            self._async_create_battery_gone_issue()
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="unknown_battery",
                translation_placeholders=placeholders,
            ) from err
        except RateLimitedError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="rate_limited",
                translation_placeholders=placeholders,
                retry_after=err.retry_after,
            ) from err
        except BackendError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="update_failed",
                translation_placeholders={**placeholders, "error": str(err)},
            ) from err
        self.fetch_started_at = started
        self.update_interval = self._interval(snapshot)
        if self._issue_may_exist:
            ir.async_delete_issue(
                self.hass, DOMAIN, battery_gone_issue_id(self.subentry.subentry_id)
            )
            self._issue_may_exist = False
        return snapshot

    def _interval(self, snapshot: BatterySnapshot) -> timedelta:
        """Return the poll interval after ``snapshot``: shorter while a command is pending."""
        interval = scan_interval(self.config_entry, self.kind)
        if snapshot.control.pending and (pending := PENDING_SCAN_INTERVAL.get(self.kind)):
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
