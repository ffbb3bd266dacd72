"""Constants for Battery Bridge."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

from .api import BackendKind

DOMAIN: Final = "battery_bridge"
LOGGER = logging.getLogger(__package__)

# Config entry data
CONF_BACKEND: Final = "backend"  # a BackendKind value
CONF_ESS_ID: Final = "ess_id"  # FEMS: the ESS component id, default "ess0"
CONF_CAN_WRITE: Final = "can_write"  # FEMS: write access was found at set-up (else read-only)
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

DEFAULT_PORT: Final = {BackendKind.FLEXCONNECT: 8080, BackendKind.FEMS: 80}
DEFAULT_ESS_ID: Final = "ess0"
DEFAULT_SCAN_INTERVAL: Final = {
    BackendKind.FEMS: timedelta(seconds=10),
    BackendKind.FLEXCONNECT: timedelta(seconds=15),
    BackendKind.ENODE: timedelta(seconds=60),
}
MIN_SCAN_INTERVAL: Final = {
    BackendKind.FEMS: timedelta(seconds=5),
    BackendKind.FLEXCONNECT: timedelta(seconds=5),
    BackendKind.ENODE: timedelta(seconds=60),
}
# While a command is pending (FlexConnect: current != desired; Enode: the Action is PENDING) the
# battery is polled this often, so its outcome shows soon; FEMS applies writes at once.
PENDING_SCAN_INTERVAL: Final = {
    BackendKind.FLEXCONNECT: timedelta(seconds=5),
    BackendKind.ENODE: timedelta(seconds=15),
}
DEFAULT_FEMS_API_TIMEOUT: Final = 60.0  # seconds, when the FEMS does not expose its own
ENODE_ENVIRONMENTS: Final = ("production", "sandbox")
