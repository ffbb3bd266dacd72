"""Battery Bridge: watch and control home batteries (FlexConnect, FEMS, Enode)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .api.registry import backend_spec
from .backends import create_backend
from .battery_store import command_store
from .const import CONF_BACKEND, CONF_DECLINED_BATTERIES, DOMAIN, SUBENTRY_BATTERY
from .control import BatteryController
from .coordinator import (
    BatteryCoordinator,
    async_delete_battery_gone_issues,
    configured_battery_ids,
)
from .llm_api import async_register_llm_api
from .new_batteries import async_remember_declined, async_watch_account
from .overrides import override_store
from .plan_runner import PlanRunner
from .plan_store import plan_store
from .runtime import BatteryBridgeConfigEntry, BatteryBridgeData, BatteryRuntime
from .sentences import async_setup_sentences, async_update_sentences
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Set up the Battery Bridge domain: actions, Assist sentences, the LLM API (entries configure)."""
    async_setup_services(hass)
    async_setup_sentences(hass)
    async_register_llm_api(hass)
    return True


def _fingerprint(entry: BatteryBridgeConfigEntry) -> tuple[Any, ...]:
    """Return what the runtime is built from: a change to it needs a reload.

    The declined batteries are bookkeeping of the config flow and the account watch, not runtime.
    """
    subentries = tuple(
        sorted(
            (subentry_id, subentry.subentry_type, subentry.title, _freeze(subentry.data))
            for subentry_id, subentry in entry.subentries.items()
        )
    )
    data = {key: value for key, value in entry.data.items() if key != CONF_DECLINED_BATTERIES}
    return (_freeze(data), _freeze(entry.options), subentries)


def _freeze(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, repr(value)) for key, value in data.items()))


async def async_setup_entry(hass: HomeAssistant, entry: BatteryBridgeConfigEntry) -> bool:
    """Set up a backend entry: one coordinator and one controller per battery subentry.

    The first poll of every battery must succeed: an ``AuthError`` starts re-authentication
    (``ConfigEntryAuthFailed``), any other backend error makes Home Assistant retry the set-up
    later (``ConfigEntryNotReady``). Nothing is written to any battery here, except the fallback
    of a stored override that ended while Home Assistant was not running (once); a stored override
    still running resumes. A stored charge plan resumes and writes only if one of its steps is due
    that is not running yet. Stored overrides and plans of removed batteries are forgotten.
    """
    kind = backend_spec(entry.data[CONF_BACKEND]).kind
    backend = create_backend(hass, entry.data)
    coordinators = [
        BatteryCoordinator(hass, entry, backend, kind, subentry)
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_BATTERY
    ]
    # A removed battery's repair issue goes; the others stay until their first poll decides.
    async_delete_battery_gone_issues(
        hass, entry, keep={coordinator.subentry.subentry_id for coordinator in coordinators}
    )
    await asyncio.gather(
        *(coordinator.async_config_entry_first_refresh() for coordinator in coordinators)
    )
    batteries = {
        coordinator.subentry.subentry_id: _battery_runtime(hass, entry, coordinator)
        for coordinator in coordinators
    }
    entry.runtime_data = BatteryBridgeData(kind=kind, backend=backend, batteries=batteries)

    store = override_store(hass)
    await store.async_keep_only(entry.entry_id, set(batteries))
    for subentry_id, override in (await store.async_entry_overrides(entry.entry_id)).items():
        await batteries[subentry_id].controller.async_restore_override(override)
    await plan_store(hass).async_keep_only(entry.entry_id, set(batteries))
    await command_store(hass).async_keep_only(entry.entry_id, set(batteries))
    for battery in batteries.values():
        await battery.planner.async_restore()

    @callback
    def _async_stop_writing(_event: Event) -> None:
        """Stop every keepalive when Home Assistant stops (the FEMS then releases by itself)."""
        _async_stop_controllers(entry)

    entry.async_on_unload(hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, _async_stop_writing))

    fingerprint = _fingerprint(entry)
    set_up_with = configured_battery_ids(entry)

    async def _async_entry_updated(hass: HomeAssistant, entry: BatteryBridgeConfigEntry) -> None:
        """Reload when batteries, options or connection data changed (not for a title change)."""
        async_remember_declined(hass, entry, kind, set_up_with)
        if _fingerprint(entry) != fingerprint:
            hass.config_entries.async_schedule_reload(entry.entry_id)

    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    async_watch_account(hass, entry, backend, kind)

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # Assist's sentences are rebuilt once the entry is loaded (a rebuild now would not see it yet:
    # only loaded entries count) and again when it unloads.
    entry.async_on_unload(entry.async_on_state_change(lambda: async_update_sentences(hass)))
    entry.async_on_unload(lambda: async_update_sentences(hass))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: BatteryBridgeConfigEntry) -> bool:
    """Unload an entry: stop writing to its batteries, then unload its platforms.

    A reload keeps the repair issues (the next poll decides); disabling the entry deletes them,
    as nothing checks the batteries any more.
    """
    _async_stop_controllers(entry)
    if entry.disabled_by is not None:
        async_delete_battery_gone_issues(hass, entry)
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: BatteryBridgeConfigEntry) -> None:
    """Delete the repair issues, stored overrides, plans and command ids of a deleted entry."""
    async_delete_battery_gone_issues(hass, entry)
    await override_store(hass).async_keep_only(entry.entry_id, set())
    await plan_store(hass).async_keep_only(entry.entry_id, set())
    await command_store(hass).async_keep_only(entry.entry_id, set())


def _battery_runtime(
    hass: HomeAssistant, entry: BatteryBridgeConfigEntry, coordinator: BatteryCoordinator
) -> BatteryRuntime:
    controller = BatteryController(hass, entry, coordinator)
    return BatteryRuntime(
        subentry_id=coordinator.subentry.subentry_id,
        coordinator=coordinator,
        controller=controller,
        planner=PlanRunner(hass, entry, coordinator, controller),
    )


@callback
def _async_stop_controllers(entry: BatteryBridgeConfigEntry) -> None:
    for battery in entry.runtime_data.batteries.values():
        battery.planner.async_stop()
        battery.controller.async_stop()
