"""Write the demo Home Assistant configuration: config entries for the three simulators.

Called by scripts/develop with the simulators already running. It asks the simulators for their
batteries through the integration's own client layer, then writes ``config/.storage`` files (config
entries with one subentry per battery, onboarding done) unless they already exist, so changes a
developer makes in the UI survive the next start.

Usage: python scripts/demo_config.py CONFIG_DIR --flexconnect-port N --fems-port N --enode-port N
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
import sys
from types import MappingProxyType
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from homeassistant.config_entries import (
    SOURCE_USER,
    STORAGE_VERSION,
    STORAGE_VERSION_MINOR,
    ConfigEntry,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT
from homeassistant.helpers.json import JSONEncoder

from custom_components.battery_bridge.api import BatteryInfo
from custom_components.battery_bridge.api.enode import EnodeBackend
from custom_components.battery_bridge.api.fems import FemsBackend
from custom_components.battery_bridge.api.flexconnect import FlexConnectBackend
from custom_components.battery_bridge.const import (
    CONF_API_URL,
    CONF_BACKEND,
    CONF_BATTERY_ID,
    CONF_CAN_WRITE,
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_ENVIRONMENT,
    CONF_ESS_ID,
    CONF_TOKEN_URL,
    DOMAIN,
    SUBENTRY_BATTERY,
)

LOCALHOST = "127.0.0.1"
ENODE_CLIENT_ID = "demo-client"
ENODE_CLIENT_SECRET = "demo-secret"  # noqa: S105 - the simulator's demo credentials
FEMS_PASSWORD = "owner"  # noqa: S105 - the OpenEMS default owner password, simulated


def _entry(
    title: str, unique_id: str, data: dict[str, Any], batteries: list[BatteryInfo]
) -> ConfigEntry:
    return ConfigEntry(
        data=data,
        discovery_keys=MappingProxyType({}),
        domain=DOMAIN,
        minor_version=1,
        options={},
        source=SOURCE_USER,
        subentries_data=[
            {
                "data": {CONF_BATTERY_ID: info.battery_id},
                "subentry_type": SUBENTRY_BATTERY,
                "title": info.name,
                "unique_id": info.battery_id,
            }
            for info in batteries
        ],
        title=title,
        unique_id=unique_id,
        version=1,
    )


async def _entries(args: argparse.Namespace, flexconnect_ids: list[str]) -> list[ConfigEntry]:
    async with aiohttp.ClientSession() as session:
        flex = FlexConnectBackend(session, LOCALHOST, args.flexconnect_port)
        flex_batteries = [(await flex.async_get_snapshot(bid)).info for bid in flexconnect_ids]
        fems = FemsBackend(session, LOCALHOST, args.fems_port, FEMS_PASSWORD)
        fems_batteries = await fems.async_list_batteries()
        enode_url = f"http://{LOCALHOST}:{args.enode_port}"
        enode = EnodeBackend(
            session,
            ENODE_CLIENT_ID,
            ENODE_CLIENT_SECRET,
            environment="sandbox",
            api_url=enode_url,
            token_url=f"{enode_url}/oauth2/token",
        )
        enode_batteries = await enode.async_list_batteries()
    return [
        _entry(
            f"FlexConnect {LOCALHOST}",
            f"{LOCALHOST}:{args.flexconnect_port}",
            {CONF_BACKEND: "flexconnect", CONF_HOST: LOCALHOST, CONF_PORT: args.flexconnect_port},
            flex_batteries,
        ),
        _entry(
            f"FEMS {LOCALHOST}",
            LOCALHOST,
            {
                CONF_BACKEND: "fems",
                CONF_HOST: LOCALHOST,
                CONF_PORT: args.fems_port,
                CONF_PASSWORD: FEMS_PASSWORD,
                CONF_ESS_ID: "ess0",
                CONF_CAN_WRITE: True,
            },
            fems_batteries,
        ),
        _entry(
            "Enode (sandbox)",
            f"{enode_url}:{ENODE_CLIENT_ID}",
            {
                CONF_BACKEND: "enode",
                CONF_CLIENT_ID: ENODE_CLIENT_ID,
                CONF_CLIENT_SECRET: ENODE_CLIENT_SECRET,
                CONF_ENVIRONMENT: "sandbox",
                CONF_API_URL: enode_url,
                CONF_TOKEN_URL: f"{enode_url}/oauth2/token",
            },
            enode_batteries,
        ),
    ]


def _write_store(path: Path, key: str, version: int, minor: int, data: Any) -> None:
    payload = {"version": version, "minor_version": minor, "key": key, "data": data}
    path.write_text(json.dumps(payload, cls=JSONEncoder, indent=2), encoding="utf-8")


def main() -> int:
    """Write the demo storage files that do not exist yet."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config_dir", type=Path)
    parser.add_argument("--flexconnect-port", type=int, required=True)
    parser.add_argument("--flexconnect-battery", action="append", required=True)
    parser.add_argument("--fems-port", type=int, required=True)
    parser.add_argument("--enode-port", type=int, required=True)
    args = parser.parse_args()
    storage = args.config_dir / ".storage"
    storage.mkdir(parents=True, exist_ok=True)

    entries_file = storage / "core.config_entries"
    if not entries_file.exists():
        entries = asyncio.run(_entries(args, args.flexconnect_battery))
        _write_store(
            entries_file,
            "core.config_entries",
            STORAGE_VERSION,
            STORAGE_VERSION_MINOR,
            {"entries": [entry.as_dict() for entry in entries]},
        )
        print(f"demo: wrote {len(entries)} Battery Bridge config entries")
    onboarding = storage / "onboarding"
    if not onboarding.exists():
        steps = ["user", "core_config", "analytics", "integration"]
        _write_store(onboarding, "onboarding", 4, 1, {"done": steps})
    return 0


if __name__ == "__main__":
    sys.exit(main())
