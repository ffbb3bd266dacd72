"""Read the price forecast of a charge plan: a price entity's attributes and tariff actions.

Nord Pool (HA core) and Tibber (HA core) give forecasts only in the responses of their own
actions; where the price entity belongs to one of them and the action is registered, it is called
with ``return_response`` (Nord Pool: once per local day up to the deadline; a day without prices
yet is skipped). Every other source is read from the entity's attributes (plan.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .plan import PriceFormatError, PriceSlot, parse_price_forecast

NORDPOOL: Final = ("nordpool", "get_prices_for_date")
TIBBER: Final = ("tibber", "get_prices")


def price_error(err: PriceFormatError, source: str) -> ServiceValidationError:
    """Return the translated error of a forecast that cannot be read (``source``: where from).

    The area or home the caller chose (the reason's own ``source``) becomes ``source_name``.
    """
    placeholders = {
        ("source_name" if key == "source" else key): value
        for key, value in err.placeholders.items()
    }
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=f"price_{err.reason.value}",
        translation_placeholders={"source": source, **placeholders},
    )


async def _async_call(hass: HomeAssistant, action: tuple[str, str], data: dict[str, Any]) -> Any:
    """Call a tariff action for its response; ``None`` when it fails (no prices yet)."""
    try:
        return await hass.services.async_call(*action, data, blocking=True, return_response=True)
    except HomeAssistantError as err:
        LOGGER.debug("%s.%s(%s) gave no prices: %s", *action, data, err)
        return None


async def _async_nordpool(
    hass: HomeAssistant, config_entry_id: str, now: datetime, deadline: datetime
) -> dict[str, list[Any]] | None:
    """Return the Nord Pool prices of every local day from ``now`` to ``deadline``, per area."""
    areas: dict[str, list[Any]] = {}
    day, last = dt_util.as_local(now).date(), dt_util.as_local(deadline).date()
    while day <= last:
        response = await _async_call(
            hass, NORDPOOL, {"config_entry": config_entry_id, "date": day.isoformat()}
        )
        if isinstance(response, Mapping):
            for area, prices in response.items():
                if isinstance(prices, Sequence) and not isinstance(prices, str):
                    areas.setdefault(str(area), []).extend(prices)
        day += timedelta(days=1)
    return areas or None


async def async_action_response(
    hass: HomeAssistant, entity_id: str, now: datetime, deadline: datetime
) -> Any:
    """Return the forecast response of the entity's tariff integration, if it has an action."""
    entity = er.async_get(hass).async_get(entity_id)
    if entity is None:
        return None
    if (
        entity.platform == NORDPOOL[0]
        and entity.config_entry_id is not None
        and hass.services.has_service(*NORDPOOL)
    ):
        return await _async_nordpool(hass, entity.config_entry_id, now, deadline)
    if entity.platform == TIBBER[0] and hass.services.has_service(*TIBBER):
        return await _async_call(
            hass, TIBBER, {"start": now.isoformat(), "end": deadline.isoformat()}
        )
    return None


async def async_read_forecast(
    hass: HomeAssistant,
    entity_id: str,
    *,
    source: str | None,
    now: datetime,
    deadline: datetime,
) -> list[PriceSlot]:
    """Return the forecast of a price entity; raise a translated ``ServiceValidationError``."""
    if (state := hass.states.get(entity_id)) is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="price_entity_not_found",
            translation_placeholders={"source": entity_id},
        )
    response = await async_action_response(hass, entity_id, now, deadline)
    try:
        return parse_price_forecast(state.attributes, response, source=source)
    except PriceFormatError as err:
        raise price_error(err, entity_id) from err
