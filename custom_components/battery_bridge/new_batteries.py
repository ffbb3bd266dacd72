"""Add batteries that appear on a backend account after set-up (dynamic devices)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.event import async_call_later, async_track_time_interval

from .api import Backend, BackendError
from .api.registry import backend_spec
from .const import CONF_BATTERY_ID, CONF_DECLINED_BATTERIES, DOMAIN, LOGGER, SUBENTRY_BATTERY
from .coordinator import configured_battery_ids

CHECK_INTERVAL: Final = timedelta(minutes=30)
FIRST_CHECK_DELAY: Final = timedelta(seconds=30)


def declined_battery_ids(entry: ConfigEntry) -> set[str]:
    """Return the ids of the batteries that are not to be added by themselves.

    Those the user left out in the config flow or removed later; only *Add battery* adds them,
    which takes them off the list again.
    """
    return set(entry.data.get(CONF_DECLINED_BATTERIES, ()))


@callback
def async_watch_account(
    hass: HomeAssistant, entry: ConfigEntry, backend: Backend, kind: str
) -> None:
    """Look for new batteries soon and every ``CHECK_INTERVAL`` while the entry is loaded.

    Only a backend whose spec lists batteries (Enode) gains new ones; typed batteries (FlexConnect)
    and an entry's one battery (FEMS) do not. The first check runs ``FIRST_CHECK_DELAY`` after
    set-up; each listed battery that is neither configured nor declined becomes a battery
    subentry, so its device and entities appear after the entry reloads.
    """
    if not backend_spec(kind).lists_batteries:
        return

    async def _async_check(_now: datetime | None = None) -> None:
        try:
            batteries = await backend.async_list_batteries()
        except BackendError as err:
            # The coordinators report outages; a missed check is caught up at the next one.
            LOGGER.debug("Could not list the batteries of %s: %s", entry.title, err)
            return
        known = set(configured_battery_ids(entry)) | declined_battery_ids(entry)
        for info in batteries:
            if info.battery_id in known:
                continue
            known.add(info.battery_id)
            LOGGER.info("New battery %s on %s: adding it", info.name, entry.title)
            hass.config_entries.async_add_subentry(
                entry,
                ConfigSubentry(
                    data=MappingProxyType({CONF_BATTERY_ID: info.battery_id}),
                    subentry_type=SUBENTRY_BATTERY,
                    title=info.name,
                    unique_id=info.battery_id,
                ),
            )

    name = f"{DOMAIN} new batteries {entry.title}"
    entry.async_on_unload(async_call_later(hass, FIRST_CHECK_DELAY, _async_check))
    entry.async_on_unload(async_track_time_interval(hass, _async_check, CHECK_INTERVAL, name=name))


@callback
def async_remember_declined(
    hass: HomeAssistant, entry: ConfigEntry, kind: str, set_up_with: Iterable[str]
) -> None:
    """Keep ``declined_batteries`` in step with batteries removed or added since set-up."""
    if not backend_spec(kind).lists_batteries:
        return
    before, now = set(set_up_with), set(configured_battery_ids(entry))
    declined = (declined_battery_ids(entry) | (before - now)) - now
    if declined != declined_battery_ids(entry):
        hass.config_entries.async_update_entry(
            entry, data={**entry.data, CONF_DECLINED_BATTERIES: sorted(declined)}
        )
