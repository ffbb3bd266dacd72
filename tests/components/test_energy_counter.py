"""Tests of StoredEnergyCounter: energy totals derived from the stored energy (pure logic)."""

from __future__ import annotations

import pytest

from custom_components.battery_bridge.sensor import StoredEnergyCounter


@pytest.mark.parametrize(
    ("readings", "charged", "discharged"),
    [
        ([(5000, 10000), (5600, 10000), (5300, 10000)], 600, 300),  # rise, then fall
        ([(5000, 10000), (None, 10000), (5400, 10000)], 400, 0),  # a gap counts once after it
        ([(5000, 10000), (5500, 12000), (5600, 12000)], 100, 0),  # new capacity: a new base
        ([(None, None), (100, None), (250, None)], 150, 0),  # capacity unknown
        ([(5000, 1000), (9000, 1000)], 0, 0),  # a step beyond the capacity is no flow
    ],
)
def test_stored_energy_counter(
    readings: list[tuple[float | None, float | None]], charged: float, discharged: float
) -> None:
    """Rises count as charged, falls as discharged; gaps, capacity changes and glitches don't."""
    counters = StoredEnergyCounter(1), StoredEnergyCounter(-1)
    for stored, capacity in readings:
        for counter in counters:
            counter.update(stored, capacity)
    assert (counters[0].total_wh, counters[1].total_wh) == (charged, discharged)


@pytest.mark.parametrize(
    ("data", "total"),
    [
        ({"total_wh": 12.5, "stored_wh": 100, "capacity_wh": 1000}, 12.5),
        ({"total_wh": "12.5", "stored_wh": 100}, 0.0),  # malformed: start afresh
        ({"total_wh": -1.0}, 0.0),
        ({"total_wh": True}, 0.0),
        ({}, 0.0),
    ],
)
def test_stored_energy_counter_restore(data: dict[str, object], total: float) -> None:
    """Restore data from before a restart is taken only when it makes sense."""
    counter = StoredEnergyCounter(1)
    counter.restore(data)
    assert counter.total_wh == total
    assert StoredEnergyCounter(1).as_dict() == {
        "total_wh": 0.0,
        "stored_wh": None,
        "capacity_wh": None,
    }
