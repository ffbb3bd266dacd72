"""Tests of the integration's set-up and manifest."""

from __future__ import annotations

import json
from pathlib import Path
import re

from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration
from homeassistant.setup import async_setup_component

from custom_components.battery_bridge.const import DOMAIN

MANIFEST = Path(__file__).parents[2] / "custom_components" / DOMAIN / "manifest.json"


async def test_async_setup(hass: HomeAssistant) -> None:
    """The domain sets up without configuration."""
    assert await async_setup_component(hass, DOMAIN, {})
    assert DOMAIN in hass.config.components


async def test_manifest_is_valid(hass: HomeAssistant) -> None:
    """The manifest has the keys hassfest wants, in its order, and a valid version."""
    raw = json.loads(MANIFEST.read_text(encoding="utf-8"))
    keys = list(raw)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert raw["domain"] == DOMAIN
    assert raw["name"] == "Battery Bridge"
    assert re.fullmatch(r"\d+\.\d+\.\d+", raw["version"])
    for key in ("codeowners", "config_flow", "documentation", "iot_class", "issue_tracker"):
        assert key in raw
    integration = await async_get_integration(hass, DOMAIN)
    assert integration.domain == DOMAIN
    assert integration.version is not None
    assert str(integration.version) == raw["version"]
    assert integration.config_flow is True
