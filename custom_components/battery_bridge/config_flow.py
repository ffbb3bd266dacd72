"""Config flow for Battery Bridge: one code path for every backend spec (api/registry.py).

One config entry per backend client, one ``battery`` subentry per battery (``_subentries``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
import re
from typing import Any, Final, override
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
from homeassistant.const import UnitOfTime
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
    BackendError,
    BackendKind,
    BackendSpec,
    BatteryInfo,
    ConfigField,
    FieldType,
    UnknownBatteryError,
    WriteProbe,
)
from .api.registry import BACKENDS, backend_spec
from .backends import create_backend
from .const import (
    CONF_BACKEND,
    CONF_BATTERY_ID,
    CONF_CAN_WRITE,
    CONF_DECLINED_BATTERIES,
    CONF_KEEPALIVE_INTERVAL,
    CONF_SCAN_INTERVAL,
    DOMAIN,
    LOGGER,
    SUBENTRY_BATTERY,
)
from .coordinator import configured_battery_ids
from .errors import flow_error

# Form fields that are not stored as such
CONF_BATTERY_IDS = "battery_ids"  # the typed or the chosen batteries
SECTION_ADVANCED = "advanced"

MAX_INTERVAL_S = 3600
MIN_KEEPALIVE_S = 5

_ID_SEPARATORS = re.compile(r"[\s,;]+")

_SELECTORS: Final[dict[FieldType, Any]] = {
    FieldType.TEXT: TextSelector(),
    FieldType.HOST: TextSelector(TextSelectorConfig(autocomplete="off")),
    FieldType.PORT: probatio.All(
        NumberSelector(NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)),
        probatio.Coerce(int),
    ),
    FieldType.PASSWORD: TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD)),
    FieldType.URL: TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
}
_TYPED_IDS: Final = TextSelector(TextSelectorConfig(multiline=True))


# --- Forms from config fields ------------------------------------------------------------------


def _selector(config_field: ConfigField) -> Any:
    if config_field.type is FieldType.CHOICE:
        return SelectSelector(
            SelectSelectorConfig(
                options=list(config_field.choices),
                translation_key=config_field.key,
                mode=SelectSelectorMode.LIST,
            )
        )
    return _SELECTORS[config_field.type]


def _marker(config_field: ConfigField, *, optional: bool) -> probatio.Marker:
    if optional or not config_field.required:
        return probatio.Optional(config_field.key)
    if config_field.default is None:
        return probatio.Required(config_field.key)
    return probatio.Required(config_field.key, default=config_field.default)


def _schema(
    fields: Sequence[ConfigField],
    extra: Mapping[probatio.Marker, Any] | None = None,
    *,
    secret_optional: bool = False,
) -> probatio.Schema:
    """Return the form of ``fields`` (and ``extra``); advanced fields go to a collapsed section."""

    def markers(group: Iterable[ConfigField]) -> dict[probatio.Marker, Any]:
        return {
            _marker(item, optional=secret_optional and item.secret): _selector(item)
            for item in group
        }

    schema = markers(item for item in fields if not item.advanced) | dict(extra or {})
    if advanced := [item for item in fields if item.advanced]:
        schema[probatio.Required(SECTION_ADVANCED)] = section(
            probatio.Schema(markers(advanced)), {"collapsed": True}
        )
    return probatio.Schema(schema)


def _types_ids(spec: BackendSpec) -> bool:
    """Return True when the user types the battery ids (the backend cannot list them)."""
    return not spec.lists_batteries and spec.battery_id_setting is None


def _setup_schema(spec: BackendSpec) -> probatio.Schema:
    typed: dict[probatio.Marker, Any] = {probatio.Required(CONF_BATTERY_IDS): _TYPED_IDS}
    return _schema(spec.fields, typed if _types_ids(spec) else None)


def _flat(user_input: Mapping[str, Any]) -> dict[str, Any]:
    return {**user_input, **user_input.get(SECTION_ADVANCED, {})}


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _read(fields: Iterable[ConfigField], user_input: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the settings a form holds (empty fields take their default or are left out).

    Returns None when a URL field holds something other than an http(s) URL.
    """
    values = _flat(user_input)
    settings: dict[str, Any] = {}
    for item in fields:
        value = values.get(item.key)
        if isinstance(value, str) and item.type is not FieldType.PASSWORD:
            value = value.strip()
            if item.type is FieldType.URL:
                value = value.rstrip("/")
                if value and not _is_http_url(value):
                    return None
        if value is None or (value == "" and (item.default is not None or not item.required)):
            value = item.default
        if value is not None:
            settings[item.key] = value
    return settings


def _suggested(fields: Iterable[ConfigField], values: Mapping[str, Any]) -> dict[str, Any]:
    """Return the suggested values of a form: never a secret, so none leaves the entry."""
    shown = [item for item in fields if not item.secret]
    suggested = {i.key: values[i.key] for i in shown if not i.advanced and i.key in values}
    if advanced := [item for item in shown if item.advanced]:
        suggested[SECTION_ADVANCED] = {i.key: values[i.key] for i in advanced if i.key in values}
    return suggested


def _reconfigured(
    data: Mapping[str, Any], fields: Iterable[ConfigField], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Return entry data with the reconfigured settings (an empty secret keeps the stored one)."""
    new = dict(data)
    for item in fields:
        if settings.get(item.key) not in (None, ""):
            new[item.key] = settings[item.key]
        elif not item.secret:
            new.pop(item.key, None)
    return new


def _spec_of(data: Mapping[str, Any]) -> BackendSpec:
    return backend_spec(data[CONF_BACKEND])


def _auth_field(spec: BackendSpec, fields: Iterable[ConfigField]) -> str:
    """Return where "invalid_auth" shows: at the secret when the form has it, else at the top."""
    secret = spec.secret
    return secret.key if secret is not None and secret in fields else "base"


def _hosts(spec: BackendSpec, data: Mapping[str, Any]) -> dict[str, str]:
    """Return the address settings, as placeholders of messages about the entry."""
    return {
        i.key: str(data[i.key]) for i in spec.fields if i.type is FieldType.HOST and i.key in data
    }


def _split_ids(spec: BackendSpec, text: str) -> list[str]:
    """Split ids separated by commas, semicolons, spaces or new lines; drop repeats."""
    parts = _ID_SEPARATORS.split(text)
    return list(dict.fromkeys(spec.normalize_battery_id(part) for part in parts if part))


def _subentries(batteries: Iterable[BatteryInfo]) -> list[ConfigSubentryData]:
    """Return one ``battery`` subentry per battery (unique id = battery id, title = its name).

    With batteries as subentries, the UI adds and removes them with their devices, and one
    reauthentication covers every battery of an account.
    """
    return [
        ConfigSubentryData(
            data={CONF_BATTERY_ID: info.battery_id},
            subentry_type=SUBENTRY_BATTERY,
            title=info.name,
            unique_id=info.battery_id,
        )
        for info in batteries
    ]


def _battery_options(batteries: Iterable[BatteryInfo]) -> list[SelectOptionDict]:
    return [SelectOptionDict(value=b.battery_id, label=b.name) for b in batteries]


# --- Talking to the backend --------------------------------------------------------------------


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


@dataclass(slots=True)
class _Found:
    """What a check learnt: the batteries, and whether writes are possible (None: no probe)."""

    batteries: list[BatteryInfo] = field(default_factory=list)
    can_write: bool | None = None

    def data(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``data`` with the write access found, where it was probed."""
        if self.can_write is None:
            return dict(data)
        return {**data, CONF_CAN_WRITE: self.can_write}


async def _async_battery_info(backend: Backend, battery_id: str) -> BatteryInfo:
    """Poll one battery, so an identifier is known to exist before it is stored."""
    try:
        snapshot = await backend.async_get_snapshot(battery_id)
    except UnknownBatteryError as err:
        raise _UnknownBatteryIdError(battery_id) from err
    return snapshot.info


async def _async_check(
    hass: HomeAssistant,
    data: Mapping[str, Any],
    found: _Found,
    *,
    validate: bool = True,
    listed: bool = False,
    battery_ids: Sequence[str] = (),
    auth_field: str = "base",
    battery_field: str = "base",
) -> _Check:
    """Build the backend for ``data`` and talk to it; turn failures into form errors.

    Validates it, lists its batteries (``listed``), polls ``battery_ids`` and runs its write probe
    if it has one. The backend is built without a stored ``can_write``, so an entry found
    read-only before is probed afresh.
    """
    check = _Check()
    try:
        backend = create_backend(hass, {k: v for k, v in data.items() if k != CONF_CAN_WRITE})
        if validate:
            await backend.async_validate()
        if listed:
            found.batteries.extend(await backend.async_list_batteries())
        found.batteries.extend([await _async_battery_info(backend, b) for b in battery_ids])
        if validate and isinstance(backend, WriteProbe):
            found.can_write = await backend.async_probe_write()
    except _UnknownBatteryIdError as err:
        check.errors[battery_field] = "unknown_battery"
        check.placeholders["battery_id"] = err.battery_id
    except UnknownBatteryError:  # validating a backend that checks its battery there (FEMS ESS)
        check.errors[battery_field] = "unknown_battery"
        check.placeholders["battery_id"] = ", ".join(battery_ids)
    except BackendError as err:
        key = flow_error(err)
        check.errors[auth_field if isinstance(err, AuthError) else "base"] = key
        if key == "unknown":
            LOGGER.exception("Unexpected error while checking the %s backend", data[CONF_BACKEND])
    except Exception:  # noqa: BLE001 - anything else is a bug worth a traceback in the log
        LOGGER.exception("Unexpected error while checking the %s backend", data[CONF_BACKEND])
        check.errors["base"] = "unknown"
    return check


async def _async_check_new(
    hass: HomeAssistant, spec: BackendSpec, data: dict[str, Any], user_input: dict[str, Any]
) -> tuple[_Check, _Found]:
    """Check the settings of a new entry and find its batteries."""
    found = _Found()
    battery_ids: list[str] = []
    if spec.battery_id_setting is not None:
        battery_ids = [data[spec.battery_id_setting]]
    elif _types_ids(spec) and not (battery_ids := _split_ids(spec, user_input[CONF_BATTERY_IDS])):
        return _Check(errors={CONF_BATTERY_IDS: "no_battery_ids"}), found
    check = await _async_check(
        hass,
        data,
        found,
        listed=spec.lists_batteries,
        battery_ids=battery_ids,
        auth_field=_auth_field(spec, spec.fields),
        battery_field=CONF_BATTERY_IDS if _types_ids(spec) else "base",
    )
    if not check.errors and not found.batteries:
        check.errors["base"] = "no_batteries"
    return check, found


async def _async_check_entry(
    hass: HomeAssistant, entry: ConfigEntry, data: dict[str, Any], auth_field: str
) -> tuple[_Check, _Found]:
    """Check new settings of an entry: every battery of the entry must be there."""
    listed = _spec_of(data).lists_batteries
    configured = configured_battery_ids(entry)
    found = _Found()
    check = await _async_check(
        hass,
        data,
        found,
        listed=listed,
        battery_ids=[] if listed else configured,
        auth_field=auth_field,
    )
    available = {b.battery_id for b in found.batteries}
    if listed and not check.errors and (missing := [b for b in configured if b not in available]):
        check.errors["base"] = "batteries_missing"
        check.placeholders["battery_ids"] = ", ".join(missing)
    return check, found


# --- The flows ---------------------------------------------------------------------------------


class BatteryBridgeConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a backend: menu, the backend's step, then its batteries; reauth, reconfigure.

    The steps named after a backend kind (``<kind>``, ``<kind>_batteries``, ``<kind>_read_only``,
    ``reconfigure_<kind>``) are thin methods (``async_step_<step>``, below) that run generic code
    with the kind's spec: its config fields are the form of the step ``<kind>``; its batteries are
    typed, listed (then chosen) or named by a setting. A new backend adds the steps its spec can
    show: ``<kind>`` and ``reconfigure_<kind>`` always, ``<kind>_batteries`` when it lists its
    batteries, ``<kind>_read_only`` when its client is a ``WriteProbe`` (and, in
    ``BatterySubentryFlow``, ``<kind>`` unless a setting names its battery).
    """

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
        """Return the options flow (poll interval, keepalive)."""
        return BatteryBridgeOptionsFlow()

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Let users add batteries, unless the entry has exactly one (a setting names it)."""
        if _spec_of(config_entry.data).battery_id_setting is not None:
            return {}
        return {SUBENTRY_BATTERY: BatterySubentryFlow}

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick the backend."""
        return self.async_show_menu(step_id="user", menu_options=[str(kind) for kind in BACKENDS])

    # --- The backends' steps (Home Assistant calls async_step_<step id>) ---------------------

    async def async_step_flexconnect(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Set up FlexConnect: address and typed battery ids."""
        return await self._async_step_setup(backend_spec(BackendKind.FLEXCONNECT), user_input)

    async def async_step_fems(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Set up FEMS: address, password, ESS."""
        return await self._async_step_setup(backend_spec(BackendKind.FEMS), user_input)

    async def async_step_fems_read_only(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm a FEMS whose password cannot write."""
        return await self._async_step_read_only(backend_spec(BackendKind.FEMS), user_input)

    async def async_step_enode(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Set up Enode: client credentials and environment."""
        return await self._async_step_setup(backend_spec(BackendKind.ENODE), user_input)

    async def async_step_enode_batteries(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the Enode batteries to add."""
        return await self._async_step_choose(backend_spec(BackendKind.ENODE), user_input)

    async def async_step_reconfigure_flexconnect(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Reconfigure FlexConnect."""
        return await self._async_step_reconfigure(backend_spec(BackendKind.FLEXCONNECT), user_input)

    async def async_step_reconfigure_fems(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Reconfigure FEMS."""
        return await self._async_step_reconfigure(backend_spec(BackendKind.FEMS), user_input)

    async def async_step_reconfigure_enode(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Reconfigure Enode."""
        return await self._async_step_reconfigure(backend_spec(BackendKind.ENODE), user_input)

    # --- The generic steps -------------------------------------------------------------------

    async def _async_step_setup(
        self, spec: BackendSpec, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the backend's settings (and typed battery ids); check them."""
        check = _Check()
        if user_input is not None:
            if (settings := _read(spec.fields, user_input)) is None:
                check.errors["base"] = "invalid_url"
            else:
                data = {CONF_BACKEND: str(spec.kind), **settings}
                await self.async_set_unique_id(spec.unique_id(data))
                self._abort_if_unique_id_configured()
                check, found = await _async_check_new(self.hass, spec, data, user_input)
                if not check.errors:
                    self._data, self._batteries = found.data(data), found.batteries
                    if spec.lists_batteries:
                        return await self._async_step_choose(spec)
                    return self._async_confirm_writes(spec, self._async_create)
        return self.async_show_form(
            step_id=str(spec.kind),
            data_schema=self.add_suggested_values_to_schema(_setup_schema(spec), user_input),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    async def _async_step_choose(
        self, spec: BackendSpec, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose which of the listed batteries to add (all by default)."""
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
                return self._async_confirm_writes(spec, self._async_create)
            errors[CONF_BATTERY_IDS] = "no_battery_selected"
        default = [b.battery_id for b in self._batteries]
        selector = SelectSelector(
            SelectSelectorConfig(
                options=_battery_options(self._batteries),
                multiple=True,
                mode=SelectSelectorMode.LIST,
            )
        )
        return self.async_show_form(
            step_id=f"{spec.kind}_batteries",
            data_schema=probatio.Schema(
                {probatio.Required(CONF_BATTERY_IDS, default=default): selector}
            ),
            errors=errors,
        )

    def _async_confirm_writes(
        self, spec: BackendSpec, finish: Callable[[], ConfigFlowResult]
    ) -> ConfigFlowResult:
        """Finish at once, unless the write probe found no write access: then explain and ask."""
        self._finish = finish
        if self._data.get(CONF_CAN_WRITE, True):
            return finish()
        return self.async_show_form(
            step_id=f"{spec.kind}_read_only",
            data_schema=probatio.Schema({}),
            description_placeholders=_hosts(spec, self._data),
        )

    async def _async_step_read_only(
        self, spec: BackendSpec, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm that the entry will only watch, not control (the form: ``_async_confirm_writes``)."""
        return self._finish()

    # --- Creating and updating entries -------------------------------------------------------

    def _async_create(self) -> ConfigFlowResult:
        return self.async_create_entry(
            title=_spec_of(self._data).title(self._data),
            data=self._data,
            subentries=_subentries(self._batteries),
        )

    def _async_update(self, entry: ConfigEntry, data: Mapping[str, Any]) -> ConfigFlowResult:
        """Store new entry data (and the unique id and default title that follow from it)."""
        spec = _spec_of(data)
        changes: dict[str, Any] = {"data": data}
        if self.source == SOURCE_RECONFIGURE:  # the unique id moves with the address
            changes["unique_id"] = spec.unique_id(data)
        if entry.title == spec.title(entry.data):  # keep a title the user chose
            changes["title"] = spec.title(data)
        if entry.update_listeners:  # the runtime reloads on change itself
            return self.async_update_and_abort(entry, **changes)
        return self.async_update_reload_and_abort(entry, **changes)

    # --- Reauthentication --------------------------------------------------------------------

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start reauthentication (the backend's secret)."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the new secret; check it like a reconfiguration (batteries, write access)."""
        entry = self._get_reauth_entry()
        if (secret := _spec_of(entry.data).secret) is None:
            return self.async_abort(reason="reauth_not_supported")
        check = _Check()
        if user_input is not None:
            data = {**entry.data, secret.key: user_input[secret.key]}
            check, found = await _async_check_entry(self.hass, entry, data, secret.key)
            if not check.errors:
                self._data = found.data(data)
                return self._async_confirm_writes(
                    _spec_of(data), lambda: self._async_update(entry, self._data)
                )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=probatio.Schema({probatio.Required(secret.key): _selector(secret)}),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    # --- Reconfiguration ---------------------------------------------------------------------

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the backend's reconfigurable settings (the step ``reconfigure_<kind>``)."""
        return await self._async_step_reconfigure(_spec_of(self._get_reconfigure_entry().data))

    async def _async_step_reconfigure(
        self, spec: BackendSpec, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Take new settings; every battery of the entry must be there, write access is re-probed.

        The secret is here too when reconfigurable (empty = keep it): reauthentication only starts
        when a secret is rejected, and switching to one with more rights is up to the user.
        """
        entry = self._get_reconfigure_entry()
        fields = [item for item in spec.fields if item.reconfigurable]
        check = _Check()
        if user_input is not None:
            if (settings := _read(fields, user_input)) is None:
                check.errors["base"] = "invalid_url"
            else:
                data = _reconfigured(entry.data, fields, settings)
                unique_id = spec.unique_id(data)
                await self.async_set_unique_id(unique_id)
                if unique_id != entry.unique_id:  # moved: not onto another entry
                    self._abort_if_unique_id_configured()
                auth_field = _auth_field(spec, fields)
                check, found = await _async_check_entry(self.hass, entry, data, auth_field)
                if not check.errors:
                    self._data = found.data(data)
                    return self._async_confirm_writes(
                        spec, lambda: self._async_update(entry, self._data)
                    )
        values = entry.data if user_input is None else _flat(user_input)
        return self.async_show_form(
            step_id=f"reconfigure_{spec.kind}",
            data_schema=self.add_suggested_values_to_schema(
                _schema(fields, secret_optional=True), _suggested(fields, values)
            ),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )


class BatterySubentryFlow(ConfigSubentryFlow):
    """Add one battery: type its id, or pick one the backend lists (step id = backend kind)."""

    def __init__(self) -> None:
        """Start with no batteries offered."""
        self._offered: dict[str, BatteryInfo] = {}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Go to the step of the entry's backend."""
        return await self._async_step_add(_spec_of(self._get_entry().data))

    # The backends' steps (FEMS has none: a setting names its only battery)

    async def async_step_flexconnect(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Add a FlexConnect battery (typed)."""
        return await self._async_step_add(backend_spec(BackendKind.FLEXCONNECT), user_input)

    async def async_step_enode(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Add an Enode battery (picked from the listed ones)."""
        return await self._async_step_add(backend_spec(BackendKind.ENODE), user_input)

    async def _async_step_add(
        self, spec: BackendSpec, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        if spec.lists_batteries:
            return await self._async_pick(spec, user_input)
        return await self._async_type(spec, user_input)

    async def _async_type(
        self, spec: BackendSpec, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        """Ask for a battery id and check that the backend knows it."""
        entry = self._get_entry()
        check = _Check()
        if user_input is not None:
            battery_id = spec.normalize_battery_id(user_input[CONF_BATTERY_ID])
            if battery_id in configured_battery_ids(entry):
                return self.async_abort(reason="already_configured")
            if not battery_id:
                check.errors[CONF_BATTERY_ID] = "no_battery_ids"
            else:
                found = _Found()
                check = await _async_check(
                    self.hass,
                    entry.data,
                    found,
                    validate=False,
                    battery_ids=[battery_id],
                    battery_field=CONF_BATTERY_ID,
                )
                if not check.errors:
                    return self.async_create_entry(
                        title=found.batteries[0].name,
                        data={CONF_BATTERY_ID: battery_id},
                        unique_id=battery_id,
                    )
        return self.async_show_form(
            step_id=str(spec.kind),
            data_schema=self.add_suggested_values_to_schema(
                probatio.Schema({probatio.Required(CONF_BATTERY_ID): _SELECTORS[FieldType.TEXT]}),
                user_input,
            ),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    async def _async_pick(
        self, spec: BackendSpec, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        """Offer the listed batteries that are not added yet."""
        entry = self._get_entry()
        if user_input is not None:
            info = self._offered[user_input[CONF_BATTERY_ID]]
            if info.battery_id in configured_battery_ids(entry):  # added meanwhile in another flow
                return self.async_abort(reason="already_configured")
            return self.async_create_entry(
                title=info.name, data={CONF_BATTERY_ID: info.battery_id}, unique_id=info.battery_id
            )
        found = _Found()
        if (
            check := await _async_check(self.hass, entry.data, found, validate=False, listed=True)
        ).errors:
            return self.async_abort(reason=check.errors["base"])
        configured = set(configured_battery_ids(entry))
        self._offered = {b.battery_id: b for b in found.batteries if b.battery_id not in configured}
        if not self._offered:
            return self.async_abort(reason="no_more_batteries")
        selector = SelectSelector(
            SelectSelectorConfig(
                options=_battery_options(self._offered.values()), mode=SelectSelectorMode.LIST
            )
        )
        return self.async_show_form(
            step_id=str(spec.kind),
            data_schema=probatio.Schema({probatio.Required(CONF_BATTERY_ID): selector}),
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


class BatteryBridgeOptionsFlow(OptionsFlowWithReload):
    """Poll interval; where commands lapse unless rewritten, also how often they are."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show and store the options."""
        entry = self.config_entry
        if user_input is not None:
            # A loaded entry's update listener reloads it; one that is not loaded (set-up failed,
            # or waiting to retry) has none: reload that here. Home Assistant forbids both.
            self.automatic_reload = not entry.update_listeners
            return self.async_create_entry(data=user_input)
        spec = _spec_of(entry.data)
        schema: dict[probatio.Marker, Any] = {
            probatio.Required(
                CONF_SCAN_INTERVAL, default=int(spec.poll_interval.total_seconds())
            ): _seconds(int(spec.min_poll_interval.total_seconds())),
        }
        if spec.commands_expire:
            # Empty = automatic: half the device's command timeout (the runtime's default).
            schema[probatio.Optional(CONF_KEEPALIVE_INTERVAL)] = _seconds(MIN_KEEPALIVE_S)
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(probatio.Schema(schema), entry.options),
        )
