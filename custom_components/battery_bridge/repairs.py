"""Repair flows: remove a battery that its backend no longer knows."""

from __future__ import annotations

from homeassistant.components.repairs import RepairsFlow, RepairsFlowResult
from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
import probatio

from .const import DOMAIN
from .coordinator import ISSUE_DATA_ENTRY_ID, ISSUE_DATA_SUBENTRY_ID


class BatteryGoneRepairFlow(RepairsFlow):
    """Explain that the backend no longer knows a battery; on confirm, remove its subentry.

    Removing the subentry removes the battery's device and entities; the entry reloads without it.
    """

    def __init__(self, entry_id: str | None, subentry_id: str | None) -> None:
        """Remember which battery the issue is about."""
        self._entry_id = entry_id
        self._subentry_id = subentry_id

    async def async_step_init(self, user_input: dict[str, str] | None = None) -> RepairsFlowResult:
        """Start at the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Show what will be removed; remove it once the user confirms."""
        if (found := self._async_find_battery()) is None:
            # Removed meanwhile (by hand, or the entry was deleted): nothing left to repair.
            ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
            return self.async_abort(reason="battery_not_found")
        entry, subentry = found
        if user_input is not None:
            self.hass.config_entries.async_remove_subentry(entry, subentry.subentry_id)
            return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="confirm",
            data_schema=probatio.Schema({}),
            description_placeholders={"battery": subentry.title, "entry": entry.title},
        )

    @callback
    def _async_find_battery(self) -> tuple[ConfigEntry, ConfigSubentry] | None:
        """Return the entry and the subentry of the battery, if both still exist."""
        if self._entry_id is None or self._subentry_id is None:
            return None
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None or (subentry := entry.subentries.get(self._subentry_id)) is None:
            return None
        return entry, subentry


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


async def async_create_fix_flow(
    hass: HomeAssistant,
    issue_id: str,
    data: dict[str, str | int | float | None] | None,
) -> RepairsFlow:
    """Create the fix flow of a Battery Bridge repair issue (only battery-gone issues exist)."""
    data = data or {}
    return BatteryGoneRepairFlow(
        _str_or_none(data.get(ISSUE_DATA_ENTRY_ID)),
        _str_or_none(data.get(ISSUE_DATA_SUBENTRY_ID)),
    )
