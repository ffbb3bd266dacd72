"""Tests of the config flow: set-up per backend, reauth, reconfigure, battery subentries, options.

The backend is a mock (``config_flow.create_backend`` is patched) and ``async_setup_entry`` is
patched, so these tests check the flow alone. An autouse fixture checks every form, menu and
abort the flows produce against ``translations/en.json`` and ``de.json``.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
from typing import Any
from unittest.mock import AsyncMock, MagicMock, patch

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntriesFlowManager,
    ConfigSubentryData,
    ConfigSubentryFlowManager,
    OptionsFlowManager,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import (
    FlowManager,
    FlowResult,
    FlowResultType,
    InvalidData,
    UnknownHandler,
    section,
)
from homeassistant.helpers import config_validation as cv
import probatio
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.battery_bridge.api import (
    AuthError,
    Backend,
    BackendKind,
    BackendSpec,
    BatteryInfo,
    BatterySnapshot,
    BatteryState,
    CannotConnectError,
    Capabilities,
    CommandRejectedError,
    ControlStatus,
    NotSupportedError,
    ProtocolError,
    RateLimitedError,
    UnknownBatteryError,
    WriteProbe,
)
from custom_components.battery_bridge.api.registry import BACKENDS
from custom_components.battery_bridge.backends import create_backend as real_create_backend
from custom_components.battery_bridge.config_flow import (
    CONF_BATTERY_IDS,
    SECTION_ADVANCED,
    BatteryBridgeConfigFlow,
    BatterySubentryFlow,
)
from custom_components.battery_bridge.const import (
    CONF_API_URL,
    CONF_BACKEND,
    CONF_BATTERY_ID,
    CONF_CAN_WRITE,
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_DECLINED_BATTERIES,
    CONF_ENVIRONMENT,
    CONF_ESS_ID,
    CONF_KEEPALIVE_INTERVAL,
    CONF_SCAN_INTERVAL,
    CONF_TOKEN_URL,
    DOMAIN,
    SUBENTRY_BATTERY,
)
from simulator.fems import Firmware
from tests.conftest import StartApp

from .memory_backend import KIND as MEMORY_KIND, register as register_memory_backend

INTEGRATION = Path(__file__).parents[2] / "custom_components" / DOMAIN
FLEX_A = "90D2A30FA3D2AD48525CD255F469C167ECF8292C"
FLEX_B = "5A1C0E7B33D94F2A8E6B1D0C4F7A9E2B3C5D6E71"
FLEX_C = "0123456789ABCDEF0123456789ABCDEF01234567"
ENODE_URL = "http://127.0.0.1:8083"

# Each backend error and the form error it must produce ("base" unless noted in the test).
BACKEND_ERRORS = [
    (CannotConnectError("refused"), "cannot_connect"),
    (RateLimitedError("slow down", retry_after=5), "cannot_connect"),
    (ProtocolError("HTML instead of JSON"), "invalid_response"),
    (NotSupportedError("no REST API here"), "not_supported"),
    (RuntimeError("bug"), "unknown"),
]


# --- Fixtures and helpers ----------------------------------------------------------------------


def _snapshot(battery_id: str, name: str) -> BatterySnapshot:
    return BatterySnapshot(
        info=BatteryInfo(battery_id=battery_id, name=name, manufacturer="Test"),
        state=BatteryState(),
        control=ControlStatus(),
        capabilities=Capabilities(),
    )


KNOWN = {
    FLEX_A: "Battery A",
    FLEX_B: "Battery B",
    FLEX_C: "Battery C",
    "ess0": "FEMS Home 10",
    "ess1": "FEMS Commercial",
}
ENODE_BATTERIES = [
    BatteryInfo(battery_id="enode-1", name="Garage", manufacturer="Tesla"),
    BatteryInfo(battery_id="enode-2", name="Basement", manufacturer="Sonnen"),
]


@pytest.fixture
def backend() -> MagicMock:
    """A backend mock that knows the batteries in KNOWN and has write access."""
    mock = MagicMock(spec=Backend)
    mock.async_validate = AsyncMock(return_value=None)

    async def get_snapshot(battery_id: str) -> BatterySnapshot:
        if battery_id not in KNOWN:
            raise UnknownBatteryError(battery_id)
        return _snapshot(battery_id, KNOWN[battery_id])

    mock.async_get_snapshot = AsyncMock(side_effect=get_snapshot)
    mock.async_list_batteries = AsyncMock(return_value=list(ENODE_BATTERIES))
    mock.async_probe_write = AsyncMock(return_value=True)
    return mock


@pytest.fixture(autouse=True)
def create_backend(backend: MagicMock) -> Iterator[MagicMock]:
    """Make the config flow build the mock backend; only a FEMS one has the write probe."""
    probe = backend.async_probe_write

    def build(hass: HomeAssistant, data: dict[str, Any]) -> MagicMock:
        if data[CONF_BACKEND] == "fems":
            backend.async_probe_write = probe
        elif hasattr(backend, "async_probe_write"):
            del backend.async_probe_write
        return backend

    with patch(
        "custom_components.battery_bridge.config_flow.create_backend", side_effect=build
    ) as mock:
        yield mock


@pytest.fixture(autouse=True)
def setup_entry() -> Iterator[AsyncMock]:
    """Do not run the runtime's set-up; count how often an entry is (re)loaded."""
    with patch("custom_components.battery_bridge.async_setup_entry", return_value=True) as mock:
        yield mock


def _load(name: str) -> dict[str, Any]:
    return json.loads((INTEGRATION / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


TRANSLATIONS = {"en": _load("translations/en.json"), "de": _load("translations/de.json")}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _check_placeholders(text: str, given: dict[str, Any], where: str) -> None:
    missing = set(PLACEHOLDER.findall(text)) - set(given)
    assert not missing, f"{where}: placeholders {missing} are not provided"


def _check_translated(manager: FlowManager[Any, Any, Any], flow: Any, result: FlowResult) -> None:
    """Fail when a form, menu or abort of our flows lacks a translation (en and de).

    Forms must also serialise the way the frontend receives them.
    """
    if result["type"] is FlowResultType.FORM:
        json.dumps(
            probatio.to_field_list(result["data_schema"], custom_serializer=cv.custom_serializer)
        )
    for language, strings in TRANSLATIONS.items():
        if isinstance(manager, ConfigSubentryFlowManager):
            part = strings["config_subentries"][flow.handler[1]]
        elif isinstance(manager, OptionsFlowManager):
            part = strings["options"]
        else:
            assert isinstance(manager, ConfigEntriesFlowManager)
            part = strings["config"]
        placeholders = dict(result.get("description_placeholders") or {})
        where = f"{language}: {result['type']} {result.get('step_id') or result.get('reason')}"
        if result["type"] is FlowResultType.ABORT:
            if result.get("translation_domain") == "homeassistant":
                continue
            text = part["abort"][result["reason"]]
            _check_placeholders(text, placeholders, where)
            continue
        if result["type"] is FlowResultType.MENU:
            step = part["step"][result["step_id"]]
            assert step["title"]
            for option in result["menu_options"]:
                assert step["menu_options"][option], where
            continue
        if result["type"] is not FlowResultType.FORM:
            continue
        step = part["step"][result["step_id"]]
        assert step["title"], where
        assert step["description"], where
        _check_placeholders(step["description"], placeholders, where)
        for key, value in result["data_schema"].schema.items():
            if isinstance(value, section):
                sect = step["sections"][str(key)]
                assert sect["name"], where
                for inner in value.schema.schema:
                    assert sect["data"][str(inner)], f"{where}: {inner}"
                    assert sect["data_description"][str(inner)], f"{where}: {inner}"
                continue
            assert step["data"][str(key)], f"{where}: {key}"
            assert step["data_description"][str(key)], f"{where}: {key}"
        for error in (result.get("errors") or {}).values():
            _check_placeholders(part["error"][error], placeholders, f"{where}: {error}")


@pytest.fixture(autouse=True)
def check_translations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check each flow result for translations as it is produced."""
    original = FlowManager._async_handle_step

    async def handle_step(
        self: FlowManager[Any, Any, Any], flow: Any, step_id: str, user_input: Any
    ) -> Any:
        result = await original(self, flow, step_id, user_input)
        _check_translated(self, flow, result)
        return result

    monkeypatch.setattr(FlowManager, "_async_handle_step", handle_step)


def _entry(
    hass: HomeAssistant,
    data: dict[str, Any],
    batteries: dict[str, str],
    *,
    title: str | None = None,
    options: dict[str, Any] | None = None,
) -> MockConfigEntry:
    defaults = {
        BackendKind.FLEXCONNECT: (
            f"FlexConnect {data.get(CONF_HOST)}",
            f"{data.get(CONF_HOST)}:{data.get(CONF_PORT)}",
        ),
        BackendKind.FEMS: (f"FEMS {data.get(CONF_HOST)}", str(data.get(CONF_HOST))),
        BackendKind.ENODE: (
            f"Enode ({data.get(CONF_ENVIRONMENT)})",
            f"{data.get(CONF_API_URL) or data.get(CONF_ENVIRONMENT)}:{data.get(CONF_CLIENT_ID)}",
        ),
    }
    default_title, unique_id = defaults[BackendKind(data[CONF_BACKEND])]
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=title or default_title,
        unique_id=unique_id,
        data=data,
        options=options,
        subentries_data=[
            ConfigSubentryData(
                data={CONF_BATTERY_ID: battery_id},
                subentry_type=SUBENTRY_BATTERY,
                title=name,
                unique_id=battery_id,
            )
            for battery_id, name in batteries.items()
        ],
    )
    entry.add_to_hass(hass)
    return entry


FLEX_DATA = {CONF_BACKEND: "flexconnect", CONF_HOST: "192.168.1.10", CONF_PORT: 8080}
FEMS_DATA = {
    CONF_BACKEND: "fems",
    CONF_HOST: "192.168.1.20",
    CONF_PORT: 80,
    CONF_PASSWORD: "user",
    CONF_ESS_ID: "ess0",
    CONF_CAN_WRITE: False,
}
ENODE_DATA = {
    CONF_BACKEND: "enode",
    CONF_CLIENT_ID: "client",
    CONF_CLIENT_SECRET: "old-secret",
    CONF_ENVIRONMENT: "sandbox",
}


@pytest.fixture
def flex_entry(hass: HomeAssistant) -> MockConfigEntry:
    """A FlexConnect entry with batteries A and B."""
    return _entry(hass, FLEX_DATA, {FLEX_A: "Battery A", FLEX_B: "Battery B"})


@pytest.fixture
def fems_entry(hass: HomeAssistant) -> MockConfigEntry:
    """A read-only FEMS entry (guest password)."""
    return _entry(hass, FEMS_DATA, {"ess0": "FEMS Home 10"})


@pytest.fixture
def enode_entry(hass: HomeAssistant) -> MockConfigEntry:
    """An Enode entry with the first of the account's two batteries."""
    return _entry(hass, ENODE_DATA, {"enode-1": "Garage"})


async def _start(hass: HomeAssistant, backend_kind: str) -> FlowResult:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": backend_kind}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == backend_kind
    assert result["errors"] == {}
    return result


def _subentries(entry: Any) -> dict[str, tuple[str, str | None, dict[str, Any]]]:
    """Battery subentries by battery id: (title, unique id, data)."""
    return {
        sub.data[CONF_BATTERY_ID]: (sub.title, sub.unique_id, dict(sub.data))
        for sub in entry.subentries.values()
        if sub.subentry_type == SUBENTRY_BATTERY
    }


# --- Menu ------------------------------------------------------------------------------------


async def test_user_step_is_a_menu_of_backends(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    assert list(result["menu_options"]) == ["flexconnect", "fems", "enode"]


# --- FlexConnect -------------------------------------------------------------------------------


FLEX_INPUT = {CONF_HOST: " 192.168.1.10 ", CONF_PORT: 8080}


async def test_flexconnect_creates_entry_with_batteries(
    hass: HomeAssistant, backend: MagicMock, create_backend: MagicMock, setup_entry: AsyncMock
) -> None:
    result = await _start(hass, "flexconnect")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {**FLEX_INPUT, CONF_BATTERY_IDS: f"{FLEX_A.lower()}, {FLEX_B}\n{FLEX_A};"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "FlexConnect 192.168.1.10"
    assert result["data"] == FLEX_DATA
    assert result["result"].unique_id == "192.168.1.10:8080"
    assert _subentries(result["result"]) == {
        FLEX_A: ("Battery A", FLEX_A, {CONF_BATTERY_ID: FLEX_A}),
        FLEX_B: ("Battery B", FLEX_B, {CONF_BATTERY_ID: FLEX_B}),
    }
    create_backend.assert_called_with(hass, FLEX_DATA)
    backend.async_validate.assert_awaited_once()
    assert [c.args for c in backend.async_get_snapshot.await_args_list] == [(FLEX_A,), (FLEX_B,)]
    assert setup_entry.await_count == 1


@pytest.mark.parametrize(("error", "key"), [*BACKEND_ERRORS, (AuthError("no"), "invalid_auth")])
async def test_flexconnect_errors_then_recovery(
    hass: HomeAssistant, backend: MagicMock, error: Exception, key: str
) -> None:
    result = await _start(hass, "flexconnect")
    backend.async_validate.side_effect = error
    user_input = {**FLEX_INPUT, CONF_BATTERY_IDS: FLEX_A}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": key}

    backend.async_validate.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert list(_subentries(result["result"])) == [FLEX_A]


async def test_flexconnect_unexpected_error_is_logged(
    hass: HomeAssistant, backend: MagicMock, caplog: pytest.LogCaptureFixture
) -> None:
    result = await _start(hass, "flexconnect")
    backend.async_get_snapshot.side_effect = RuntimeError("boom")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FLEX_INPUT, CONF_BATTERY_IDS: FLEX_A}
    )
    assert result["errors"] == {"base": "unknown"}
    assert "Unexpected error while checking the flexconnect backend" in caplog.text
    assert "RuntimeError: boom" in caplog.text


async def test_refused_command_at_setup_is_unexpected(
    hass: HomeAssistant, backend: MagicMock, caplog: pytest.LogCaptureFixture
) -> None:
    """A backend error without a form message of its own is "unknown", with a traceback."""
    result = await _start(hass, "flexconnect")
    backend.async_validate.side_effect = CommandRejectedError("refused")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FLEX_INPUT, CONF_BATTERY_IDS: FLEX_A}
    )
    assert result["errors"] == {"base": "unknown"}
    assert "Unexpected error while checking the flexconnect backend" in caplog.text


def _settings(spec: BackendSpec) -> dict[str, Any]:
    """Return settings a spec's client can be built from (no I/O: only to look at it)."""
    return {
        item.key: item.default if item.default is not None else (item.choices or ("x",))[0]
        for item in spec.fields
        if item.required or item.default is not None
    }


def _backend_steps(spec: BackendSpec) -> tuple[set[str], set[str]]:
    """Return the step ids a backend's forms can show: in the config flow, in the subentry flow."""
    kind = spec.kind
    config = {kind, f"reconfigure_{kind}"}
    if spec.lists_batteries:
        config.add(f"{kind}_batteries")
    if isinstance(spec.create(_settings(spec), MagicMock()), WriteProbe):
        config.add(f"{kind}_read_only")
    return config, set() if spec.battery_id_setting is not None else {kind}


def _step_methods(flow_class: type) -> set[str]:
    return {
        name.removeprefix("async_step_")
        for name in vars(flow_class)
        if name.startswith("async_step_")
    }


def test_every_registered_backend_has_its_steps_as_methods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each step a registered spec can show is a real method of the flow class, and only those.

    Home Assistant calls a step by its name (``async_step_<step id>``); the tests-only fourth
    backend (memory_backend.py) brings its own step methods with its registry line.
    """
    built_in = [_backend_steps(spec) for spec in BACKENDS.values()]
    strings = _load("strings.json")
    assert set().union(*(config for config, _ in built_in)) == set(strings["config"]["step"]) - {
        "user",
        "reauth_confirm",
    }
    assert set().union(*(subentry for _, subentry in built_in)) == set(
        strings["config_subentries"][SUBENTRY_BATTERY]["step"]
    )

    register_memory_backend(monkeypatch)
    config_steps: set[str] = {"user", "reauth", "reauth_confirm", "reconfigure"}
    subentry_steps: set[str] = {"user"}
    for spec in BACKENDS.values():
        config, subentry = _backend_steps(spec)
        for step in config:
            assert hasattr(BatteryBridgeConfigFlow, f"async_step_{step}"), step
        for step in subentry:
            assert hasattr(BatterySubentryFlow, f"async_step_{step}"), step
        config_steps |= config
        subentry_steps |= subentry
    assert MEMORY_KIND in BACKENDS
    assert _step_methods(BatteryBridgeConfigFlow) == config_steps
    assert _step_methods(BatterySubentryFlow) == subentry_steps
    for flow_class in (BatteryBridgeConfigFlow, BatterySubentryFlow):
        assert not hasattr(flow_class, "__getattr__")


def test_steps_are_found_for_registered_kinds_only() -> None:
    """An instance has no step for a kind that is not registered, nor any other name."""
    flow, subentry_flow = BatteryBridgeConfigFlow(), BatterySubentryFlow()
    assert hasattr(flow, "async_step_fems_read_only")
    assert not hasattr(subentry_flow, "async_step_fems")  # a setting names its only battery
    for name in (
        "async_step_modbus",
        "async_step_reconfigure_modbus",
        "async_step_fems_x",
        "async_step_flexconnect_read_only",
        "async_step_memory",
        "x",
    ):
        assert not hasattr(flow, name)
        assert not hasattr(subentry_flow, name)


async def test_flexconnect_unknown_battery_is_named(
    hass: HomeAssistant, backend: MagicMock
) -> None:
    result = await _start(hass, "flexconnect")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FLEX_INPUT, CONF_BATTERY_IDS: f"{FLEX_A} DEADBEEF {FLEX_B}"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_BATTERY_IDS: "unknown_battery"}
    assert result["description_placeholders"] == {"battery_id": "DEADBEEF"}

    # an identifier that is not hexadecimal is passed on as typed
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FLEX_INPUT, CONF_BATTERY_IDS: "garage-battery"}
    )
    assert result["description_placeholders"] == {"battery_id": "garage-battery"}
    backend.async_get_snapshot.assert_awaited_with("garage-battery")
    # the form keeps what was typed
    suggested = {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description
    }
    assert suggested[CONF_BATTERY_IDS] == "garage-battery"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FLEX_INPUT, CONF_BATTERY_IDS: f"{FLEX_A} {FLEX_B}"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert list(_subentries(result["result"])) == [FLEX_A, FLEX_B]


async def test_flexconnect_needs_an_identifier(hass: HomeAssistant, backend: MagicMock) -> None:
    result = await _start(hass, "flexconnect")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FLEX_INPUT, CONF_BATTERY_IDS: " ,\n "}
    )
    assert result["errors"] == {CONF_BATTERY_IDS: "no_battery_ids"}
    backend.async_validate.assert_not_awaited()

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FLEX_INPUT, CONF_BATTERY_IDS: FLEX_C}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _subentries(result["result"])[FLEX_C][0] == "Battery C"


async def test_flexconnect_already_configured(
    hass: HomeAssistant, flex_entry: MockConfigEntry, backend: MagicMock
) -> None:
    result = await _start(hass, "flexconnect")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_HOST: "192.168.1.10", CONF_PORT: 8080, CONF_BATTERY_IDS: FLEX_C},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    backend.async_validate.assert_not_awaited()


async def test_flexconnect_unique_id_is_case_insensitive(hass: HomeAssistant) -> None:
    _entry(hass, {**FLEX_DATA, CONF_HOST: "flex.local"}, {})
    result = await _start(hass, "flexconnect")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "Flex.LOCAL", CONF_PORT: 8080, CONF_BATTERY_IDS: FLEX_A}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"

    # another port is another client
    result = await _start(hass, "flexconnect")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "Flex.LOCAL", CONF_PORT: 8081, CONF_BATTERY_IDS: FLEX_A}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == "flex.local:8081"
    assert result["title"] == "FlexConnect Flex.LOCAL"


# --- FEMS --------------------------------------------------------------------------------------


FEMS_INPUT = {
    CONF_HOST: "192.168.1.20",
    CONF_PORT: 80,
    CONF_PASSWORD: "owner",
    SECTION_ADVANCED: {CONF_ESS_ID: "ess0"},
}


async def test_fems_with_write_access(
    hass: HomeAssistant, backend: MagicMock, create_backend: MagicMock
) -> None:
    result = await _start(hass, "fems")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {**FEMS_INPUT, CONF_HOST: "FEMS.local", SECTION_ADVANCED: {CONF_ESS_ID: " "}},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "FEMS FEMS.local"
    assert result["data"] == {
        CONF_BACKEND: "fems",
        CONF_HOST: "FEMS.local",
        CONF_PORT: 80,
        CONF_PASSWORD: "owner",
        CONF_ESS_ID: "ess0",
        CONF_CAN_WRITE: True,
    }
    assert result["result"].unique_id == "fems.local"
    assert _subentries(result["result"]) == {
        "ess0": ("FEMS Home 10", "ess0", {CONF_BATTERY_ID: "ess0"})
    }
    backend.async_probe_write.assert_awaited_once()
    # the write probe ran on a backend built without the can_write flag (i.e. allowed to try)
    assert CONF_CAN_WRITE not in create_backend.call_args.args[1]


async def test_fems_advanced_ess_id(hass: HomeAssistant) -> None:
    result = await _start(hass, "fems")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FEMS_INPUT, SECTION_ADVANCED: {CONF_ESS_ID: "ess1"}}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_ESS_ID] == "ess1"
    assert _subentries(result["result"]) == {
        "ess1": ("FEMS Commercial", "ess1", {CONF_BATTERY_ID: "ess1"})
    }


async def test_fems_read_only_needs_confirmation(hass: HomeAssistant, backend: MagicMock) -> None:
    backend.async_probe_write.return_value = False
    result = await _start(hass, "fems")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FEMS_INPUT, CONF_PASSWORD: "user"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "fems_read_only"
    assert result["description_placeholders"] == {CONF_HOST: "192.168.1.20"}
    assert not result["data_schema"].schema

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_CAN_WRITE] is False
    assert result["data"][CONF_PASSWORD] == "user"
    assert list(_subentries(result["result"])) == ["ess0"]


@pytest.mark.parametrize(("error", "key"), BACKEND_ERRORS)
@pytest.mark.parametrize("method", ["async_validate", "async_get_snapshot", "async_probe_write"])
async def test_fems_errors_then_recovery(
    hass: HomeAssistant, backend: MagicMock, method: str, error: Exception, key: str
) -> None:
    result = await _start(hass, "fems")
    mock = getattr(backend, method)
    good = mock.side_effect
    mock.side_effect = error
    result = await hass.config_entries.flow.async_configure(result["flow_id"], FEMS_INPUT)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": key}

    mock.side_effect = good
    result = await hass.config_entries.flow.async_configure(result["flow_id"], FEMS_INPUT)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_fems_wrong_password(hass: HomeAssistant, backend: MagicMock) -> None:
    result = await _start(hass, "fems")
    backend.async_validate.side_effect = AuthError("1003 Authentication failed")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FEMS_INPUT, CONF_PASSWORD: "wrong"}
    )
    assert result["errors"] == {CONF_PASSWORD: "invalid_auth"}

    backend.async_validate.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], FEMS_INPUT)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_PASSWORD] == "owner"


async def test_fems_unknown_ess(hass: HomeAssistant) -> None:
    result = await _start(hass, "fems")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FEMS_INPUT, SECTION_ADVANCED: {CONF_ESS_ID: "ess9"}}
    )
    assert result["errors"] == {"base": "unknown_battery"}
    assert result["description_placeholders"] == {"battery_id": "ess9"}

    result = await hass.config_entries.flow.async_configure(result["flow_id"], FEMS_INPUT)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_fems_without_the_ess(hass: HomeAssistant, backend: MagicMock) -> None:
    """A FEMS reports a missing ESS component when it is validated."""
    backend.async_validate.side_effect = UnknownBatteryError("the FEMS has no component 'ess3'")
    result = await _start(hass, "fems")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FEMS_INPUT, SECTION_ADVANCED: {CONF_ESS_ID: "ess3"}}
    )
    assert result["errors"] == {"base": "unknown_battery"}
    assert result["description_placeholders"] == {"battery_id": "ess3"}

    backend.async_validate.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], FEMS_INPUT)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_fems_without_the_rest_api(
    hass: HomeAssistant, backend: MagicMock, caplog: pytest.LogCaptureFixture
) -> None:
    """No REST API at the address, or the REST/JSON app is missing: its own message, no traceback."""
    backend.async_validate.side_effect = NotSupportedError("FEMS validate: HTTP 404")
    result = await _start(hass, "fems")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], FEMS_INPUT)
    assert result["errors"] == {"base": "not_supported"}
    assert "Unexpected error" not in caplog.text
    assert "Traceback" not in caplog.text


async def test_fems_already_configured(hass: HomeAssistant, fems_entry: MockConfigEntry) -> None:
    result = await _start(hass, "fems")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**FEMS_INPUT, CONF_HOST: "192.168.1.20", CONF_PORT: 8084}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


# --- Enode -------------------------------------------------------------------------------------


ENODE_INPUT = {
    CONF_CLIENT_ID: " client ",
    CONF_CLIENT_SECRET: "secret",
    CONF_ENVIRONMENT: "sandbox",
    SECTION_ADVANCED: {},
}


async def test_enode_creates_entry_with_chosen_batteries(
    hass: HomeAssistant, backend: MagicMock, create_backend: MagicMock
) -> None:
    result = await _start(hass, "enode")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ENODE_INPUT)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "enode_batteries"
    field = next(iter(result["data_schema"].schema))
    assert field.default() == ["enode-1", "enode-2"]  # all by default
    options = result["data_schema"].schema[field].config["options"]
    assert [(o["value"], o["label"]) for o in options] == [
        ("enode-1", "Garage"),
        ("enode-2", "Basement"),
    ]

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_BATTERY_IDS: ["enode-2"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Enode (sandbox)"
    assert result["data"] == {
        CONF_BACKEND: "enode",
        CONF_CLIENT_ID: "client",
        CONF_CLIENT_SECRET: "secret",
        CONF_ENVIRONMENT: "sandbox",
        CONF_DECLINED_BATTERIES: ["enode-1"],  # left out: not to be added by itself later
    }
    assert result["result"].unique_id == "sandbox:client"
    assert _subentries(result["result"]) == {
        "enode-2": ("Basement", "enode-2", {CONF_BATTERY_ID: "enode-2"})
    }
    create_backend.assert_called_once_with(
        hass, {k: v for k, v in result["data"].items() if k != CONF_DECLINED_BATTERIES}
    )


async def test_enode_custom_urls(hass: HomeAssistant) -> None:
    result = await _start(hass, "enode")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            **ENODE_INPUT,
            SECTION_ADVANCED: {
                CONF_API_URL: f" {ENODE_URL}/ ",
                CONF_TOKEN_URL: f"{ENODE_URL}/oauth2/token",
            },
        },
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_BATTERY_IDS: ["enode-1", "enode-2"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_API_URL] == ENODE_URL
    assert result["data"][CONF_TOKEN_URL] == f"{ENODE_URL}/oauth2/token"
    assert result["result"].unique_id == f"{ENODE_URL}:client"
    assert list(_subentries(result["result"])) == ["enode-1", "enode-2"]


@pytest.mark.parametrize(
    "urls",
    [{CONF_API_URL: "ftp://example.com"}, {CONF_TOKEN_URL: "not a url"}, {CONF_API_URL: "http://"}],
)
async def test_enode_invalid_url(
    hass: HomeAssistant, backend: MagicMock, urls: dict[str, str]
) -> None:
    result = await _start(hass, "enode")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**ENODE_INPUT, SECTION_ADVANCED: urls}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_url"}
    backend.async_validate.assert_not_awaited()

    result = await hass.config_entries.flow.async_configure(result["flow_id"], ENODE_INPUT)
    assert result["step_id"] == "enode_batteries"


@pytest.mark.parametrize(("error", "key"), BACKEND_ERRORS)
@pytest.mark.parametrize("method", ["async_validate", "async_list_batteries"])
async def test_enode_errors_then_recovery(
    hass: HomeAssistant, backend: MagicMock, method: str, error: Exception, key: str
) -> None:
    result = await _start(hass, "enode")
    getattr(backend, method).side_effect = error
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ENODE_INPUT)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": key}

    getattr(backend, method).side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ENODE_INPUT)
    assert result["step_id"] == "enode_batteries"


async def test_enode_wrong_secret(hass: HomeAssistant, backend: MagicMock) -> None:
    result = await _start(hass, "enode")
    backend.async_validate.side_effect = AuthError("invalid_client")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ENODE_INPUT)
    assert result["errors"] == {CONF_CLIENT_SECRET: "invalid_auth"}

    backend.async_validate.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ENODE_INPUT)
    assert result["step_id"] == "enode_batteries"


async def test_enode_account_without_batteries(hass: HomeAssistant, backend: MagicMock) -> None:
    backend.async_list_batteries.return_value = []
    result = await _start(hass, "enode")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ENODE_INPUT)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "no_batteries"}

    backend.async_list_batteries.return_value = ENODE_BATTERIES[:1]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ENODE_INPUT)
    assert result["step_id"] == "enode_batteries"


async def test_enode_must_choose_a_battery(hass: HomeAssistant) -> None:
    result = await _start(hass, "enode")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ENODE_INPUT)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_BATTERY_IDS: []}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "enode_batteries"
    assert result["errors"] == {CONF_BATTERY_IDS: "no_battery_selected"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_BATTERY_IDS: ["enode-1"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert list(_subentries(result["result"])) == ["enode-1"]


async def test_enode_rejects_a_battery_it_did_not_offer(hass: HomeAssistant) -> None:
    result = await _start(hass, "enode")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], ENODE_INPUT)
    with pytest.raises(InvalidData):
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_BATTERY_IDS: ["someone-elses"]}
        )


async def test_enode_already_configured(
    hass: HomeAssistant, enode_entry: MockConfigEntry, backend: MagicMock
) -> None:
    result = await _start(hass, "enode")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**ENODE_INPUT, CONF_CLIENT_ID: "client"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    backend.async_validate.assert_not_awaited()

    # the same client id in production is another client
    result = await _start(hass, "enode")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**ENODE_INPUT, CONF_ENVIRONMENT: "production"}
    )
    assert result["step_id"] == "enode_batteries"


# --- Reauthentication --------------------------------------------------------------------------


async def test_reauth_fems_with_owner_password(
    hass: HomeAssistant,
    fems_entry: MockConfigEntry,
    create_backend: MagicMock,
    setup_entry: AsyncMock,
) -> None:
    result = await fems_entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    assert list(result["data_schema"].schema) == [CONF_PASSWORD]

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "owner"}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert fems_entry.data == {**FEMS_DATA, CONF_PASSWORD: "owner", CONF_CAN_WRITE: True}
    # the entry was read-only: the probe must not be built as a read-only client
    assert CONF_CAN_WRITE not in create_backend.call_args.args[1]
    assert setup_entry.await_count == 1  # reloaded


async def test_reauth_fems_read_only(
    hass: HomeAssistant, backend: MagicMock, setup_entry: AsyncMock
) -> None:
    entry = _entry(hass, {**FEMS_DATA, CONF_CAN_WRITE: True, CONF_PASSWORD: "owner"}, {})
    backend.async_probe_write.return_value = False
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "user"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "fems_read_only"
    assert entry.data[CONF_PASSWORD] == "owner"  # nothing stored before the confirmation

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_PASSWORD] == "user"
    assert entry.data[CONF_CAN_WRITE] is False
    assert setup_entry.await_count == 1


@pytest.mark.parametrize(("error", "key"), [*BACKEND_ERRORS, (AuthError("no"), "invalid_auth")])
async def test_reauth_fems_errors_then_recovery(
    hass: HomeAssistant,
    fems_entry: MockConfigEntry,
    backend: MagicMock,
    error: Exception,
    key: str,
) -> None:
    result = await fems_entry.start_reauth_flow(hass)
    backend.async_validate.side_effect = error
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "owner"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {(CONF_PASSWORD if key == "invalid_auth" else "base"): key}
    assert fems_entry.data[CONF_PASSWORD] == "user"

    backend.async_validate.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "owner"}
    )
    assert result["reason"] == "reauth_successful"
    assert fems_entry.data[CONF_PASSWORD] == "owner"


async def test_reauth_enode(
    hass: HomeAssistant,
    enode_entry: MockConfigEntry,
    create_backend: MagicMock,
    setup_entry: AsyncMock,
) -> None:
    result = await enode_entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    assert list(result["data_schema"].schema) == [CONF_CLIENT_SECRET]
    assert result["description_placeholders"] == {"name": "Enode (sandbox)"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_SECRET: "new-secret"}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert enode_entry.data == {**ENODE_DATA, CONF_CLIENT_SECRET: "new-secret"}
    create_backend.assert_called_with(hass, enode_entry.data)
    assert setup_entry.await_count == 1


@pytest.mark.parametrize(("error", "key"), [*BACKEND_ERRORS, (AuthError("no"), "invalid_auth")])
async def test_reauth_enode_errors_then_recovery(
    hass: HomeAssistant,
    enode_entry: MockConfigEntry,
    backend: MagicMock,
    error: Exception,
    key: str,
) -> None:
    result = await enode_entry.start_reauth_flow(hass)
    backend.async_validate.side_effect = error
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_SECRET: "new-secret"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {(CONF_CLIENT_SECRET if key == "invalid_auth" else "base"): key}
    assert enode_entry.data == ENODE_DATA

    backend.async_validate.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_SECRET: "new-secret"}
    )
    assert result["reason"] == "reauth_successful"
    assert enode_entry.data[CONF_CLIENT_SECRET] == "new-secret"


async def test_reauth_leaves_reloading_to_an_update_listener(
    hass: HomeAssistant, enode_entry: MockConfigEntry, setup_entry: AsyncMock
) -> None:
    listener = AsyncMock()
    enode_entry.add_update_listener(listener)
    result = await enode_entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CLIENT_SECRET: "new-secret"}
    )
    await hass.async_block_till_done()
    assert result["reason"] == "reauth_successful"
    assert enode_entry.data[CONF_CLIENT_SECRET] == "new-secret"
    listener.assert_awaited_once()
    setup_entry.assert_not_awaited()  # no second reload from the flow


async def test_reauth_flexconnect_is_not_supported(
    hass: HomeAssistant, flex_entry: MockConfigEntry
) -> None:
    result = await flex_entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_not_supported"


# --- Reconfiguration ---------------------------------------------------------------------------


def _suggested(result: FlowResult) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in result["data_schema"].schema.items():
        if isinstance(value, section):
            values[str(key)] = {
                str(inner): inner.description["suggested_value"]
                for inner in value.schema.schema
                if inner.description
            }
        elif key.description:
            values[str(key)] = key.description["suggested_value"]
    return values


async def test_reconfigure_flexconnect(
    hass: HomeAssistant,
    flex_entry: MockConfigEntry,
    backend: MagicMock,
    setup_entry: AsyncMock,
) -> None:
    result = await flex_entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure_flexconnect"
    assert _suggested(result) == {CONF_HOST: "192.168.1.10", CONF_PORT: 8080}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "Flex.lan", CONF_PORT: 8081}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert flex_entry.data == {**FLEX_DATA, CONF_HOST: "Flex.lan", CONF_PORT: 8081}
    assert flex_entry.unique_id == "flex.lan:8081"
    assert flex_entry.title == "FlexConnect Flex.lan"
    assert {c.args for c in backend.async_get_snapshot.await_args_list} == {(FLEX_A,), (FLEX_B,)}
    assert setup_entry.await_count == 1


async def test_reconfigure_keeps_a_title_the_user_chose(hass: HomeAssistant) -> None:
    entry = _entry(hass, FLEX_DATA, {FLEX_A: "Battery A"}, title="Cellar batteries")
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "192.168.1.10", CONF_PORT: 8080}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.title == "Cellar batteries"
    assert entry.unique_id == "192.168.1.10:8080"


async def test_reconfigure_flexconnect_to_an_address_in_use(
    hass: HomeAssistant, flex_entry: MockConfigEntry, backend: MagicMock
) -> None:
    _entry(hass, {**FLEX_DATA, CONF_HOST: "other.lan"}, {})
    result = await flex_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "OTHER.lan", CONF_PORT: 8080}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert flex_entry.data == FLEX_DATA
    backend.async_validate.assert_not_awaited()


async def test_reconfigure_flexconnect_to_another_client(
    hass: HomeAssistant, flex_entry: MockConfigEntry
) -> None:
    """The client at the new address does not serve battery B: the entry stays as it was."""
    KNOWN.pop(FLEX_B)
    try:
        result = await flex_entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: "10.0.0.9", CONF_PORT: 8080}
        )
    finally:
        KNOWN[FLEX_B] = "Battery B"
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown_battery"}
    assert result["description_placeholders"] == {"battery_id": FLEX_B}
    assert _suggested(result) == {CONF_HOST: "10.0.0.9", CONF_PORT: 8080}
    assert flex_entry.data == FLEX_DATA

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "10.0.0.9", CONF_PORT: 8080}
    )
    assert result["reason"] == "reconfigure_successful"
    assert flex_entry.unique_id == "10.0.0.9:8080"


@pytest.mark.parametrize(("error", "key"), [*BACKEND_ERRORS, (AuthError("no"), "invalid_auth")])
async def test_reconfigure_flexconnect_errors(
    hass: HomeAssistant,
    flex_entry: MockConfigEntry,
    backend: MagicMock,
    error: Exception,
    key: str,
) -> None:
    result = await flex_entry.start_reconfigure_flow(hass)
    backend.async_validate.side_effect = error
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "10.0.0.9", CONF_PORT: 8080}
    )
    assert result["errors"] == {"base": key}

    backend.async_validate.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "10.0.0.9", CONF_PORT: 8080}
    )
    assert result["reason"] == "reconfigure_successful"


async def test_reconfigure_fems_new_host_keeps_password(
    hass: HomeAssistant,
    fems_entry: MockConfigEntry,
    backend: MagicMock,
    create_backend: MagicMock,
) -> None:
    result = await fems_entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure_fems"
    assert _suggested(result) == {CONF_HOST: "192.168.1.20", CONF_PORT: 80}  # no password
    backend.async_probe_write.return_value = False

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "fems.lan", CONF_PORT: 8084}
    )
    assert result["step_id"] == "fems_read_only"
    assert result["description_placeholders"] == {CONF_HOST: "fems.lan"}
    assert create_backend.call_args.args[1][CONF_PASSWORD] == "user"

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["reason"] == "reconfigure_successful"
    assert fems_entry.data == {**FEMS_DATA, CONF_HOST: "fems.lan", CONF_PORT: 8084}
    assert fems_entry.unique_id == "fems.lan"
    assert fems_entry.title == "FEMS fems.lan"


async def test_reconfigure_fems_owner_password_enables_writing(
    hass: HomeAssistant, fems_entry: MockConfigEntry
) -> None:
    result = await fems_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "192.168.1.20", CONF_PORT: 80, CONF_PASSWORD: "owner"}
    )
    assert result["reason"] == "reconfigure_successful"
    assert fems_entry.data[CONF_PASSWORD] == "owner"
    assert fems_entry.data[CONF_CAN_WRITE] is True
    assert fems_entry.unique_id == "192.168.1.20"


@pytest.mark.parametrize(("error", "key"), [*BACKEND_ERRORS, (AuthError("no"), "invalid_auth")])
async def test_reconfigure_fems_errors(
    hass: HomeAssistant,
    fems_entry: MockConfigEntry,
    backend: MagicMock,
    error: Exception,
    key: str,
) -> None:
    result = await fems_entry.start_reconfigure_flow(hass)
    backend.async_validate.side_effect = error
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "fems.lan", CONF_PORT: 80}
    )
    assert result["errors"] == {(CONF_PASSWORD if key == "invalid_auth" else "base"): key}
    assert _suggested(result) == {CONF_HOST: "fems.lan", CONF_PORT: 80}

    backend.async_validate.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "fems.lan", CONF_PORT: 80, CONF_PASSWORD: "owner"}
    )
    assert result["reason"] == "reconfigure_successful"


async def test_reconfigure_fems_to_an_address_in_use(
    hass: HomeAssistant, fems_entry: MockConfigEntry
) -> None:
    _entry(hass, {**FEMS_DATA, CONF_HOST: "fems2.lan"}, {})
    result = await fems_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "fems2.lan", CONF_PORT: 80}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure_fems_ess_gone(hass: HomeAssistant) -> None:
    entry = _entry(hass, {**FEMS_DATA, CONF_ESS_ID: "ess7"}, {"ess7": "Old"})
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "fems.lan", CONF_PORT: 80}
    )
    assert result["errors"] == {"base": "unknown_battery"}
    assert result["description_placeholders"] == {"battery_id": "ess7"}


async def test_reconfigure_enode_to_custom_api(
    hass: HomeAssistant, enode_entry: MockConfigEntry, setup_entry: AsyncMock
) -> None:
    result = await enode_entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure_enode"
    assert _suggested(result) == {CONF_ENVIRONMENT: "sandbox", SECTION_ADVANCED: {}}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_ENVIRONMENT: "sandbox",
            SECTION_ADVANCED: {CONF_API_URL: ENODE_URL, CONF_TOKEN_URL: f"{ENODE_URL}/token"},
        },
    )
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert enode_entry.data == {
        **ENODE_DATA,
        CONF_API_URL: ENODE_URL,
        CONF_TOKEN_URL: f"{ENODE_URL}/token",
    }
    assert enode_entry.unique_id == f"{ENODE_URL}:client"
    assert setup_entry.await_count == 1


async def test_reconfigure_enode_back_to_production(hass: HomeAssistant) -> None:
    entry = _entry(
        hass,
        {**ENODE_DATA, CONF_API_URL: ENODE_URL, CONF_TOKEN_URL: f"{ENODE_URL}/token"},
        {"enode-1": "Garage"},
        title="My Enode",
    )
    result = await entry.start_reconfigure_flow(hass)
    assert _suggested(result) == {
        CONF_ENVIRONMENT: "sandbox",
        SECTION_ADVANCED: {CONF_API_URL: ENODE_URL, CONF_TOKEN_URL: f"{ENODE_URL}/token"},
    }
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ENVIRONMENT: "production", SECTION_ADVANCED: {}}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {**ENODE_DATA, CONF_ENVIRONMENT: "production"}
    assert entry.unique_id == "production:client"
    assert entry.title == "My Enode"


async def test_reconfigure_enode_where_batteries_are_missing(
    hass: HomeAssistant, backend: MagicMock
) -> None:
    entry = _entry(hass, ENODE_DATA, {"enode-1": "Garage", "enode-9": "Gone", "enode-8": "Too"})
    result = await entry.start_reconfigure_flow(hass)
    user_input = {CONF_ENVIRONMENT: "production", SECTION_ADVANCED: {}}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "batteries_missing"}
    assert result["description_placeholders"] == {"battery_ids": "enode-9, enode-8"}
    assert entry.data == ENODE_DATA

    backend.async_list_batteries.return_value = [
        *ENODE_BATTERIES,
        BatteryInfo(battery_id="enode-9", name="Gone", manufacturer="X"),
        BatteryInfo(battery_id="enode-8", name="Too", manufacturer="X"),
    ]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["reason"] == "reconfigure_successful"


@pytest.mark.parametrize(("error", "key"), [*BACKEND_ERRORS, (AuthError("no"), "invalid_auth")])
async def test_reconfigure_enode_errors(
    hass: HomeAssistant,
    enode_entry: MockConfigEntry,
    backend: MagicMock,
    error: Exception,
    key: str,
) -> None:
    result = await enode_entry.start_reconfigure_flow(hass)
    user_input = {CONF_ENVIRONMENT: "production", SECTION_ADVANCED: {}}
    backend.async_list_batteries.side_effect = error
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["errors"] == {"base": key}
    assert _suggested(result) == {CONF_ENVIRONMENT: "production", SECTION_ADVANCED: {}}

    backend.async_list_batteries.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["reason"] == "reconfigure_successful"


async def test_reconfigure_enode_invalid_url_and_address_in_use(
    hass: HomeAssistant, enode_entry: MockConfigEntry
) -> None:
    _entry(hass, {**ENODE_DATA, CONF_ENVIRONMENT: "production"}, {})
    result = await enode_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_ENVIRONMENT: "sandbox", SECTION_ADVANCED: {CONF_API_URL: "enode.example"}},
    )
    assert result["errors"] == {"base": "invalid_url"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ENVIRONMENT: "production", SECTION_ADVANCED: {}}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert enode_entry.data == ENODE_DATA


# --- Battery subentries ------------------------------------------------------------------------


async def _start_subentry(hass: HomeAssistant, entry: MockConfigEntry) -> FlowResult:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_BATTERY), context={"source": SOURCE_USER}
    )


async def test_subentry_types(
    hass: HomeAssistant,
    flex_entry: MockConfigEntry,
    fems_entry: MockConfigEntry,
    enode_entry: MockConfigEntry,
) -> None:
    assert set(BatteryBridgeConfigFlow.async_get_supported_subentry_types(flex_entry)) == {
        SUBENTRY_BATTERY
    }
    assert set(BatteryBridgeConfigFlow.async_get_supported_subentry_types(enode_entry)) == {
        SUBENTRY_BATTERY
    }
    assert BatteryBridgeConfigFlow.async_get_supported_subentry_types(fems_entry) == {}
    with pytest.raises(UnknownHandler):
        await _start_subentry(hass, fems_entry)


async def test_subentry_flexconnect_add(
    hass: HomeAssistant, flex_entry: MockConfigEntry, create_backend: MagicMock
) -> None:
    result = await _start_subentry(hass, flex_entry)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "flexconnect"

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_BATTERY_ID: "CAFE"}
    )
    assert result["errors"] == {CONF_BATTERY_ID: "unknown_battery"}
    assert result["description_placeholders"] == {"battery_id": "CAFE"}

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_BATTERY_ID: "  "}
    )
    assert result["errors"] == {CONF_BATTERY_ID: "no_battery_ids"}

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_BATTERY_ID: f" {FLEX_C} "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Battery C"
    assert _subentries(flex_entry)[FLEX_C] == ("Battery C", FLEX_C, {CONF_BATTERY_ID: FLEX_C})
    assert len(_subentries(flex_entry)) == 3
    create_backend.assert_called_with(hass, flex_entry.data)


@pytest.mark.parametrize(("error", "key"), [*BACKEND_ERRORS, (AuthError("no"), "invalid_auth")])
async def test_subentry_flexconnect_errors(
    hass: HomeAssistant,
    flex_entry: MockConfigEntry,
    backend: MagicMock,
    error: Exception,
    key: str,
) -> None:
    result = await _start_subentry(hass, flex_entry)
    good = backend.async_get_snapshot.side_effect
    backend.async_get_snapshot.side_effect = error
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_BATTERY_ID: FLEX_C}
    )
    assert result["errors"] == {"base": key}

    backend.async_get_snapshot.side_effect = good
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_BATTERY_ID: FLEX_C}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_subentry_flexconnect_already_added(
    hass: HomeAssistant, flex_entry: MockConfigEntry, backend: MagicMock
) -> None:
    result = await _start_subentry(hass, flex_entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_BATTERY_ID: f" {FLEX_B.lower()}"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    backend.async_get_snapshot.assert_not_awaited()


async def test_subentry_enode_offers_the_rest(
    hass: HomeAssistant, enode_entry: MockConfigEntry
) -> None:
    result = await _start_subentry(hass, enode_entry)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "enode"
    options = next(iter(result["data_schema"].schema.values())).config["options"]
    assert [(o["value"], o["label"]) for o in options] == [("enode-2", "Basement")]

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_BATTERY_ID: "enode-2"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Basement"
    assert _subentries(enode_entry)["enode-2"] == (
        "Basement",
        "enode-2",
        {CONF_BATTERY_ID: "enode-2"},
    )

    # now every battery of the account is added
    result = await _start_subentry(hass, enode_entry)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_more_batteries"


async def test_subentry_enode_added_meanwhile(
    hass: HomeAssistant, enode_entry: MockConfigEntry
) -> None:
    first = await _start_subentry(hass, enode_entry)
    second = await _start_subentry(hass, enode_entry)
    result = await hass.config_entries.subentries.async_configure(
        first["flow_id"], {CONF_BATTERY_ID: "enode-2"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    result = await hass.config_entries.subentries.async_configure(
        second["flow_id"], {CONF_BATTERY_ID: "enode-2"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert len(_subentries(enode_entry)) == 2


@pytest.mark.parametrize(("error", "key"), [*BACKEND_ERRORS, (AuthError("no"), "invalid_auth")])
async def test_subentry_enode_cannot_list(
    hass: HomeAssistant,
    enode_entry: MockConfigEntry,
    backend: MagicMock,
    error: Exception,
    key: str,
) -> None:
    backend.async_list_batteries.side_effect = error
    result = await _start_subentry(hass, enode_entry)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == key

    backend.async_list_batteries.side_effect = None
    result = await _start_subentry(hass, enode_entry)
    assert result["type"] is FlowResultType.FORM


# --- Options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry_fixture", "default", "minimum"),
    [("flex_entry", 15, 5), ("fems_entry", 10, 5), ("enode_entry", 60, 60)],
)
async def test_options_scan_interval(
    hass: HomeAssistant,
    request: pytest.FixtureRequest,
    entry_fixture: str,
    default: int,
    minimum: int,
) -> None:
    entry: MockConfigEntry = request.getfixturevalue(entry_fixture)
    setup_entry: AsyncMock = request.getfixturevalue("setup_entry")
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    schema = result["data_schema"].schema
    scan_key = next(key for key in schema if str(key) == CONF_SCAN_INTERVAL)
    assert scan_key.default() == default
    assert schema[scan_key].validators[0].config["min"] == minimum

    with pytest.raises(InvalidData):
        await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_SCAN_INTERVAL: minimum - 1}
        )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SCAN_INTERVAL: 120.0}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_SCAN_INTERVAL: 120}
    assert isinstance(entry.options[CONF_SCAN_INTERVAL], int)
    assert setup_entry.await_count == 1  # reloaded to apply it


async def test_options_fems_keepalive(hass: HomeAssistant, fems_entry: MockConfigEntry) -> None:
    result = await hass.config_entries.options.async_init(fems_entry.entry_id)
    assert [str(key) for key in result["data_schema"].schema] == [
        CONF_SCAN_INTERVAL,
        CONF_KEEPALIVE_INTERVAL,
    ]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SCAN_INTERVAL: 10, CONF_KEEPALIVE_INTERVAL: 20}
    )
    assert fems_entry.options == {CONF_SCAN_INTERVAL: 10, CONF_KEEPALIVE_INTERVAL: 20}

    # the stored values are shown next time; emptying the keepalive means "automatic"
    result = await hass.config_entries.options.async_init(fems_entry.entry_id)
    assert _suggested(result) == {CONF_SCAN_INTERVAL: 10, CONF_KEEPALIVE_INTERVAL: 20}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SCAN_INTERVAL: 10}
    )
    assert fems_entry.options == {CONF_SCAN_INTERVAL: 10}


async def test_options_flexconnect_and_enode_have_no_keepalive(
    hass: HomeAssistant, flex_entry: MockConfigEntry, enode_entry: MockConfigEntry
) -> None:
    for entry in (flex_entry, enode_entry):
        result = await hass.config_entries.options.async_init(entry.entry_id)
        assert [str(key) for key in result["data_schema"].schema] == [CONF_SCAN_INTERVAL]


async def test_options_leave_reloading_to_an_update_listener(
    hass: HomeAssistant, flex_entry: MockConfigEntry, setup_entry: AsyncMock
) -> None:
    listener = AsyncMock()
    flex_entry.add_update_listener(listener)
    result = await hass.config_entries.options.async_init(flex_entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SCAN_INTERVAL: 30}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert flex_entry.options == {CONF_SCAN_INTERVAL: 30}
    listener.assert_awaited_once()
    setup_entry.assert_not_awaited()


# --- Translation files -------------------------------------------------------------------------


MY_SECTIONS = ("config", "config_subentries", "options")


def _shape(node: Any) -> Any:
    """Keys and placeholders of a translation tree (what en and de must share)."""
    if isinstance(node, dict):
        return {key: _shape(value) for key, value in node.items()}
    return sorted(PLACEHOLDER.findall(node))


def test_strings_json_matches_en_json() -> None:
    strings = _load("strings.json")
    english = TRANSLATIONS["en"]
    for key in MY_SECTIONS:
        assert strings[key] == english[key], key
    assert strings["selector"]["environment"] == english["selector"]["environment"]


def test_german_has_every_english_key_and_placeholder() -> None:
    english, german = TRANSLATIONS["en"], TRANSLATIONS["de"]
    for key in MY_SECTIONS:
        assert _shape(german[key]) == _shape(english[key]), key
    assert _shape(german["selector"]["environment"]) == _shape(english["selector"]["environment"])
    assert (
        german["config"]["step"]["fems_read_only"]["description"]
        != (english["config"]["step"]["fems_read_only"]["description"])
    )


def test_environment_options_are_translated() -> None:
    for strings in TRANSLATIONS.values():
        assert set(strings["selector"]["environment"]["options"]) == {"production", "sandbox"}


def test_read_only_explanation_names_the_write_app_and_the_fix() -> None:
    text = TRANSLATIONS["en"]["config"]["step"]["fems_read_only"]["description"]
    assert "FEMS App REST/JSON Schreibzugriff" in text
    assert "owner password" in text
    assert "Reconfigure" in text


# --- Against the simulators (real clients over loopback) -----------------------------------------


@pytest.mark.usefixtures("socket_enabled")
async def test_fems_simulator_guest_then_owner(
    hass: HomeAssistant, create_backend: MagicMock, start_app: StartApp, fems_firmware: Firmware
) -> None:
    """The real FEMS client, both firmware families: a wrong password is invalid_auth, the guest
    password gives a read-only entry (after the note), the owner one writes."""
    from simulator.fems import create_app

    create_backend.side_effect = real_create_backend
    server = await start_app(create_app(firmware=fems_firmware))
    address = {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: server.port,
        SECTION_ADVANCED: {CONF_ESS_ID: "ess0"},
    }

    result = await _start(hass, "fems")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**address, CONF_PASSWORD: "wrong"}
    )
    assert result["errors"] == {CONF_PASSWORD: "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**address, CONF_PASSWORD: "user"}
    )
    assert result["step_id"] == "fems_read_only"
    assert result["description_placeholders"] == {CONF_HOST: "127.0.0.1"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.data[CONF_CAN_WRITE] is False
    assert entry.data[CONF_PASSWORD] == "user"

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    with patch("custom_components.battery_bridge.async_unload_entry", return_value=True):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {CONF_HOST: "127.0.0.1", CONF_PORT: server.port, CONF_PASSWORD: "owner"},
        )
        await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_CAN_WRITE] is True
    assert entry.data[CONF_PASSWORD] == "owner"


@pytest.mark.usefixtures("socket_enabled")
@pytest.mark.parametrize(
    "options",
    [{"write_app": False}, {"reactive_power": False}],
    ids=["read-only-rest-app", "unmanaged-ess"],
)
async def test_fems_simulator_without_write_access(
    hass: HomeAssistant,
    create_backend: MagicMock,
    start_app: StartApp,
    fems_firmware: Firmware,
    options: dict[str, bool],
) -> None:
    """The owner password on a read-only REST app, or an ESS without the probe channel: a
    read-only entry after the note, in both firmware families."""
    from simulator.fems import SIM, create_app

    create_backend.side_effect = real_create_backend
    app = create_app(firmware=fems_firmware, **options)
    server = await start_app(app)
    result = await _start(hass, "fems")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_HOST: "127.0.0.1",
            CONF_PORT: server.port,
            CONF_PASSWORD: "owner",
            SECTION_ADVANCED: {CONF_ESS_ID: "ess0"},
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "fems_read_only"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_CAN_WRITE] is False
    assert list(_subentries(result["result"])) == ["ess0"]
    assert app[SIM].written == {}


@pytest.mark.usefixtures("socket_enabled")
async def test_fems_simulator_unknown_ess(
    hass: HomeAssistant, create_backend: MagicMock, start_app: StartApp, fems_firmware: Firmware
) -> None:
    from simulator.fems import create_app

    create_backend.side_effect = real_create_backend
    server = await start_app(create_app(firmware=fems_firmware))
    result = await _start(hass, "fems")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_HOST: "127.0.0.1",
            CONF_PORT: server.port,
            CONF_PASSWORD: "owner",
            SECTION_ADVANCED: {CONF_ESS_ID: "ess9"},
        },
    )
    assert result["errors"] == {"base": "unknown_battery"}
    assert result["description_placeholders"] == {"battery_id": "ess9"}


@pytest.mark.usefixtures("socket_enabled")
async def test_flexconnect_simulator(
    hass: HomeAssistant, create_backend: MagicMock, start_app: StartApp
) -> None:
    """The real FlexConnect client: unknown SKIs are named, known ones become subentries."""
    from simulator.flexconnect import create_app

    create_backend.side_effect = real_create_backend
    server = await start_app(create_app(batteries=[FLEX_A, FLEX_B]))
    address = {CONF_HOST: "127.0.0.1", CONF_PORT: server.port}

    result = await _start(hass, "flexconnect")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**address, CONF_BATTERY_IDS: f"{FLEX_A.lower()}\n{FLEX_C}"}
    )
    assert result["errors"] == {CONF_BATTERY_IDS: "unknown_battery"}
    assert result["description_placeholders"] == {"battery_id": FLEX_C}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**address, CONF_BATTERY_IDS: f"{FLEX_A.lower()}\n{FLEX_B}"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert list(_subentries(result["result"])) == [FLEX_A, FLEX_B]
