"""Tests of the account watch: batteries that appear on an Enode account are added by themselves."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.battery_bridge.api import BackendKind, CannotConnectError
from custom_components.battery_bridge.const import (
    CONF_BATTERY_ID,
    CONF_DECLINED_BATTERIES,
    DOMAIN,
    SUBENTRY_BATTERY,
)
from custom_components.battery_bridge.coordinator import configured_battery_ids
from custom_components.battery_bridge.new_batteries import CHECK_INTERVAL, FIRST_CHECK_DELAY

from .conftest import ENODE_ID_1, ENODE_ID_2, ENTRY_DATA, ENTRY_IDS, FakeBackend, enode_snapshots


@pytest.fixture
def backend_kind() -> BackendKind:
    """Enode unless a test says otherwise: the only backend that lists its batteries."""
    return BackendKind.ENODE


class CountingBackend(FakeBackend):
    """A FakeBackend that counts account listings and can fail them."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.list_calls = 0
        self.list_error: Exception | None = None

    async def async_list_batteries(self) -> list[Any]:
        self.list_calls += 1
        if self.list_error is not None:
            raise self.list_error
        return await super().async_list_batteries()


@pytest.fixture
def mock_backend(mock_backend: FakeBackend) -> CountingBackend:
    """Make the conftest's fake backend count listings (same object, class swapped)."""
    mock_backend.__class__ = CountingBackend
    mock_backend.list_calls = 0  # type: ignore[attr-defined]
    mock_backend.list_error = None  # type: ignore[attr-defined]
    return mock_backend  # type: ignore[return-value]


def _entry(hass: HomeAssistant, battery_ids: list[str], **data: Any) -> MockConfigEntry:
    """An Enode entry with subentries for ``battery_ids`` only."""
    snapshots = enode_snapshots()
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Enode test",
        entry_id=ENTRY_IDS[BackendKind.ENODE],
        unique_id="enode-unique",
        data={**ENTRY_DATA[BackendKind.ENODE], **data},
        subentries_data=[
            {
                "data": {CONF_BATTERY_ID: battery_id},
                "subentry_type": SUBENTRY_BATTERY,
                "title": snapshots[battery_id].info.name,
                "unique_id": battery_id,
            }
            for battery_id in battery_ids
        ],
    )
    entry.add_to_hass(hass)
    return entry


async def _set_up(
    hass: HomeAssistant, entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Set the entry up and let the first account check run."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await _tick(hass, freezer, FIRST_CHECK_DELAY)


def _has_entities(hass: HomeAssistant, battery_id: str) -> bool:
    registry = er.async_get(hass)
    return (
        registry.async_get_entity_id("sensor", DOMAIN, f"enode_{battery_id}_state_of_charge")
        is not None
    )


async def _tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, delta: timedelta) -> None:
    freezer.tick(delta)
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_new_battery_on_the_account_is_added(
    hass: HomeAssistant, mock_backend: CountingBackend, freezer: FrozenDateTimeFactory
) -> None:
    """At set-up and every CHECK_INTERVAL the account is listed; a new battery gets entities."""
    entry = _entry(hass, [ENODE_ID_1])
    snapshot_2 = mock_backend.snapshots.pop(ENODE_ID_2)  # not on the account yet
    await _set_up(hass, entry, freezer)
    assert mock_backend.list_calls == 1
    assert set(configured_battery_ids(entry)) == {ENODE_ID_1}

    mock_backend.snapshots[ENODE_ID_2] = snapshot_2  # linked in the vendor's app
    await _tick(hass, freezer, CHECK_INTERVAL - FIRST_CHECK_DELAY)
    assert mock_backend.list_calls == 2
    assert set(configured_battery_ids(entry)) == {ENODE_ID_1, ENODE_ID_2}
    added = next(s for s in entry.subentries.values() if s.data[CONF_BATTERY_ID] == ENODE_ID_2)
    assert (added.title, added.unique_id) == ("Enphase IQ", ENODE_ID_2)
    assert entry.state is ConfigEntryState.LOADED
    assert _has_entities(hass, ENODE_ID_2)
    assert len(entry.runtime_data.batteries) == 2


async def test_battery_present_at_start_up_is_added(
    hass: HomeAssistant, mock_backend: CountingBackend, freezer: FrozenDateTimeFactory
) -> None:
    """A battery added to the account while Home Assistant was off shows up after start-up."""
    entry = _entry(hass, [ENODE_ID_1])
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert mock_backend.list_calls == 0  # not during set-up
    await _tick(hass, freezer, FIRST_CHECK_DELAY)
    assert set(configured_battery_ids(entry)) == {ENODE_ID_1, ENODE_ID_2}
    assert _has_entities(hass, ENODE_ID_2)


async def test_declined_battery_is_not_added(
    hass: HomeAssistant, mock_backend: CountingBackend, freezer: FrozenDateTimeFactory
) -> None:
    """A battery left out in the config flow stays out."""
    entry = _entry(hass, [ENODE_ID_1], **{CONF_DECLINED_BATTERIES: [ENODE_ID_2]})
    await _set_up(hass, entry, freezer)
    await _tick(hass, freezer, CHECK_INTERVAL)
    assert mock_backend.list_calls == 2
    assert set(configured_battery_ids(entry)) == {ENODE_ID_1}
    assert not _has_entities(hass, ENODE_ID_2)


async def test_removed_battery_is_declined_and_added_back_by_hand(
    hass: HomeAssistant, mock_backend: CountingBackend, freezer: FrozenDateTimeFactory
) -> None:
    """Removing a battery declines it; adding it by hand (Add battery) takes that back."""
    entry = _entry(hass, [ENODE_ID_1, ENODE_ID_2])
    await _set_up(hass, entry, freezer)
    subentry_id = next(
        s.subentry_id for s in entry.subentries.values() if s.data[CONF_BATTERY_ID] == ENODE_ID_2
    )
    assert hass.config_entries.async_remove_subentry(entry, subentry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.data[CONF_DECLINED_BATTERIES] == [ENODE_ID_2]
    await _tick(hass, freezer, CHECK_INTERVAL)
    assert set(configured_battery_ids(entry)) == {ENODE_ID_1}  # not added back by the watch

    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(
            data={CONF_BATTERY_ID: ENODE_ID_2},  # type: ignore[arg-type]
            subentry_type=SUBENTRY_BATTERY,
            title="Enphase IQ",
            unique_id=ENODE_ID_2,
        ),
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.data[CONF_DECLINED_BATTERIES] == []
    assert _has_entities(hass, ENODE_ID_2)


async def test_listing_fails_quietly(
    hass: HomeAssistant,
    mock_backend: CountingBackend,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed listing changes nothing and is caught up at the next check."""
    caplog.set_level(logging.DEBUG, logger="custom_components.battery_bridge")
    entry = _entry(hass, [ENODE_ID_1])
    mock_backend.list_error = CannotConnectError("Enode API unreachable")
    await _set_up(hass, entry, freezer)
    assert entry.state is ConfigEntryState.LOADED
    assert set(configured_battery_ids(entry)) == {ENODE_ID_1}
    assert "Could not list the batteries of Enode test: Enode API unreachable" in caplog.text

    mock_backend.list_error = None
    await _tick(hass, freezer, CHECK_INTERVAL)
    assert set(configured_battery_ids(entry)) == {ENODE_ID_1, ENODE_ID_2}


async def test_watch_stops_on_unload(
    hass: HomeAssistant, mock_backend: CountingBackend, freezer: FrozenDateTimeFactory
) -> None:
    """No listing after the entry is unloaded."""
    entry = _entry(hass, [ENODE_ID_1, ENODE_ID_2])
    await _set_up(hass, entry, freezer)
    assert await hass.config_entries.async_unload(entry.entry_id)
    calls = mock_backend.list_calls
    await _tick(hass, freezer, CHECK_INTERVAL * 2)
    assert mock_backend.list_calls == calls


@pytest.mark.parametrize("backend_kind", [BackendKind.FEMS, BackendKind.FLEXCONNECT])
async def test_no_watch_for_backends_without_a_list(
    hass: HomeAssistant,
    mock_backend: CountingBackend,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A FEMS (one ESS) and a FlexConnect client (no list) are never listed; nothing declined."""
    await _tick(hass, freezer, CHECK_INTERVAL)
    assert mock_backend.list_calls == 0
    subentry_id = next(iter(init_integration.subentries))
    assert hass.config_entries.async_remove_subentry(init_integration, subentry_id)
    await hass.async_block_till_done()
    assert CONF_DECLINED_BATTERIES not in init_integration.data
