"""Browser check of the Battery Bridge demo (run by scripts/e2e against a running scripts/develop).

Logs in as demo/demo in headless Chromium, then checks:

1. the integration page lists the three demo entries (all loaded, per the REST API too);
2. the device pages of the FEMS battery and of one Enode battery show every entity under its
   translated name and no raw translation key;
3. a change made through the UI (the FEMS control mode, picked in the device page's Controls card)
   reaches Home Assistant (read back through the REST API), and a change made through the REST API
   (the FEMS power setpoint) shows up in the UI; the control mode is set back afterwards;
4. Assist (/api/conversation/process) answers the sentences of issue 9 in English and German, and
   the FEMS simulator (its REST API) and the entity states show the change;
5. the Batteries dashboard (scripts/demo_setup.py) has a section per battery and its FEMS buttons
   start and stop an override; the Energy dashboard is configured and shows the batteries;
6. Home Assistant's log has no ERROR record that mentions battery_bridge.

Full-page screenshots go to --screenshots. Exits 1, listing every failed check, when one fails.
Not a pytest test on purpose: it needs a browser, and CI has none.
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
import functools
import json
from pathlib import Path
import re
import sys
import time
from typing import Any
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error as PlaywrightError,
    Page,
    ViewportSize,
    sync_playwright,
)

DOMAIN = "battery_bridge"
ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "custom_components" / DOMAIN / "translations" / "en.json"
# Titles written by scripts/demo_config.py.
ENTRY_TITLES = ("FlexConnect 127.0.0.1", "FEMS 127.0.0.1", "Enode (sandbox)")
FEMS_ENTRY, ENODE_ENTRY = ENTRY_TITLES[1], ENTRY_TITLES[2]
FEMS_NAMES = ("State of charge", "Battery power", "Power setpoint", "Control mode")
ENODE_NAMES = ("State of charge", "Operation mode", "Charge status", "Command status")
# Written by scripts/demo_setup.py: dashboard url path / view path.
DASHBOARD_PATH = "batteries/batteries"
# The flags this machine's Chromium needs (headless is set by playwright itself).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 1000}

# Text of the page including every open shadow root (HA's frontend is web components throughout).
DEEP_TEXT_JS = """(root) => {
  const out = [];
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      const text = node.textContent.trim();
      if (text) out.push(text);
      return;
    }
    if (node.nodeName === "STYLE" || node.nodeName === "SCRIPT") return;
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) walk(child);
  };
  walk(root || document);
  return out.join("\\n");
}"""
# Height of the page's scrolling content (HA scrolls inside its layout, not the document). Only
# scrollers about as tall as the window count, not the small ones inside cards (the logbook).
CONTENT_HEIGHT_JS = """() => {
  let max = document.documentElement.scrollHeight;
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.scrollHeight > el.clientHeight + 1 && el.clientHeight >= 0.7 * window.innerHeight) {
        const top = el.getBoundingClientRect().top + window.scrollY;
        max = Math.max(max, top + el.scrollHeight);
      }
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return Math.ceil(max);
}"""


class CheckError(Exception):
    """A check that makes the rest of the run pointless."""


def say(message: str) -> None:
    """Print one line of progress."""
    sys.stdout.write(f"[check] {message}\n")
    sys.stdout.flush()


@dataclass
class Results:
    """Failed checks, collected so that one run reports all of them."""

    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        """Record one check."""
        if ok:
            say(f"ok   {what}")
        else:
            self.failures.append(f"{what}: {detail}" if detail else what)
            say(f"FAIL {what}{': ' + detail if detail else ''}")
        return ok


def wait_for(
    what: str, probe: Callable[[], Any], timeout: float = 30.0, interval: float = 0.5
) -> Any:
    """Poll probe() until it returns something truthy; raise CheckError on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        with contextlib.suppress(OSError, ValueError):
            last = probe()
            if last:
                return last
        if time.monotonic() > deadline:
            raise CheckError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class HomeAssistantApi:
    """The REST API, with a token from the login flow (what the frontend does)."""

    def __init__(self, url: str, username: str, password: str) -> None:
        """Log in."""
        self.url = url.rstrip("/")
        client_id = f"{self.url}/"
        flow = self._request(
            "POST",
            "/auth/login_flow",
            {
                "client_id": client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{client_id}?auth_callback=1",
            },
        )
        result = self._request(
            "POST",
            f"/auth/login_flow/{flow['flow_id']}",
            {"client_id": client_id, "username": username, "password": password},
        )
        if result.get("type") != "create_entry":
            raise CheckError(f"REST login as {username} failed: {result}")
        token = self._request(
            "POST",
            "/auth/token",
            form={
                "grant_type": "authorization_code",
                "code": result["result"],
                "client_id": client_id,
            },
        )
        self.token = token["access_token"]

    def _request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        form: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Any:
        headers = {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(  # noqa: S310 - the URL is Home Assistant's, given on the command line
            self.url + path, data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise CheckError(
                f"{method} {path}: HTTP {err.code} {err.read()[:300].decode(errors='replace')}"
            ) from err
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode()

    def get(self, path: str) -> Any:
        """GET an API path."""
        return self._request("GET", path, token=self.token)

    def post(self, path: str, payload: Any) -> Any:
        """POST to an API path."""
        return self._request("POST", path, payload, token=self.token)

    def state(self, entity_id: str) -> dict[str, Any]:
        """The state object of one entity."""
        return dict(self.get(f"/api/states/{entity_id}"))

    def call(self, domain: str, service: str, data: dict[str, Any]) -> None:
        """Perform an action."""
        self.post(f"/api/services/{domain}/{service}", data)

    def template(self, template: str) -> Any:
        """Render a template that renders JSON (the answer is parsed already when it is JSON)."""
        rendered = self.post("/api/template", {"template": template})
        return json.loads(rendered) if isinstance(rendered, str) else rendered


# Every entity of the integration with its device and config entry, in one template.
ENTITIES_TEMPLATE = """
{%- set ns = namespace(rows=[]) -%}
{%- for e in integration_entities('battery_bridge') -%}
  {%- set d = device_id(e) -%}
  {%- set ns.rows = ns.rows + [{
      'entity_id': e,
      'device_id': d,
      'device': device_attr(d, 'name_by_user') or device_attr(d, 'name'),
      'entry': config_entry_attr(config_entry_id(e), 'title'),
      'state': states(e),
      'name': state_attr(e, 'friendly_name')}] -%}
{%- endfor -%}
{{ ns.rows | tojson }}
"""


@dataclass
class Device:
    """One device of the integration with its (enabled) entities."""

    device_id: str
    name: str
    entry: str
    entities: dict[str, str]  # entity_id -> friendly name
    states: dict[str, str]  # entity_id -> state

    def entity(self, domain: str, suffix: str) -> str:
        """The entity id of this device's entity of a domain whose id ends in suffix."""
        for entity_id in self.entities:
            if entity_id.startswith(f"{domain}.") and entity_id.endswith(suffix):
                return entity_id
        raise CheckError(f"{self.name} has no {domain}.*{suffix} entity: {sorted(self.entities)}")

    def shown_names(self) -> list[str]:
        """Entity names as the device page shows them (the device name is left off)."""
        names = []
        for friendly in self.entities.values():
            name = friendly.removeprefix(self.name).strip()
            names.append(name or friendly)
        return sorted(names)


def devices_by_entry(api: HomeAssistantApi) -> dict[str, list[Device]]:
    """Devices of the integration, grouped by config entry title."""
    devices: dict[str, Device] = {}
    for row in api.template(ENTITIES_TEMPLATE):
        if row["state"] is None or not row["device_id"]:
            continue  # disabled (no state) or not attached to a device
        device = devices.setdefault(
            row["device_id"], Device(row["device_id"], row["device"], row["entry"], {}, {})
        )
        device.entities[row["entity_id"]] = row["name"] or ""
        device.states[row["entity_id"]] = row["state"]
    grouped: dict[str, list[Device]] = {}
    for device in sorted(devices.values(), key=lambda d: d.name):
        grouped.setdefault(device.entry, []).append(device)
    return grouped


def raw_translation_keys() -> list[str]:
    """Strings that only appear on a page when a translation is missing."""
    strings = json.loads(TRANSLATIONS.read_text(encoding="utf-8"))
    keys = {f"component.{DOMAIN}", "entity.sensor.", "entity.select.", "entity.number."}
    keys |= {"entity.binary_sensor.", "[object Object]", "undefined"}
    for platform in strings.get("entity", {}).values():
        for key, entity in platform.items():
            if "_" in key:
                keys.add(key)
            keys.update(state for state in entity.get("state", {}) if "_" in state)
    return sorted(keys)


def deep_text(page: Page) -> str:
    """All text of the page, shadow roots included."""
    return str(page.evaluate(DEEP_TEXT_JS))


def screenshot(page: Page, path: Path) -> Path:
    """Full-page screenshot; the viewport is stretched to the scrolling content first."""
    height = max(VIEWPORT["height"], min(int(page.evaluate(CONTENT_HEIGHT_JS)) + 40, 6000))
    page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
    page.wait_for_timeout(500)  # let the layout settle after the resize
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size(VIEWPORT)
    say(f"screenshot {path}")
    return path


def settle(page: Page) -> None:
    """Wait for the network to go quiet (HA keeps a websocket open, which does not count)."""
    with contextlib.suppress(PlaywrightError):
        page.wait_for_load_state("networkidle", timeout=10_000)


def toasts(page: Page) -> list[str]:
    """Texts of the toasts currently shown."""
    texts = []
    for toast in page.locator("ha-toast").all():
        with contextlib.suppress(PlaywrightError):
            if toast.is_visible():
                texts.append(toast.inner_text(timeout=2000).strip() or "(empty toast)")
    return texts


def log_in(page: Page, url: str, username: str, password: str) -> None:
    """Log in through HA's login page."""
    page.goto(f"{url}/")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Log in").click()
    try:
        page.wait_for_url(lambda u: "/auth/" not in u, timeout=30_000)
        try:
            page.locator("ha-sidebar").first.wait_for(timeout=30_000)
        except PlaywrightError:
            # On the first start of a new ./config the frontend can stay at "Loading..." while
            # Home Assistant finishes starting; the token is kept, so a reload goes on from there.
            say("frontend still loading after 30 s: reloading once")
            page.reload()
            page.locator("ha-sidebar").first.wait_for(timeout=60_000)
    except PlaywrightError as err:
        raise CheckError(
            f"login as {username} did not reach the frontend: {deep_text(page)[:300]}"
        ) from err
    say(f"logged in as {username} ({page.url})")


@dataclass
class Session:
    """What the page checks share."""

    results: Results
    page: Page
    api: HomeAssistantApi
    url: str
    raw_keys: list[str]
    shots: Path


def check_page_text(
    results: Results, page: Page, label: str, expected: list[str], raw_keys: list[str]
) -> None:
    """Expected names shown, no raw translation keys, no toast."""
    text = deep_text(page)
    lines = set(text.splitlines())
    missing = [name for name in expected if name not in lines]
    results.check(not missing, f"{label}: translated entity names shown", f"missing {missing}")
    raw = [key for key in raw_keys if key in text]
    results.check(not raw, f"{label}: no raw translation keys", f"found {raw}")
    shown = toasts(page)
    results.check(not shown, f"{label}: no toast", f"{shown}")


def check_integration_page(session: Session) -> Path:
    """The integration page lists the three demo entries, all loaded."""
    results, page, api, url = session.results, session.page, session.api, session.url
    entries = api.get(f"/api/config/config_entries/entry?domain={DOMAIN}")
    states = {entry["title"]: entry["state"] for entry in entries}
    results.check(
        sorted(states) == sorted(ENTRY_TITLES),
        "REST: exactly the three demo entries",
        f"got {sorted(states)}",
    )
    results.check(
        all(state == "loaded" for state in states.values()),
        "REST: all entries loaded",
        f"{states}",
    )
    page.goto(f"{url}/config/integrations/integration/{DOMAIN}")
    page.get_by_text("Battery Bridge", exact=True).first.wait_for(timeout=30_000)
    for title in ENTRY_TITLES:
        with contextlib.suppress(PlaywrightError):
            page.get_by_text(title, exact=True).first.wait_for(timeout=15_000)
    settle(page)
    lines = set(deep_text(page).splitlines())
    missing = [title for title in ENTRY_TITLES if title not in lines]
    results.check(not missing, "integration page lists the three entries", f"missing {missing}")
    for error in ("Failed to set up", "Retrying setup", "Not loaded", "Setup failed"):
        results.check(error not in lines, f"integration page: no '{error}'")
    results.check(not toasts(page), "integration page: no toast", f"{toasts(page)}")
    return screenshot(page, session.shots / "integration.png")


def open_device(page: Page, url: str, device: Device) -> None:
    """Open a device page and wait until its entities are shown."""
    page.goto(f"{url}/config/devices/device/{device.device_id}")
    page.get_by_text("State of charge", exact=True).first.wait_for(timeout=30_000)
    settle(page)


def pick_control_mode(page: Page, option_label: str) -> None:
    """Pick an option of the Control mode select in the device page's Controls card."""
    trigger = page.locator("hui-select-entity-row ha-picker-field[aria-label='Control mode']")
    trigger.first.click(timeout=15_000)
    page.get_by_role("menuitem", name=option_label, exact=True).first.click(timeout=15_000)


def check_setpoint(results: Results, page: Page, api: HomeAssistantApi, number: str) -> None:
    """Set the FEMS power setpoint through the REST API and find it in the Controls card.

    The FEMS number shows the setpoint the FEMS applied (read back, battery side), which the
    simulator lets wander by a few percent around the written one: compare with a tolerance.
    """
    attrs = api.state(number)["attributes"]
    step = float(attrs.get("step", 1))
    value = round(min(float(attrs["max"]), 1234) / step) * step
    tolerance = max(100.0, 0.05 * abs(value))
    say(f"setting {number} to {value:g} W through the REST API (tolerance {tolerance:g} W)")
    api.call("number", "set_value", {"entity_id": number, "value": value})
    wait_for(
        f"{number} within {tolerance:g} W of {value:g} (REST)",
        lambda: abs(float(api.state(number)["state"]) - value) <= tolerance,
        timeout=30,
    )
    # The Controls card has several number rows (setpoint, charge / discharge limits).
    box = (
        page.locator("hui-number-entity-row")
        .filter(has_text="Power setpoint")
        .locator("input")
        .first
    )
    try:
        page.wait_for_function(
            "([el, v, tol]) => el.value !== '' && Math.abs(Number(el.value) - v) <= tol",
            arg=[box.element_handle(timeout=10_000), value, tolerance],
            timeout=30_000,
        )
        ok = True
    except PlaywrightError:
        ok = False
    results.check(
        ok,
        f"REST change of Power setpoint to {value:g} W shown in the UI",
        f"the input shows {box.input_value() if box.count() else 'nothing'!r}",
    )
    say(f"{number}: REST {api.state(number)['state']} W, UI {box.input_value()!r}")


def check_fems(session: Session, device: Device) -> Path:
    """FEMS device page; control mode through the UI, setpoint through the REST API."""
    results, page, api, url = session.results, session.page, session.api, session.url
    raw_keys = session.raw_keys
    open_device(page, url, device)
    check_page_text(
        results, page, f"FEMS device page ({device.name})", device.shown_names(), raw_keys
    )
    for name in FEMS_NAMES:
        results.check(name in device.shown_names(), f"FEMS has an entity named '{name}'")

    select = device.entity("select", "control_mode")
    number = device.entity("number", "power_setpoint")
    original = api.state(select)["state"]
    options = api.state(select)["attributes"].get("options", [])
    target = "power" if original != "power" else "auto"
    labels = {"power": "Power", "auto": "Auto"}
    results.check(target in options, f"{select} offers '{target}'", f"options {options}")
    say(f"{select} is '{original}': picking '{labels[target]}' in the Controls card")
    try:
        pick_control_mode(page, labels[target])
        changed = wait_for(
            f"{select} == {target} (REST)",
            lambda: api.state(select)["state"] == target,
            timeout=30,
        )
        results.check(
            changed, f"UI change of Control mode to '{labels[target]}' seen by the REST API"
        )
        picker = page.locator("hui-select-entity-row ha-picker-field[aria-label='Control mode']")
        shown_mode = str(picker.first.evaluate(DEEP_TEXT_JS))
        results.check(
            labels[target] in shown_mode,
            f"Controls card shows Control mode '{labels[target]}'",
            f"shows {shown_mode!r}",
        )
        shown = toasts(page)
        results.check(not shown, "no toast after the UI change", f"{shown}")

        if target == "power":
            check_setpoint(results, page, api, number)
        settle(page)
        return screenshot(page, session.shots / "device_fems.png")
    finally:
        if api.state(select)["state"] != original:
            say(f"setting {select} back to '{original}' (REST)")
            api.call("select", "select_option", {"entity_id": select, "option": original})


def check_enode(session: Session, device: Device) -> Path:
    """Enode device page: names translated, operation mode shown with a translated option."""
    results, page, url, raw_keys = session.results, session.page, session.url, session.raw_keys
    open_device(page, url, device)
    check_page_text(
        results, page, f"Enode device page ({device.name})", device.shown_names(), raw_keys
    )
    for name in ENODE_NAMES:
        results.check(name in device.shown_names(), f"Enode battery has an entity named '{name}'")
    strings = json.loads(TRANSLATIONS.read_text(encoding="utf-8"))
    mode_labels = strings["entity"]["select"]["operation_mode"]["state"]
    select = device.entity("select", "operation_mode")
    mode = device.states[select]
    label = mode_labels.get(mode, mode)
    picker = page.locator("hui-select-entity-row ha-picker-field[aria-label='Operation mode']")
    shown = str(picker.first.evaluate(DEEP_TEXT_JS)) if picker.count() else ""
    results.check(label in shown, f"Operation mode shows '{label}' ({mode})", f"shows {shown!r}")
    return screenshot(page, session.shots / "device_enode.png")


@dataclass
class Sentence:
    """One sentence for Assist: the answer it must give and what must have changed."""

    language: str
    text: str
    answer: str  # regular expression, searched in the spoken answer
    verify: Callable[[re.Match[str]], Any] | None = None  # truthy when the change is seen
    what: str = ""
    retry: bool = False  # ask again until the answer matches (a read after a change)


class FemsSimulator:
    """Reads the FEMS simulator's channels through its REST API (guest password)."""

    def __init__(self, url: str, password: str) -> None:
        """Keep the address and the credentials."""
        self.url = url.rstrip("/")
        self.auth = "Basic " + base64.b64encode(f"x:{password}".encode()).decode()

    def value(self, channel: str) -> Any:
        """The value of one channel ("ctrlApiRest0/ApiWorkerLog")."""
        request = urllib.request.Request(  # noqa: S310 - the simulator's URL, from the command line
            f"{self.url}/rest/channel/{channel}", headers={"Authorization": self.auth}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())["value"]

    def written_setpoint(self) -> float | None:
        """The setpoint the simulator's REST API worker applies (written by Home Assistant)."""
        log = str(self.value("ctrlApiRest0/ApiWorkerLog") or "")
        for part in log.split("|"):
            address, _, value = part.partition(":")
            if address.endswith("/SetActivePowerEquals"):
                with contextlib.suppress(ValueError):
                    return float(value)
        return None


def converse(api: HomeAssistantApi, text: str, language: str) -> dict[str, Any]:
    """Send one sentence to Assist (the default agent) and return its response."""
    reply = api.post("/api/conversation/process", {"text": text, "language": language})
    return dict(reply["response"])


def _near(value: Any, target: float, tolerance: float) -> bool:
    try:
        return abs(float(value) - target) <= tolerance
    except TypeError, ValueError:
        return False


def voice_sentences(
    api: HomeAssistantApi, sim: FemsSimulator, fems: Device, enode: Device
) -> list[Sentence]:
    """The sentences of issue 9 against the demo: FEMS (simulator checked) and one Enode battery."""
    soc = fems.entity("sensor", "_state_of_charge")
    setpoint = fems.entity("number", "_power_setpoint")
    mode = fems.entity("select", "_control_mode")
    override = fems.entity("sensor", "_override")
    override_end = fems.entity("sensor", "_override_end")
    enode_override = enode.entity("sensor", "_override")
    state = lambda entity_id: api.state(entity_id)["state"]

    def soc_matches(match: re.Match[str]) -> bool:
        return _near(state(soc), float(match[1]), 2)

    def written(target: float) -> Callable[[re.Match[str]], bool]:
        # A hybrid FEMS takes an AC setpoint (battery + DC PV): what Home Assistant wrote is
        # checked on the battery's DC power, which drifts with the PV until the next write.
        tolerance = max(200.0, 0.15 * abs(target))
        return lambda _: (
            sim.written_setpoint() is not None
            and _near(sim.value("ess0/DcDischargePower"), target, tolerance)
            and _near(state(setpoint), target, tolerance)
        )

    def spoken_setpoint(match: re.Match[str]) -> bool:
        return _near(match[1].replace(",", "").replace(".", ""), 1000, 200)

    def charging_for(hours: float) -> Callable[[re.Match[str]], bool]:
        def probe(_: re.Match[str]) -> bool:
            end = api.state(override_end)["state"]
            try:
                left = datetime.fromisoformat(end) - datetime.now(UTC)
            except ValueError:
                return False
            return (
                state(override) == "charge"
                and abs(left.total_seconds() - hours * 3600) < 300
                and sim.written_setpoint() is not None
                and float(sim.value("ess0/DcDischargePower")) < 0
            )

        return probe

    name = enode.name
    return [
        Sentence(
            "en", "what is the charge of FEMS", r"^FEMS is at (\d+) %", soc_matches, "as the sensor"
        ),
        Sentence(
            "de", "wie voll ist FEMS", r"^FEMS ist zu (\d+) % geladen", soc_matches, "as the sensor"
        ),
        Sentence(
            "en",
            "set FEMS power to -1500 watts",
            r"^FEMS charges with 1[,.]?500 W",
            written(-1500),
            "the simulator's battery charges with about 1500 W",
        ),
        Sentence(
            "de",
            "setze FEMS auf 1000 watt",
            r"^FEMS entlädt mit 1[,.]?000 W",
            written(1000),
            "the simulator's battery discharges with about 1000 W",
        ),
        Sentence(
            "en",
            "what is the setpoint of FEMS",
            r"FEMS is to discharge with ([\d,.]+) W",
            spoken_setpoint,
            "the spoken setpoint is about 1000 W",
            retry=True,  # it reads back what the FEMS applies, a poll later
        ),
        Sentence(
            "en",
            "charge FEMS for two hours",
            r"^FEMS: override \w+ until",
            charging_for(2),
            "override charge, ends in 2 h, the simulator's battery charges",
        ),
        Sentence("en", "what is the override of FEMS", r"^FEMS: override \w+ until"),
        Sentence(
            "en",
            "stop the override of FEMS",
            r"^Stopped the override of FEMS",
            lambda _: state(override) == "none",
            "no override",
        ),
        Sentence(
            "de",
            "lade FEMS für 2 stunden",
            r"^FEMS: Übersteuerung \w+ bis",
            charging_for(2),
            "override charge, ends in 2 h, the simulator's battery charges",
        ),
        Sentence(
            "de",
            "beende die übersteuerung von FEMS",
            r"^Die Übersteuerung von FEMS ist beendet",
            lambda _: state(override) == "none",
            "no override",
        ),
        Sentence(
            "en",
            "set FEMS to auto",
            r"^FEMS is set to Auto",
            lambda _: state(mode) == "auto",
            "control mode auto",
        ),
        Sentence("de", "in welchem modus ist FEMS", r"^FEMS ist im Modus Auto", retry=True),
        Sentence(
            "en",
            f"charge {name} for 1 hour",
            rf"^{re.escape(name)}: override \w+ until",
            lambda _: state(enode_override) == "charge",
            "Enode override charge",
        ),
        Sentence(
            "de",
            f"stoppe die übersteuerung von {name}",
            rf"^Die Übersteuerung von {re.escape(name)} ist beendet",
            lambda _: state(enode_override) == "none",
            "Enode override stopped",
        ),
    ]


def check_voice(
    results: Results, api: HomeAssistantApi, sim: FemsSimulator, fems: Device, enode: Device
) -> None:
    """Assist sentences (en, de) through /api/conversation/process; changes checked."""
    select = fems.entity("select", "_control_mode")
    original = api.state(select)["state"]
    try:
        for sentence in voice_sentences(api, sim, fems, enode):
            label = f"Assist ({sentence.language}) '{sentence.text}'"
            deadline = time.monotonic() + (30 if sentence.retry else 0)
            while True:
                response = converse(api, sentence.text, sentence.language)
                speech = response.get("speech", {}).get("plain", {}).get("speech", "")
                match = re.search(sentence.answer, speech)
                if match is not None or time.monotonic() > deadline:
                    break
                time.sleep(2)
            ok = results.check(
                match is not None and response.get("response_type") != "error",
                f"{label} -> {speech!r}",
                f"expected /{sentence.answer}/ ({response.get('response_type')})",
            )
            if ok and match is not None and sentence.verify is not None:
                verify = sentence.verify
                try:
                    wait_for(sentence.what, functools.partial(verify, match), timeout=30)
                    results.check(True, f"{label}: {sentence.what}")
                except CheckError as err:
                    results.check(False, f"{label}: {sentence.what}", str(err))
    finally:
        for device in (fems, enode):
            with contextlib.suppress(CheckError):
                api.call(DOMAIN, "stop_override", {"device_id": device.device_id})
        if api.state(select)["state"] != original:
            say(f"setting {select} back to '{original}' (REST)")
            api.call("select", "select_option", {"entity_id": select, "option": original})


def check_dashboard(session: Session, devices: list[Device], fems: Device) -> Path:
    """The Batteries dashboard: a section per battery; FEMS's charge / stop buttons work."""
    results, page, api, url = session.results, session.page, session.api, session.url
    page.goto(f"{url}/{DASHBOARD_PATH}")
    page.get_by_text("Stop override", exact=True).first.wait_for(timeout=30_000)
    settle(page)
    page.wait_for_timeout(2000)  # gauges animate
    lines = set(deep_text(page).splitlines())
    missing = [device.name for device in devices if device.name not in lines]
    results.check(not missing, "Batteries dashboard: a section per battery", f"missing {missing}")
    for name in ("State of charge", "Charge 1 h", "Discharge 1 h", "Hold 1 h", "Control mode"):
        results.check(name in lines, f"Batteries dashboard shows '{name}'")
    errors = [line for line in lines if "Configuration error" in line or "not available" in line]
    results.check(not errors, "Batteries dashboard: no card errors", f"{errors}")
    results.check(not toasts(page), "Batteries dashboard: no toast", f"{toasts(page)}")
    shot = screenshot(page, session.shots / "dashboard_batteries.png")

    override = fems.entity("sensor", "_override")
    section = page.locator("hui-grid-section").filter(has=page.get_by_text(fems.name, exact=True))
    for button, expected in (("Hold 1 h", "hold"), ("Stop override", "none")):
        try:
            section.locator("hui-button-card").filter(has_text=button).first.click(timeout=15_000)
            wait_for(
                f"{override} == {expected}",
                lambda expected=expected: api.state(override)["state"] == expected,
                timeout=30,
            )
            ok = True
        except (CheckError, PlaywrightError) as err:
            say(f"{button}: {err}")
            ok = False
        results.check(ok, f"Batteries dashboard: FEMS '{button}' -> {override} '{expected}'")
    return shot


def check_energy(session: Session) -> list[Path]:
    """The Energy dashboard is configured (no set-up prompt) and shows the batteries."""
    results, page, url = session.results, session.page, session.url
    page.goto(f"{url}/energy")
    try:
        page.get_by_text("Energy distribution", exact=True).first.wait_for(timeout=30_000)
        shown = True
    except PlaywrightError:
        shown = False
    settle(page)
    page.wait_for_timeout(3000)  # charts render
    text = deep_text(page)
    results.check(shown, "Energy dashboard shows its energy distribution", text[:300])
    results.check("Battery" in text, "Energy dashboard shows a battery")
    shots = [screenshot(page, session.shots / "energy.png")]
    with contextlib.suppress(PlaywrightError):
        page.get_by_role("tab", name="Now").first.click(timeout=10_000)
        settle(page)
        page.wait_for_timeout(3000)
        shots.append(screenshot(page, session.shots / "energy_now.png"))
    return shots


def log_records(path: Path) -> Iterator[str]:
    """Records of HA's log (a record is a timestamped line with its traceback lines)."""
    record: list[str] = []
    start = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if start.match(line) and record:
            yield "\n".join(record)
            record = []
        record.append(line)
    if record:
        yield "\n".join(record)


def check_log(results: Results, path: Path) -> None:
    """No ERROR (or CRITICAL) record of HA's log mentions battery_bridge."""
    if not path.exists():
        results.check(False, "Home Assistant log exists", str(path))
        return
    level = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) ")
    bad, warnings = [], 0
    for record in log_records(path):
        if DOMAIN not in record:
            continue
        if level.match(record):
            bad.append(record.splitlines()[0][:300])
        elif " WARNING " in record.splitlines()[0] and "has not been tested" not in record:
            warnings += 1
    results.check(
        not bad, f"{path.name}: no ERROR record mentioning {DOMAIN}", "\n  " + "\n  ".join(bad)
    )
    if warnings:
        say(f"note: {warnings} WARNING record(s) mention {DOMAIN} in {path}")


def run(args: argparse.Namespace) -> int:
    """All checks; returns the exit code."""
    results = Results()
    shots = args.screenshots
    shots.mkdir(parents=True, exist_ok=True)
    url = args.url.rstrip("/")
    api = HomeAssistantApi(url, args.username, args.password)
    say(f"REST API: logged in as {args.username}")
    wait_for(
        "the three Battery Bridge entries to load",
        lambda: (
            len(
                [
                    e
                    for e in api.get(f"/api/config/config_entries/entry?domain={DOMAIN}")
                    if e["state"] == "loaded"
                ]
            )
            >= len(ENTRY_TITLES)
        ),
        timeout=args.timeout,
        interval=2,
    )
    grouped = wait_for(
        "the FEMS and Enode devices with available entities",
        lambda: (
            (g := devices_by_entry(api)).get(FEMS_ENTRY)
            and g.get(ENODE_ENTRY)
            and all(
                state != "unavailable"
                for d in g[FEMS_ENTRY] + g[ENODE_ENTRY]
                for state in d.states.values()
            )
            and g
        ),
        timeout=args.timeout,
        interval=2,
    )
    for title, devices in sorted(grouped.items()):
        say(f"{title}: " + ", ".join(f"{d.name} ({len(d.entities)} entities)" for d in devices))
    fems, enode = grouped[FEMS_ENTRY][0], grouped[ENODE_ENTRY][0]
    raw_keys = raw_translation_keys()
    saved: list[Path] = []
    console: list[str] = []

    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(
            executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(30_000)

            def on_console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    console.append(message.text[:300])

            page.on("console", on_console)
            page.on("pageerror", lambda err: console.append(f"page error: {err}"[:300]))
            log_in(page, url, args.username, args.password)
            session = Session(results, page, api, url, raw_keys, shots)
            saved.append(check_integration_page(session))
            saved.append(check_fems(session, fems))
            saved.append(check_enode(session, enode))
            check_voice(results, api, FemsSimulator(args.fems_url, args.fems_password), fems, enode)
            devices = [device for group in grouped.values() for device in group]
            saved.append(check_dashboard(session, devices, fems))
            saved += check_energy(session)
        except (CheckError, PlaywrightError) as err:
            results.failures.append(f"aborted: {err}")
            say(f"FAIL aborted: {err}")
            with contextlib.suppress(PlaywrightError, NameError):
                saved.append(screenshot(page, shots / "failure.png"))
        finally:
            browser.close()

    check_log(results, args.log)
    for message in console:
        say(f"note: browser console: {message}")
    say("screenshots: " + ", ".join(str(p) for p in saved))
    if results.failures:
        sys.stderr.write(f"\n{len(results.failures)} check(s) failed:\n")
        for failure in results.failures:
            sys.stderr.write(f"  - {failure}\n")
        return 1
    say("all checks passed")
    return 0


def main() -> int:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8123")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--username", default="demo")
    parser.add_argument("--password", default="demo")
    parser.add_argument("--fems-url", default="http://127.0.0.1:8084")
    parser.add_argument("--fems-password", default="user", help="the simulator's guest password")
    parser.add_argument("--log", type=Path, default=ROOT / "config" / "home-assistant.log")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "e2e" / "screenshots")
    parser.add_argument(
        "--timeout", type=float, default=180, help="seconds to wait for the entries"
    )
    args = parser.parse_args()
    try:
        return run(args)
    except CheckError as err:
        sys.stderr.write(f"[check] FAIL {err}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
