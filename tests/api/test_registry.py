"""The backend specs and their registry: each backend module describes itself as data."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import MagicMock

import pytest

from custom_components.battery_bridge.api import (
    BackendKind,
    BackendSpec,
    ControlMode,
    FieldType,
    OverrideMode,
    WriteProbe,
)
from custom_components.battery_bridge.api.enode import EnodeBackend
from custom_components.battery_bridge.api.fems import FemsBackend
from custom_components.battery_bridge.api.flexconnect import FlexConnectBackend
from custom_components.battery_bridge.api.registry import BACKENDS, backend_spec

SESSION = MagicMock()


def test_registry_holds_every_backend_in_menu_order() -> None:
    assert list(BACKENDS) == ["flexconnect", "fems", "enode"]
    assert all(backend_spec(kind).kind == kind for kind in BackendKind)
    with pytest.raises(KeyError):
        backend_spec("modbus")


@pytest.mark.parametrize("spec", list(BACKENDS.values()), ids=list(BACKENDS))
def test_specs_are_consistent(spec: BackendSpec) -> None:
    keys = [item.key for item in spec.fields]
    assert len(keys) == len(set(keys))
    assert sum(item.secret for item in spec.fields) <= 1
    assert all(item.type is FieldType.PASSWORD for item in spec.fields if item.secret)
    assert all(item.choices for item in spec.fields if item.type is FieldType.CHOICE)
    assert spec.battery_id_setting is None or spec.battery_id_setting in keys
    assert not (spec.lists_batteries and spec.battery_id_setting)
    assert spec.min_poll_interval <= spec.poll_interval
    assert spec.secret is None or spec.secret.key in spec.redact
    # an address names the owner's network: diagnostics must not show it either
    assert all(item.key in spec.redact for item in spec.fields if item.type is FieldType.HOST)


def test_flexconnect_spec() -> None:
    spec = backend_spec(BackendKind.FLEXCONNECT)
    backend = spec.create({"host": "fe80::1", "port": 8081}, SESSION)
    assert isinstance(backend, FlexConnectBackend)
    assert backend.base_url == "http://[fe80::1]:8081"
    default = spec.create({"host": "flex.lan"}, SESSION)
    assert isinstance(default, FlexConnectBackend)
    assert default.base_url == "http://flex.lan:8080"
    assert not isinstance(backend, WriteProbe)
    assert spec.unique_id({"host": "Flex.LAN", "port": 8080}) == "flex.lan:8080"
    assert spec.title({"host": "Flex.LAN", "port": 8080}) == "FlexConnect Flex.LAN"
    assert spec.normalize_battery_id(" 90d2a3 ") == "90D2A3"  # SKIs: upper-case
    assert spec.normalize_battery_id(" garage-battery ") == "garage-battery"
    assert spec.secret is None
    assert not spec.lists_batteries
    assert spec.pending_poll_interval == timedelta(seconds=5)
    assert spec.control_policy.mode_keeps_setpoint


def test_fems_spec() -> None:
    spec = backend_spec(BackendKind.FEMS)
    backend = spec.create({"host": "fems.lan", "password": "user"}, SESSION)
    assert isinstance(backend, FemsBackend)
    assert isinstance(backend, WriteProbe)
    assert str(backend._rest.base) == "http://fems.lan/rest"  # port 80
    assert backend._ess_id == "ess0"
    assert backend._can_write is True
    read_only = spec.create(
        {
            "host": "fems.lan",
            "port": 8084,
            "password": "user",
            "ess_id": "ess1",
            "can_write": False,
        },
        SESSION,
    )
    assert isinstance(read_only, FemsBackend)
    assert (read_only._ess_id, read_only._can_write) == ("ess1", False)
    assert spec.unique_id({"host": "FEMS.lan"}) == "fems.lan"
    assert spec.title({"host": "FEMS.lan"}) == "FEMS FEMS.lan"
    assert spec.battery_id_setting == "ess_id"
    assert not spec.battery_ids_unique
    assert spec.commands_expire
    assert spec.pending_poll_interval is None
    assert spec.control_policy.release_mode is ControlMode.AUTO


def test_enode_spec() -> None:
    spec = backend_spec(BackendKind.ENODE)
    settings = {"client_id": "c", "client_secret": "s", "environment": "sandbox"}
    backend = spec.create(settings, SESSION)
    assert isinstance(backend, EnodeBackend)
    assert backend.api_url == "https://enode-api.sandbox.enode.io"
    custom = spec.create({**settings, "api_url": "http://127.0.0.1:8083", "token_url": ""}, SESSION)
    assert isinstance(custom, EnodeBackend)
    assert custom.api_url == "http://127.0.0.1:8083"
    assert custom.token_url == "https://oauth.sandbox.enode.io/oauth2/token"  # noqa: S105
    assert spec.unique_id(settings) == "sandbox:c"
    assert spec.unique_id({**settings, "api_url": "http://sim"}) == "http://sim:c"
    assert spec.title(settings) == "Enode (sandbox)"
    assert spec.lists_batteries
    assert {"userId", "latitude", "longitude", "client_id"} <= spec.redact
    assert OverrideMode.HOLD not in spec.control_policy.override_modes
