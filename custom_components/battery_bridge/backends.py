"""Build the client-layer backend for a config entry's data, through its spec in the registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .api import Backend
from .api.registry import backend_spec
from .const import CONF_BACKEND


def create_backend(hass: HomeAssistant, data: Mapping[str, Any]) -> Backend:
    """Return the backend client described by config entry data."""
    return backend_spec(data[CONF_BACKEND]).create(data, async_get_clientsession(hass))
