"""A JSON object per battery, keyed ``<entry id>/<subentry id>``, kept across restarts.

Charge plans (plan_store.py) and the last command id of each battery (``battery_bridge.commands``,
read back by the coordinator after a restart) are kept this way.
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN

COMMAND_STORAGE_KEY: Final = f"{DOMAIN}.commands"
COMMAND_STORAGE_VERSION: Final = 1
DATA_COMMAND_STORE: HassKey[BatteryStore] = HassKey(f"{DOMAIN}_command_store")


class BatteryStore:
    """JSON objects per battery of every entry; read at the first use, saved at every change."""

    def __init__(self, hass: HomeAssistant, key: str, version: int) -> None:
        """Set up the store ``key``; nothing is read yet."""
        self._store: Store[dict[str, dict[str, Any]]] = Store(hass, version, key)
        self._data: dict[str, dict[str, Any]] | None = None

    async def _async_data(self) -> dict[str, dict[str, Any]]:
        if self._data is None:
            loaded = await self._store.async_load()
            self._data = loaded if isinstance(loaded, dict) else {}
        return self._data

    async def async_get(self, entry_id: str, subentry_id: str) -> dict[str, Any] | None:
        """Return what is stored for a battery (``None``: nothing, or not an object)."""
        value = (await self._async_data()).get(f"{entry_id}/{subentry_id}")
        return value if isinstance(value, dict) else None

    async def async_set(
        self, entry_id: str, subentry_id: str, value: dict[str, Any] | None
    ) -> None:
        """Store a battery's object, or forget it (``None``); saves only when something changed."""
        data = await self._async_data()
        key = f"{entry_id}/{subentry_id}"
        if value is None:
            if data.pop(key, None) is None:
                return
        elif data.get(key) == value:
            return
        else:
            data[key] = value
        await self._store.async_save(data)

    async def async_keep_only(self, entry_id: str, subentry_ids: set[str]) -> None:
        """Forget what is stored for an entry's batteries that are not in ``subentry_ids``."""
        for key in list(await self._async_data()):
            owner, _, subentry_id = key.partition("/")
            if owner == entry_id and subentry_id not in subentry_ids:
                await self.async_set(entry_id, subentry_id, None)


def command_store(hass: HomeAssistant) -> BatteryStore:
    """Return the store of each battery's last command id (``{"command_id": ...}``)."""
    if (store := hass.data.get(DATA_COMMAND_STORE)) is None:
        store = hass.data[DATA_COMMAND_STORE] = BatteryStore(
            hass, COMMAND_STORAGE_KEY, COMMAND_STORAGE_VERSION
        )
    return store
