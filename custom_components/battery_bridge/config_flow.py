"""Config flow for Battery Bridge: one config entry per backend client, one subentry per battery.

The config entry describes how to reach a backend (a FlexConnect client's host and port, a FEMS
with its password, an Enode API client); each battery it serves is a config subentry of type
``battery`` with data ``{"battery_id": ...}``, unique id = battery id and title = battery name.

Why subentries and not a list of battery ids in the options: a subentry is a first-class object
in Home Assistant. The UI lists the batteries under their entry, removes one with its device and
entities (no custom options step needed), and the device registry ties each battery's device to
its subentry. Adding a battery later is a subentry flow that validates the new battery against
the backend, like the first set-up did. Credentials stay in one place (the entry), so one
reauthentication covers every battery of an Enode account. The options flow is left for what
options are meant for: how often to poll and how often to rewrite a FEMS setpoint.

Unique ids (so the same thing cannot be added twice):

* FlexConnect: ``"<host>:<port>"`` lower-cased (one FlexCloudClient per address);
* FEMS: the host lower-cased. The OpenEMS REST API exposes no serial number or other stable
  identity, so the address is the best key there is; reconfiguring the host moves the unique id.
* Enode: ``"<environment>:<client id>"``, or ``"<API URL>:<client id>"`` when a custom API URL is
  set (the demo and the tests point the client at a simulator).

Reloading: reauthentication, reconfiguration and options changes reload the entry from here;
if the runtime has registered an update listener, that listener does the reloading instead
(Home Assistant does not want both). Subentry additions and removals reach the runtime as entry
updates, like removals made in the UI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
import re
from typing import Any, Protocol, cast, override
from urllib.parse import urlsplit

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryData,
    ConfigSubentryFlow,
    OptionsFlowWithReload,
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio

from .api import (
    AuthError,
    Backend,
    BackendKind,
    BatteryInfo,
    CannotConnectError,
    ProtocolError,
    UnknownBatteryError,
)
from .backends import create_backend
from .const import (
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
    DEFAULT_ESS_ID,
    DEFAULT_PORT,
    DEFAULT_SCAN_INTERVAL,
    DOMAIN,
    ENODE_ENVIRONMENTS,
    LOGGER,
    MIN_SCAN_INTERVAL,
    SUBENTRY_BATTERY,
)
from .coordinator import configured_battery_ids

# Form fields that are not stored as such
CONF_BATTERY_IDS = "battery_ids"  # FlexConnect: identifiers (text); Enode: the chosen batteries
SECTION_ADVANCED = "advanced"

MAX_INTERVAL_S = 3600
MIN_KEEPALIVE_S = 5

_ID_SEPARATORS = re.compile(r"[\s,;]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")

_TEXT = TextSelector()
_HOST = TextSelector(TextSelectorConfig(autocomplete="off"))
_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_URL = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))
_PORT = probatio.All(
    NumberSelector(NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)),
    probatio.Coerce(int),
)
_ENVIRONMENT = SelectSelector(
    SelectSelectorConfig(
        options=list(ENODE_ENVIRONMENTS),
        translation_key=CONF_ENVIRONMENT,
        mode=SelectSelectorMode.LIST,
    )
)


def _seconds(minimum: int) -> probatio.All[int]:
    return probatio.All(
        NumberSelector(
            NumberSelectorConfig(
                min=minimum,
                max=MAX_INTERVAL_S,
                step=1,
                mode=NumberSelectorMode.BOX,
                unit_of_measurement=UnitOfTime.SECONDS,
            )
        ),
        probatio.Coerce(int),
    )


def _address_schema(kind: BackendKind) -> dict[probatio.Marker, Any]:
    return {
        probatio.Required(CONF_HOST): _HOST,
        probatio.Required(CONF_PORT, default=DEFAULT_PORT[kind]): _PORT,
    }


FLEXCONNECT_SCHEMA = probatio.Schema(
    {
        **_address_schema(BackendKind.FLEXCONNECT),
        probatio.Required(CONF_BATTERY_IDS): TextSelector(TextSelectorConfig(multiline=True)),
    }
)
FEMS_SCHEMA = probatio.Schema(
    {
        **_address_schema(BackendKind.FEMS),
        probatio.Required(CONF_PASSWORD): _PASSWORD,
        probatio.Required(SECTION_ADVANCED): section(
            probatio.Schema({probatio.Required(CONF_ESS_ID, default=DEFAULT_ESS_ID): _TEXT}),
            {"collapsed": True},
        ),
    }
)
FEMS_RECONFIGURE_SCHEMA = probatio.Schema(
    {**_address_schema(BackendKind.FEMS), probatio.Optional(CONF_PASSWORD): _PASSWORD}
)
ENODE_URLS_SECTION = section(
    probatio.Schema(
        {probatio.Optional(CONF_API_URL): _URL, probatio.Optional(CONF_TOKEN_URL): _URL}
    ),
    {"collapsed": True},
)
ENODE_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_CLIENT_ID): _TEXT,
        probatio.Required(CONF_CLIENT_SECRET): _PASSWORD,
        probatio.Required(CONF_ENVIRONMENT, default=ENODE_ENVIRONMENTS[0]): _ENVIRONMENT,
        probatio.Required(SECTION_ADVANCED): ENODE_URLS_SECTION,
    }
)
ENODE_RECONFIGURE_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_ENVIRONMENT): _ENVIRONMENT,
        probatio.Required(SECTION_ADVANCED): ENODE_URLS_SECTION,
    }
)
SECRET_KEY: dict[BackendKind, str] = {
    BackendKind.FEMS: CONF_PASSWORD,
    BackendKind.ENODE: CONF_CLIENT_SECRET,
}


class _WriteProbe(Protocol):
    """What a FEMS backend offers beyond the Backend protocol."""

    async def async_probe_write(self) -> bool:
        """Return True when writes are possible (changes nothing on the battery)."""


class _UnknownBatteryIdError(Exception):
    """A battery identifier the backend does not know (carries the identifier)."""

    def __init__(self, battery_id: str) -> None:
        super().__init__(battery_id)
        self.battery_id = battery_id


@dataclass(slots=True)
class _Check:
    """The outcome of talking to a backend: form errors and their placeholders."""

    errors: dict[str, str] = field(default_factory=dict)
    placeholders: dict[str, str] = field(default_factory=dict)


async def _async_check(
    hass: HomeAssistant,
    data: Mapping[str, Any],
    probe: Callable[[Backend], Awaitable[None]],
    *,
    auth_field: str = "base",
    battery_field: str = "base",
) -> _Check:
    """Build the backend for ``data``, run ``probe`` on it and turn failures into form errors."""
    check = _Check()
    try:
        await probe(create_backend(hass, data))
    except _UnknownBatteryIdError as err:
        check.errors[battery_field] = "unknown_battery"
        check.placeholders["battery_id"] = err.battery_id
    except AuthError:
        check.errors[auth_field] = "invalid_auth"
    except CannotConnectError:
        check.errors["base"] = "cannot_connect"
    except ProtocolError:
        check.errors["base"] = "invalid_response"
    except Exception:  # noqa: BLE001 - anything else is a bug worth a traceback in the log
        LOGGER.exception("Unexpected error while checking the %s backend", data[CONF_BACKEND])
        check.errors["base"] = "unknown"
    return check


async def _async_battery_info(backend: Backend, battery_id: str) -> BatteryInfo:
    """Poll one battery, so an identifier is known to exist before it is stored."""
    try:
        snapshot = await backend.async_get_snapshot(battery_id)
    except UnknownBatteryError as err:
        raise _UnknownBatteryIdError(battery_id) from err
    return snapshot.info


async def _async_validate_only(backend: Backend) -> None:
    await backend.async_validate()


def _flexconnect_id(text: str) -> str:
    """Return a FlexConnect battery id as stored.

    SKIs (hexadecimal) are case-insensitive: they are kept upper-case, as FlexHome.Energy writes
    them, so one battery cannot be added twice in different spellings.
    """
    text = text.strip()
    return text.upper() if _HEX.fullmatch(text) else text


def _split_ids(text: str) -> list[str]:
    """Split identifiers separated by commas, semicolons, spaces or new lines; drop repeats."""
    return list(dict.fromkeys(_flexconnect_id(part) for part in _ID_SEPARATORS.split(text) if part))


def _subentries(batteries: Iterable[BatteryInfo]) -> list[ConfigSubentryData]:
    return [
        ConfigSubentryData(
            data={CONF_BATTERY_ID: info.battery_id},
            subentry_type=SUBENTRY_BATTERY,
            title=info.name,
            unique_id=info.battery_id,
        )
        for info in batteries
    ]


def _unique_id(data: Mapping[str, Any]) -> str:
    kind = BackendKind(data[CONF_BACKEND])
    if kind is BackendKind.FLEXCONNECT:
        return f"{data[CONF_HOST]}:{data[CONF_PORT]}".lower()
    if kind is BackendKind.FEMS:
        return str(data[CONF_HOST]).lower()
    scope = data.get(CONF_API_URL) or data[CONF_ENVIRONMENT]  # Enode
    return f"{scope}:{data[CONF_CLIENT_ID]}"


def _address(data: Mapping[str, Any]) -> dict[str, Any]:
    """Host and port only: suggested values must never carry a stored secret into a form."""
    return {key: data[key] for key in (CONF_HOST, CONF_PORT)}


def _default_title(data: Mapping[str, Any]) -> str:
    kind = BackendKind(data[CONF_BACKEND])
    if kind is BackendKind.FLEXCONNECT:
        return f"FlexConnect {data[CONF_HOST]}"
    if kind is BackendKind.FEMS:
        return f"FEMS {data[CONF_HOST]}"
    return f"Enode ({data[CONF_ENVIRONMENT]})"


def _enode_urls(advanced: Mapping[str, Any]) -> dict[str, str] | None:
    """Return the custom Enode URLs that are set, or None when one is not an http(s) URL."""
    urls: dict[str, str] = {}
    for key in (CONF_API_URL, CONF_TOKEN_URL):
        if not (url := str(advanced.get(key) or "").strip().rstrip("/")):
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None
        urls[key] = url
    return urls


class BatteryBridgeConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a backend: menu, one step per backend, then its batteries; reauth, reconfigure."""

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Start with nothing collected."""
        self._data: dict[str, Any] = {}
        self._batteries: list[BatteryInfo] = []
        self._finish: Callable[[], ConfigFlowResult] = self._async_create

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: ConfigEntry) -> BatteryBridgeOptionsFlow:
        """Return the options flow (poll interval, FEMS keepalive)."""
        return BatteryBridgeOptionsFlow()

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Let users add batteries to FlexConnect and Enode entries (a FEMS has exactly one)."""
        if config_entry.data[CONF_BACKEND] == BackendKind.FEMS:
            return {}
        return {SUBENTRY_BATTERY: BatterySubentryFlow}

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick the backend."""
        return self.async_show_menu(
            step_id="user",
            menu_options=[BackendKind.FLEXCONNECT, BackendKind.FEMS, BackendKind.ENODE],
        )

    # --- FlexConnect -------------------------------------------------------------------------

    async def async_step_flexconnect(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the FlexCloudClient's address and the battery identifiers; check each one."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            data = {
                CONF_BACKEND: BackendKind.FLEXCONNECT.value,
                CONF_HOST: user_input[CONF_HOST].strip(),
                CONF_PORT: user_input[CONF_PORT],
            }
            await self.async_set_unique_id(_unique_id(data))
            self._abort_if_unique_id_configured()
            if not (battery_ids := _split_ids(user_input[CONF_BATTERY_IDS])):
                errors[CONF_BATTERY_IDS] = "no_battery_ids"
            else:
                batteries: list[BatteryInfo] = []

                async def probe(backend: Backend) -> None:
                    await backend.async_validate()
                    batteries.extend([await _async_battery_info(backend, b) for b in battery_ids])

                check = await _async_check(self.hass, data, probe, battery_field=CONF_BATTERY_IDS)
                if not check.errors:
                    self._data, self._batteries = data, batteries
                    return self._async_create()
                errors, placeholders = check.errors, check.placeholders
        return self.async_show_form(
            step_id="flexconnect",
            data_schema=self.add_suggested_values_to_schema(FLEXCONNECT_SCHEMA, user_input),
            errors=errors,
            description_placeholders=placeholders,
        )

    # --- FEMS --------------------------------------------------------------------------------

    async def async_step_fems(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the FEMS address and password; check reading, the ESS and write access."""
        check = _Check()
        if user_input is not None:
            data = {
                CONF_BACKEND: BackendKind.FEMS.value,
                CONF_HOST: user_input[CONF_HOST].strip(),
                CONF_PORT: user_input[CONF_PORT],
                CONF_PASSWORD: user_input[CONF_PASSWORD],
                CONF_ESS_ID: user_input[SECTION_ADVANCED][CONF_ESS_ID].strip() or DEFAULT_ESS_ID,
            }
            await self.async_set_unique_id(_unique_id(data))
            self._abort_if_unique_id_configured()
            if not (check := await self._async_check_fems(data)).errors:
                return await self._async_finish_fems(self._async_create)
        return self.async_show_form(
            step_id="fems",
            data_schema=self.add_suggested_values_to_schema(FEMS_SCHEMA, user_input),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    async def _async_check_fems(self, data: dict[str, Any]) -> _Check:
        """Check read access and the ESS; then find out whether writing is possible.

        On success ``self._data`` holds ``data`` with ``can_write`` and ``self._batteries`` the ESS.
        The backend is built without the stored ``can_write`` so that an entry found read-only
        before is probed afresh.
        """
        data = {key: value for key, value in data.items() if key != CONF_CAN_WRITE}
        batteries: list[BatteryInfo] = []
        can_write: list[bool] = []

        async def probe(backend: Backend) -> None:
            try:
                await backend.async_validate()  # a FEMS without this ESS fails here already
            except UnknownBatteryError as err:
                raise _UnknownBatteryIdError(data[CONF_ESS_ID]) from err
            batteries.append(await _async_battery_info(backend, data[CONF_ESS_ID]))
            can_write.append(await cast("_WriteProbe", backend).async_probe_write())

        check = await _async_check(self.hass, data, probe, auth_field=CONF_PASSWORD)
        if not check.errors:
            self._data = {**data, CONF_CAN_WRITE: can_write[0]}
            self._batteries = batteries
        return check

    async def _async_finish_fems(self, finish: Callable[[], ConfigFlowResult]) -> ConfigFlowResult:
        """Finish at once with write access; else explain read-only mode and ask to confirm."""
        self._finish = finish
        if self._data[CONF_CAN_WRITE]:
            return finish()
        return await self.async_step_fems_read_only()

    async def async_step_fems_read_only(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm that this FEMS will only be watched, not controlled."""
        if user_input is not None:
            return self._finish()
        return self.async_show_form(
            step_id="fems_read_only",
            data_schema=probatio.Schema({}),
            description_placeholders={CONF_HOST: self._data[CONF_HOST]},
        )

    # --- Enode -------------------------------------------------------------------------------

    async def async_step_enode(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the Enode API client; check it and fetch the account's batteries."""
        check = _Check()
        if user_input is not None:
            if (urls := _enode_urls(user_input[SECTION_ADVANCED])) is None:
                check.errors["base"] = "invalid_url"
            else:
                data = {
                    CONF_BACKEND: BackendKind.ENODE.value,
                    CONF_CLIENT_ID: user_input[CONF_CLIENT_ID].strip(),
                    CONF_CLIENT_SECRET: user_input[CONF_CLIENT_SECRET],
                    CONF_ENVIRONMENT: user_input[CONF_ENVIRONMENT],
                    **urls,
                }
                await self.async_set_unique_id(_unique_id(data))
                self._abort_if_unique_id_configured()
                batteries: list[BatteryInfo] = []

                async def probe(backend: Backend) -> None:
                    await backend.async_validate()
                    batteries.extend(await backend.async_list_batteries())

                check = await _async_check(self.hass, data, probe, auth_field=CONF_CLIENT_SECRET)
                if not check.errors and not batteries:
                    check.errors["base"] = "no_batteries"
                if not check.errors:
                    self._data, self._batteries = data, batteries
                    return await self.async_step_enode_batteries()
        return self.async_show_form(
            step_id="enode",
            data_schema=self.add_suggested_values_to_schema(ENODE_SCHEMA, user_input),
            errors=check.errors,
        )

    async def async_step_enode_batteries(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose which of the account's batteries to add (all by default)."""
        errors: dict[str, str] = {}
        if user_input is not None:
            chosen = set(user_input[CONF_BATTERY_IDS])
            if batteries := [b for b in self._batteries if b.battery_id in chosen]:
                # Left out on purpose: the account watch must not add them by itself.
                if declined := sorted(
                    b.battery_id for b in self._batteries if b.battery_id not in chosen
                ):
                    self._data = {**self._data, CONF_DECLINED_BATTERIES: declined}
                self._batteries = batteries
                return self._async_create()
            errors[CONF_BATTERY_IDS] = "no_battery_selected"
        schema = probatio.Schema(
            {
                probatio.Required(
                    CONF_BATTERY_IDS, default=[b.battery_id for b in self._batteries]
                ): SelectSelector(
                    SelectSelectorConfig(
                        options=[
                            SelectOptionDict(value=b.battery_id, label=b.name)
                            for b in self._batteries
                        ],
                        multiple=True,
                        mode=SelectSelectorMode.LIST,
                    )
                )
            }
        )
        return self.async_show_form(step_id="enode_batteries", data_schema=schema, errors=errors)

    # --- Creating and updating entries -------------------------------------------------------

    def _async_create(self) -> ConfigFlowResult:
        return self.async_create_entry(
            title=_default_title(self._data),
            data=self._data,
            subentries=_subentries(self._batteries),
        )

    def _async_update(self, entry: ConfigEntry, data: Mapping[str, Any]) -> ConfigFlowResult:
        """Store new entry data (and the unique id and default title that follow from it)."""
        changes: dict[str, Any] = {"data": data}
        if self.source == SOURCE_RECONFIGURE:  # the unique id moves with the address
            changes["unique_id"] = _unique_id(data)
        if entry.title == _default_title(entry.data):  # keep a title the user chose
            changes["title"] = _default_title(data)
        if entry.update_listeners:  # the runtime reloads on change itself
            return self.async_update_and_abort(entry, **changes)
        return self.async_update_reload_and_abort(entry, **changes)

    # --- Reauthentication --------------------------------------------------------------------

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start reauthentication (FEMS password, Enode client secret)."""
        if entry_data[CONF_BACKEND] not in SECRET_KEY:
            return self.async_abort(reason="reauth_not_supported")
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the new password or client secret and check it."""
        entry = self._get_reauth_entry()
        kind = BackendKind(entry.data[CONF_BACKEND])
        secret_key = SECRET_KEY[kind]
        check = _Check()
        if user_input is not None:
            data = {**entry.data, secret_key: user_input[secret_key]}
            if kind is BackendKind.FEMS:
                if not (check := await self._async_check_fems(data)).errors:
                    return await self._async_finish_fems(
                        lambda: self._async_update(entry, self._data)
                    )
            else:
                check = await _async_check(
                    self.hass, data, _async_validate_only, auth_field=secret_key
                )
                if not check.errors:
                    return self._async_update(entry, data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=probatio.Schema({probatio.Required(secret_key): _PASSWORD}),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    # --- Reconfiguration ---------------------------------------------------------------------

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change where the backend is (FlexConnect, FEMS) or which Enode API it is."""
        kind = BackendKind(self._get_reconfigure_entry().data[CONF_BACKEND])
        if kind is BackendKind.FLEXCONNECT:
            return await self.async_step_reconfigure_flexconnect()
        if kind is BackendKind.FEMS:
            return await self.async_step_reconfigure_fems()
        return await self.async_step_reconfigure_enode()

    async def _async_set_moved_unique_id(self, entry: ConfigEntry, data: Mapping[str, Any]) -> None:
        """Take the unique id the new settings imply; abort if another entry has it."""
        unique_id = _unique_id(data)
        await self.async_set_unique_id(unique_id)
        if unique_id != entry.unique_id:
            self._abort_if_unique_id_configured()

    async def async_step_reconfigure_flexconnect(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move a FlexConnect entry to a new address; every battery must answer there."""
        entry = self._get_reconfigure_entry()
        check = _Check()
        if user_input is not None:
            data = {**entry.data, CONF_HOST: user_input[CONF_HOST].strip()}
            data[CONF_PORT] = user_input[CONF_PORT]
            await self._async_set_moved_unique_id(entry, data)

            async def probe(backend: Backend) -> None:
                await backend.async_validate()
                for battery_id in configured_battery_ids(entry):
                    await _async_battery_info(backend, battery_id)

            if not (check := await _async_check(self.hass, data, probe)).errors:
                return self._async_update(entry, data)
        return self.async_show_form(
            step_id="reconfigure_flexconnect",
            data_schema=self.add_suggested_values_to_schema(
                probatio.Schema(_address_schema(BackendKind.FLEXCONNECT)),
                _address(user_input or entry.data),
            ),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    async def async_step_reconfigure_fems(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move a FEMS entry or change its password; the ESS must answer, write access is re-probed.

        The password is here too (empty = keep it) because reauthentication only starts when the
        FEMS rejects a password: switching from the guest to the owner password after installing the
        write app is something users start themselves.
        """
        entry = self._get_reconfigure_entry()
        check = _Check()
        if user_input is not None:
            data = {**entry.data, CONF_HOST: user_input[CONF_HOST].strip()}
            data[CONF_PORT] = user_input[CONF_PORT]
            data[CONF_PASSWORD] = user_input.get(CONF_PASSWORD) or entry.data[CONF_PASSWORD]
            await self._async_set_moved_unique_id(entry, data)
            if not (check := await self._async_check_fems(data)).errors:
                return await self._async_finish_fems(lambda: self._async_update(entry, self._data))
        return self.async_show_form(
            step_id="reconfigure_fems",
            data_schema=self.add_suggested_values_to_schema(
                FEMS_RECONFIGURE_SCHEMA, _address(user_input or entry.data)
            ),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    async def async_step_reconfigure_enode(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Switch the Enode environment or API URLs; the configured batteries must be there."""
        entry = self._get_reconfigure_entry()
        check = _Check()
        if user_input is not None:
            if (urls := _enode_urls(user_input[SECTION_ADVANCED])) is None:
                check.errors["base"] = "invalid_url"
            else:
                data = {
                    key: value
                    for key, value in entry.data.items()
                    if key not in (CONF_API_URL, CONF_TOKEN_URL)
                }
                data |= {CONF_ENVIRONMENT: user_input[CONF_ENVIRONMENT], **urls}
                await self._async_set_moved_unique_id(entry, data)
                found: set[str] = set()

                async def probe(backend: Backend) -> None:
                    await backend.async_validate()
                    found.update(b.battery_id for b in await backend.async_list_batteries())

                check = await _async_check(self.hass, data, probe)
                missing = [b for b in configured_battery_ids(entry) if b not in found]
                if not check.errors and missing:
                    check.errors["base"] = "batteries_missing"
                    check.placeholders["battery_ids"] = ", ".join(missing)
                if not check.errors:
                    return self._async_update(entry, data)
        suggested = user_input or {
            CONF_ENVIRONMENT: entry.data[CONF_ENVIRONMENT],
            SECTION_ADVANCED: {
                key: entry.data[key] for key in (CONF_API_URL, CONF_TOKEN_URL) if key in entry.data
            },
        }
        return self.async_show_form(
            step_id="reconfigure_enode",
            data_schema=self.add_suggested_values_to_schema(ENODE_RECONFIGURE_SCHEMA, suggested),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )


class BatterySubentryFlow(ConfigSubentryFlow):
    """Add one battery to a FlexConnect client (typed identifier) or an Enode account (pick one)."""

    def __init__(self) -> None:
        """Start with no batteries offered."""
        self._offered: dict[str, BatteryInfo] = {}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Go to the step of the entry's backend."""
        if self._get_entry().data[CONF_BACKEND] == BackendKind.ENODE:
            return await self.async_step_enode()
        return await self.async_step_flexconnect()

    async def async_step_flexconnect(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for a battery identifier and check that the FlexCloudClient knows it."""
        entry = self._get_entry()
        check = _Check()
        if user_input is not None:
            battery_id = _flexconnect_id(user_input[CONF_BATTERY_ID])
            if battery_id in configured_battery_ids(entry):
                return self.async_abort(reason="already_configured")
            if not battery_id:
                check.errors[CONF_BATTERY_ID] = "no_battery_ids"
            else:
                batteries: list[BatteryInfo] = []

                async def probe(backend: Backend) -> None:
                    batteries.append(await _async_battery_info(backend, battery_id))

                check = await _async_check(
                    self.hass, entry.data, probe, battery_field=CONF_BATTERY_ID
                )
                if not check.errors:
                    return self.async_create_entry(
                        title=batteries[0].name,
                        data={CONF_BATTERY_ID: battery_id},
                        unique_id=battery_id,
                    )
        return self.async_show_form(
            step_id="flexconnect",
            data_schema=self.add_suggested_values_to_schema(
                probatio.Schema({probatio.Required(CONF_BATTERY_ID): _TEXT}), user_input
            ),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    async def async_step_enode(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Offer the account's batteries that are not added yet."""
        entry = self._get_entry()
        if user_input is not None:
            info = self._offered[user_input[CONF_BATTERY_ID]]
            if info.battery_id in configured_battery_ids(entry):  # added meanwhile in another flow
                return self.async_abort(reason="already_configured")
            return self.async_create_entry(
                title=info.name, data={CONF_BATTERY_ID: info.battery_id}, unique_id=info.battery_id
            )
        batteries: list[BatteryInfo] = []

        async def probe(backend: Backend) -> None:
            batteries.extend(await backend.async_list_batteries())

        if (check := await _async_check(self.hass, entry.data, probe)).errors:
            return self.async_abort(reason=check.errors["base"])
        configured = set(configured_battery_ids(entry))
        self._offered = {b.battery_id: b for b in batteries if b.battery_id not in configured}
        if not self._offered:
            return self.async_abort(reason="no_more_batteries")
        return self.async_show_form(
            step_id="enode",
            data_schema=probatio.Schema(
                {
                    probatio.Required(CONF_BATTERY_ID): SelectSelector(
                        SelectSelectorConfig(
                            options=[
                                SelectOptionDict(value=b.battery_id, label=b.name)
                                for b in self._offered.values()
                            ],
                            mode=SelectSelectorMode.LIST,
                        )
                    )
                }
            ),
        )


class BatteryBridgeOptionsFlow(OptionsFlowWithReload):
    """Poll interval for every backend; for a FEMS also how often a setpoint is rewritten."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show and store the options."""
        entry = self.config_entry
        if user_input is not None:
            # Home Assistant forbids both an update listener and the automatic reload.
            self.automatic_reload = not entry.update_listeners
            return self.async_create_entry(data=user_input)
        kind = BackendKind(entry.data[CONF_BACKEND])
        schema: dict[probatio.Marker, Any] = {
            probatio.Required(
                CONF_SCAN_INTERVAL, default=int(DEFAULT_SCAN_INTERVAL[kind].total_seconds())
            ): _seconds(int(MIN_SCAN_INTERVAL[kind].total_seconds())),
        }
        if kind is BackendKind.FEMS:
            # Empty = automatic: half the API timeout the FEMS reports (the runtime's default).
            schema[probatio.Optional(CONF_KEEPALIVE_INTERVAL)] = _seconds(MIN_KEEPALIVE_S)
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(probatio.Schema(schema), entry.options),
        )
