"""The per-battery data update coordinator and the runtime data of a config entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
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
        self.fetch_started_at: datetime | None = None
        """When the poll that produced ``data`` started (a write after it may not show in it)."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{subentry.title or self.battery_id} ({kind})",
            update_interval=scan_interval(entry, kind),
            always_update=False,
        )

    async def _async_update_data(self) -> BatterySnapshot:
        """Fetch one snapshot."""
        started = dt_util.utcnow()
        placeholders = {"battery": self.subentry.title or self.battery_id}
        try:
            snapshot = await self.backend.async_get_snapshot(self.battery_id)
        except AuthError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key="authentication_failed",
                translation_placeholders={"error": str(err)},
            ) from err
        except UnknownBatteryError as err:
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
        return snapshot
