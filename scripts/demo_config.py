"""Write the demo Home Assistant configuration: config entries for the three simulators.

Called by scripts/develop with the simulators running. Each entry is built through its backend's
spec (client, unique id, title), its batteries found as the config flow finds them; the
``config/.storage`` files are written only when missing, so UI changes survive the next start.

Usage: python scripts/demo_config.py CONFIG_DIR --flexconnect-port N --flexconnect-battery ID
[--flexconnect-battery ID ...] --fems-port N --enode-port N
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

from custom_components.battery_bridge.api import BackendSpec, BatteryInfo, WriteProbe
from custom_components.battery_bridge.api.registry import backend_spec
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


def _settings(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Return the config entry settings of the three simulated backends, as the flow stores them."""
    enode_url = f"http://{LOCALHOST}:{args.enode_port}"
    return [
        {CONF_BACKEND: "flexconnect", CONF_HOST: LOCALHOST, CONF_PORT: args.flexconnect_port},
        {
            CONF_BACKEND: "fems",
            CONF_HOST: LOCALHOST,
            CONF_PORT: args.fems_port,
            CONF_PASSWORD: FEMS_PASSWORD,
            CONF_ESS_ID: "ess0",
        },
        {
            CONF_BACKEND: "enode",
            CONF_CLIENT_ID: ENODE_CLIENT_ID,
            CONF_CLIENT_SECRET: ENODE_CLIENT_SECRET,
            CONF_ENVIRONMENT: "sandbox",
            CONF_API_URL: enode_url,
            CONF_TOKEN_URL: f"{enode_url}/oauth2/token",
        },
    ]


async def _entry(
    session: aiohttp.ClientSession, data: dict[str, Any], typed_ids: list[str]
) -> ConfigEntry:
    """Build the entry the config flow would create: its batteries found as the flow finds them."""
    spec: BackendSpec = backend_spec(data[CONF_BACKEND])
    backend = spec.create(data, session)
    if spec.lists_batteries:
        batteries: list[BatteryInfo] = await backend.async_list_batteries()
    else:
        ids = [data[spec.battery_id_setting]] if spec.battery_id_setting else typed_ids
        batteries = [
            (await backend.async_get_snapshot(spec.normalize_battery_id(i))).info for i in ids
        ]
    if isinstance(backend, WriteProbe):
        data = {**data, CONF_CAN_WRITE: await backend.async_probe_write()}
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
        title=spec.title(data),
        unique_id=spec.unique_id(data),
        version=1,
    )


async def _entries(args: argparse.Namespace) -> list[ConfigEntry]:
    async with aiohttp.ClientSession() as session:
        return [await _entry(session, data, args.flexconnect_battery) for data in _settings(args)]


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
        entries = asyncio.run(_entries(args))
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
