"""Build the client-layer backend for a config entry's data (used by set-up and the config flow)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .api import Backend, BackendKind
from .api.enode import EnodeBackend
from .api.fems import FemsBackend
from .api.flexconnect import FlexConnectBackend
from .const import (
    CONF_API_URL,
    CONF_BACKEND,
    CONF_CAN_WRITE,
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_ENVIRONMENT,
    CONF_ESS_ID,
    CONF_TOKEN_URL,
    DEFAULT_ESS_ID,
    DEFAULT_PORT,
)


def create_backend(hass: HomeAssistant, data: Mapping[str, Any]) -> Backend:
    """Return the backend client described by config entry data."""
    kind = BackendKind(data[CONF_BACKEND])
    match kind:
        case BackendKind.FLEXCONNECT:
            return FlexConnectBackend(
                async_get_clientsession(hass),
                data[CONF_HOST],
                data.get(CONF_PORT, DEFAULT_PORT[kind]),
            )
        case BackendKind.FEMS:
            # A FEMS accepts few connections: the backend serialises its requests, so it holds
            # at most one (kept-alive) connection of the shared session.
            return FemsBackend(
                async_get_clientsession(hass),
                data[CONF_HOST],
                data.get(CONF_PORT, DEFAULT_PORT[kind]),
                data[CONF_PASSWORD],
                ess_id=data.get(CONF_ESS_ID, DEFAULT_ESS_ID),
                can_write=data.get(CONF_CAN_WRITE, True),
            )
        case BackendKind.ENODE:
            return EnodeBackend(
                async_get_clientsession(hass),
                data[CONF_CLIENT_ID],
                data[CONF_CLIENT_SECRET],
                environment=data[CONF_ENVIRONMENT],
                api_url=data.get(CONF_API_URL) or None,
                token_url=data.get(CONF_TOKEN_URL) or None,
            )
