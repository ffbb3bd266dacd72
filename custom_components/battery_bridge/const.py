"""Constants for Battery Bridge."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "battery_bridge"
LOGGER = logging.getLogger(__package__)

# Config entry data: the backend spec's settings (api/<backend>.py); names used on this side
CONF_BACKEND: Final = "backend"  # a backend kind (api/registry.py)
CONF_ESS_ID: Final = "ess_id"  # FEMS: the ESS component id, default "ess0"
CONF_CAN_WRITE: Final = "can_write"  # the write probe (FEMS) found write access (else read-only)
CONF_CLIENT_ID: Final = "client_id"  # Enode
CONF_CLIENT_SECRET: Final = "client_secret"  # noqa: S105 - a key name; Enode
CONF_ENVIRONMENT: Final = "environment"  # Enode: "production" | "sandbox"
CONF_API_URL: Final = "api_url"  # Enode, advanced: custom API base URL
CONF_TOKEN_URL: Final = "token_url"  # noqa: S105 - a key name; Enode, advanced
# host, port and password use homeassistant.const CONF_HOST, CONF_PORT, CONF_PASSWORD.

# Config subentries: one per battery, data {CONF_BATTERY_ID: "<backend battery id>"}
SUBENTRY_BATTERY: Final = "battery"
CONF_BATTERY_ID: Final = "battery_id"
# Entry data (Enode): battery ids the user did not choose or removed; never added by themselves.
CONF_DECLINED_BATTERIES: Final = "declined_batteries"

# Options
CONF_SCAN_INTERVAL: Final = "scan_interval"  # seconds
CONF_KEEPALIVE_INTERVAL: Final = "keepalive_interval"  # seconds, FEMS only
