"""What a running charge plan is made of, and the store that keeps it across restarts.

``battery_bridge.plans``: per config entry id, per battery subentry id, the plan (plan.py's
``ChargePlan.as_dict``), the settings it was asked with and the start of the override it wrote
last (so that a restored override is recognised as the plan's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.util.hass_dict import HassKey

from .battery_store import BatteryStore
from .const import DOMAIN, LOGGER
from .plan import ChargePlan, PriceSlot

PLAN_STORAGE_KEY: Final = f"{DOMAIN}.plans"
PLAN_STORAGE_VERSION: Final = 1
DATA_PLAN_STORE: HassKey[PlanStore] = HassKey(f"{DOMAIN}_plan_store")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSettings:
    """What the plan_charge action asked for (kept for re-plans)."""

    power_w: float
    hold_between: bool
    max_price: float | None = None
    price_entity: str | None = None
    price_source: str | None = None
    prices: tuple[PriceSlot, ...] = ()
    """The prices given in the action (merged under the entity's forecast at a re-plan)."""

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "power_w": self.power_w,
            "hold_between": self.hold_between,
            "max_price": self.max_price,
            "price_entity": self.price_entity,
            "price_source": self.price_source,
            "prices": [[s.start.isoformat(), s.end.isoformat(), s.price] for s in self.prices],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanSettings:
        """Read the JSON form; raise ``KeyError``, ``TypeError`` or ``ValueError``."""
        max_price = data["max_price"]
        return cls(
            power_w=float(data["power_w"]),
            hold_between=bool(data["hold_between"]),
            max_price=None if max_price is None else float(max_price),
            price_entity=data["price_entity"],
            price_source=data["price_source"],
            prices=tuple(
                PriceSlot(datetime.fromisoformat(start), datetime.fromisoformat(end), float(price))
                for start, end, price in data["prices"]
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredPlan:
    """A running plan as stored."""

    plan: ChargePlan
    settings: PlanSettings
    own_since: datetime | None = None
    """When the plan's last override started (``Override.started_at``), if it wrote one."""

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "plan": self.plan.as_dict(),
            "settings": self.settings.as_dict(),
            "own_since": None if self.own_since is None else self.own_since.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredPlan:
        """Read the JSON form; raise ``KeyError``, ``TypeError`` or ``ValueError``."""
        own = data["own_since"]
        return cls(
            plan=ChargePlan.from_dict(data["plan"]),
            settings=PlanSettings.from_dict(data["settings"]),
            own_since=None if own is None else datetime.fromisoformat(own),
        )


class PlanStore:
    """The running plans of every battery, keyed ``<entry id>/<subentry id>``."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Set up the store; it is read at the first use."""
        self._store = BatteryStore(hass, PLAN_STORAGE_KEY, PLAN_STORAGE_VERSION)

    async def async_get(self, entry_id: str, subentry_id: str) -> StoredPlan | None:
        """Return a battery's stored plan; a malformed one is dropped."""
        if (data := await self._store.async_get(entry_id, subentry_id)) is None:
            return None
        try:
            return StoredPlan.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            LOGGER.warning("Dropping a stored charge plan that cannot be read (%s)", err)
            await self.async_save(entry_id, subentry_id, None)
            return None

    async def async_save(self, entry_id: str, subentry_id: str, plan: StoredPlan | None) -> None:
        """Store a battery's plan, or forget it (``None``)."""
        await self._store.async_set(entry_id, subentry_id, None if plan is None else plan.as_dict())

    async def async_keep_only(self, entry_id: str, subentry_ids: set[str]) -> None:
        """Forget the plans of an entry's batteries that are gone."""
        await self._store.async_keep_only(entry_id, subentry_ids)


def plan_store(hass: HomeAssistant) -> PlanStore:
    """Return the plan store of this Home Assistant instance."""
    if (store := hass.data.get(DATA_PLAN_STORE)) is None:
        store = hass.data[DATA_PLAN_STORE] = PlanStore(hass)
    return store
