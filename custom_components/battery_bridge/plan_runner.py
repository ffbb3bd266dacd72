"""Run a charge plan (plan.py) as a chain of the controller's timed overrides.

In each charging run of the plan a ``charge`` override at the plan's power; between runs, and
from the last run until the deadline, a ``hold`` override (``hold_between``) or nothing of ours
(the fallback, the intent in force before the plan). An override that hands over to the next one
ends ``HANDOVER_GRACE`` after the boundary, so the runner's own step at the boundary replaces it
before its fallback could be written; one after which the fallback follows ends exactly there.

The plan is done when the state of charge reaches the target, missed when the deadline passes
first; it is made again when the price entity changes its forecast or the state of charge falls
behind (``replan_needed``). A write to the battery that is not the plan's own (a setpoint, a mode,
another override) ends the plan; the overrides' own ends do not. The plan's writes name the
runner as their owner (the controller hands it to its intent listeners): a write of anything the
plan's writes set off (an automation) is not the plan's.

Steps, re-plans, start and cancel run one at a time (a lock); after ``async_stop`` (unload)
nothing is written or scheduled any more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import (
    async_track_point_in_utc_time,
    async_track_state_change_event,
)
from homeassistant.util import dt as dt_util

from .api import BatterySnapshot, OverrideMode
from .const import DOMAIN, LOGGER
from .control import BatteryController
from .coordinator import BatteryCoordinator
from .overrides import Override
from .plan import (
    ChargePlan,
    PlanMode,
    PlanStatus,
    PriceSlot,
    ReplanReason,
    merge_price_slots,
    plan_charge,
    replan_needed,
)
from .plan_store import PlanSettings, StoredPlan, plan_store
from .price_source import async_read_forecast

HANDOVER_GRACE: Final = timedelta(minutes=1)
PLAN_RETRY_INTERVAL: Final = timedelta(seconds=30)
_FINAL: Final = (PlanStatus.DONE, PlanStatus.MISSED)


async def async_plan_slots(
    hass: HomeAssistant, settings: PlanSettings, now: datetime, deadline: datetime
) -> list[PriceSlot] | None:
    """Return the prices to plan on: the action's list, under the price entity's forecast."""
    if settings.price_entity is None:
        return list(settings.prices) or None
    forecast = await async_read_forecast(
        hass, settings.price_entity, source=settings.price_source, now=now, deadline=deadline
    )
    return merge_price_slots(settings.prices, forecast)


class _PlanView:
    """What a battery's plan is now: for the sensors, the action's response and the store."""

    def __init__(
        self, hass: HomeAssistant, entry: ConfigEntry, coordinator: BatteryCoordinator
    ) -> None:
        """Start without a plan."""
        self._hass = hass
        self._entry = entry
        self._coordinator = coordinator
        self.plan: ChargePlan | None = None
        self.settings: PlanSettings | None = None
        self.finished: PlanStatus | None = None
        self.replanned: ReplanReason | None = None
        self._own: Override | None = None

    def _soc(self) -> float | None:
        return self._coordinator.data.state.state_of_charge

    def status(self) -> PlanStatus:
        """Return the plan's state now (``IDLE``: no plan)."""
        if self.plan is None:
            return PlanStatus.IDLE
        return self.finished or self.plan.status_at(dt_util.utcnow(), self._soc())

    def next_start(self) -> datetime | None:
        """Return the start of the charging run in force, else of the next one."""
        if self.plan is None or self.finished is not None:
            return None
        now = dt_util.utcnow()
        window = self.plan.window_at(now)
        return window.start if window is not None else self.plan.next_start(now)

    def attributes(self) -> dict[str, Any] | None:
        """Return the Plan sensor's attributes (``None``: no plan)."""
        if self.plan is None or self.settings is None:
            return None
        return {
            **self.plan.as_attributes(),
            "hold_between": self.settings.hold_between,
            "price_entity": self.settings.price_entity,
            "replanned": None if self.replanned is None else self.replanned.value,
        }

    async def _async_save(self) -> None:
        """Store the running plan, or forget it (no plan, or finished)."""
        stored = None
        if self.plan is not None and self.settings is not None and self.finished is None:
            own = None if self._own is None else self._own.started_at
            stored = StoredPlan(plan=self.plan, settings=self.settings, own_since=own)
        await plan_store(self._hass).async_save(
            self._entry.entry_id, self._coordinator.subentry.subentry_id, stored
        )


class _PlanChain(_PlanView):
    """The plan's chain of overrides: its steps, wake timer, re-plans and end."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        coordinator: BatteryCoordinator,
        controller: BatteryController,
    ) -> None:
        """Set up without a plan and without a wake timer."""
        super().__init__(hass, entry, coordinator)
        self._controller = controller
        self._cancel_wake: CALLBACK_TYPE | None = None
        self._lock = asyncio.Lock()  # one step, re-plan, start or cancel at a time
        self._stopped = False
        self._run = 0  # counts the plans started: a late drop must not end a newer plan
        self._ended_run = -1  # the plan run a foreign write ended (set at once, dropped later)

    @property
    def _name(self) -> str:
        return self._coordinator.battery_name

    # --- The chain --------------------------------------------------------------------------

    async def _async_step(self) -> None:
        """Write what the plan wants now and wake at its next boundary."""
        plan, settings = self.plan, self.settings
        if plan is None or settings is None or self.finished is not None:
            return
        self._cancel_wake_timer()
        now = dt_util.utcnow()
        status = plan.status_at(now, self._soc())
        started = bool(plan.windows) and plan.windows[0].start <= now
        hold = OverrideMode.HOLD if settings.hold_between else None
        if status in _FINAL:
            keep = status is PlanStatus.DONE and started and now < plan.deadline
            await self._async_ensure(hold if keep else None, plan.deadline)
            await self._async_finish(status)
            return
        later = plan.next_start(now)
        if (window := plan.window_at(now)) is not None:
            end = window.end + HANDOVER_GRACE if hold else window.end
            until_soc = None if hold else plan.target_soc
            await self._async_ensure(OverrideMode.CHARGE, end, until_soc)
            wake = window.end
        elif hold and started:
            wake = later or plan.deadline
            await self._async_ensure(hold, wake + HANDOVER_GRACE if later else wake)
        else:
            await self._async_ensure(None)
            wake = later or plan.deadline
        if self._stopped:
            return
        self._wake_at(wake)
        await self._async_save()
        self._coordinator.async_update_listeners()

    async def _async_ensure(
        self,
        mode: OverrideMode | None,
        ends_at: datetime | None = None,
        until_soc: float | None = None,
    ) -> None:
        """Make the plan's override ``mode`` (until ``ends_at``) run; ``None``: none of ours.

        The override is started with ``ends_at`` itself, so the running one is recognised by
        comparing its end exactly. Nothing is written once the runner is stopped.
        """
        if self._stopped:
            return
        running = self._controller.override
        mine = running is not None and running is self._own
        if mode is None or ends_at is None or self.settings is None:
            if mine:
                await self._controller.async_stop_override(owner=self, still_wanted=self._wanted())
            return
        wanted = (mode, ends_at, until_soc)
        if (
            mine
            and running is not None
            and (running.mode, running.ends_at, running.until_soc) == (wanted)
        ):
            return
        charge = mode is OverrideMode.CHARGE
        await self._controller.async_start_override(
            mode,
            power_w=self.settings.power_w if charge else None,
            ends_at=ends_at,
            until_soc=until_soc,
            owner=self,
            still_wanted=self._wanted(),
        )

    def _wanted(self) -> Callable[[], bool]:
        """Return a check for the controller: this plan run was not ended by another write.

        A user's write that gets the controller's lock while a step waits for it ends the plan at
        once (``_on_intent``); the waiting step's write is then dropped instead of undoing it.
        """
        run = self._run
        return lambda: self._ended_run != run and not self._stopped

    def _wake_at(self, when: datetime) -> None:
        """Take the next step at ``when`` (replacing a wake timer set before; none once stopped)."""
        self._cancel_wake_timer()
        if not self._stopped:
            self._cancel_wake = async_track_point_in_utc_time(self._hass, self._async_wake, when)

    async def _async_wake(self, _now: datetime) -> None:
        self._cancel_wake = None
        if self._stopped:
            return
        async with self._lock:
            await self._async_step_logged()

    async def _async_step_locked(self) -> None:
        async with self._lock:
            await self._async_step_logged()

    async def _async_step_logged(self) -> None:
        """Take a step (under the lock); a failed write is logged and the step retried later."""
        if self._stopped:
            return
        try:
            await self._async_step()
        except HomeAssistantError as err:
            LOGGER.warning("Charge plan of %s: write failed, retrying: %s", self._name, err)
            self._wake_at(dt_util.utcnow() + PLAN_RETRY_INTERVAL)

    async def _async_replan_locked(
        self, reason: ReplanReason, slots: list[PriceSlot] | None, basis: ChargePlan | None = None
    ) -> None:
        """Re-plan under the lock (``basis``: only if that plan still runs)."""
        async with self._lock:
            if basis is None or self.plan is basis:
                await self._async_replan(reason, slots)

    async def _async_replan(self, reason: ReplanReason, slots: list[PriceSlot] | None) -> None:
        """Make the plan again from now (``slots``: a new forecast; else the plan's prices)."""
        plan, settings, soc = self.plan, self.settings, self._soc()
        if (
            self._stopped
            or plan is None
            or settings is None
            or soc is None
            or self.finished is not None
        ):
            return
        if slots is None and plan.mode is PlanMode.CHEAPEST:
            slots = list(plan.prices)
        capacity = self._coordinator.data.state.usable_capacity_wh or plan.capacity_wh
        self.plan = plan_charge(
            dt_util.utcnow(),
            plan.deadline,
            soc_now=soc,
            target_soc=plan.target_soc,
            capacity_wh=capacity,
            max_charge_w=settings.power_w,
            slots=slots,
            efficiency=plan.efficiency,
            max_price=settings.max_price,
        )
        self.replanned = reason
        LOGGER.info("Charge plan of %s made again (%s)", self._name, reason)
        if self.plan.impossible:
            LOGGER.warning("%s cannot reach %s %% in time: charging now", self._name, soc)
        await self._async_step_logged()

    def _stop_watching(self) -> None:
        """Stop waking at the plan's next boundary (the runner also stops its listeners)."""
        self._cancel_wake_timer()

    def _cancel_wake_timer(self) -> None:
        if self._cancel_wake is not None:
            self._cancel_wake()
            self._cancel_wake = None

    # --- End ------------------------------------------------------------------------------

    async def _async_finish(self, status: PlanStatus) -> None:
        LOGGER.info("Charge plan of %s %s", self._name, status)
        self.finished = status
        self._stop_watching()
        await self._async_save()
        self._coordinator.async_update_listeners()

    async def _async_drop_locked(self, run: int) -> None:
        """Drop the plan (under the lock) if it is still the ``run``-th: a user's write ended it."""
        async with self._lock:
            if self._run == run and not self._stopped:
                await self._async_drop()

    async def _async_drop(self) -> None:
        self._stop_watching()
        self.plan = self.settings = self.finished = self.replanned = None
        self._own = None
        await self._async_save()
        self._coordinator.async_update_listeners()


class PlanRunner(_PlanChain):
    """The charge plan of one battery: its chain of overrides, re-plans, store and state."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        coordinator: BatteryCoordinator,
        controller: BatteryController,
    ) -> None:
        """Set up without a plan; the controller tells the runner about every write."""
        super().__init__(hass, entry, coordinator, controller)
        self._polled: BatterySnapshot | None = None  # the snapshot _on_poll saw last
        self._unsubs: list[CALLBACK_TYPE] = []
        self._cancel_intent = controller.async_add_intent_listener(self._on_intent)

    # --- Start, cancel, restore, stop ------------------------------------------------------

    async def async_start(self, plan: ChargePlan, settings: PlanSettings) -> None:
        """Run ``plan`` (replacing a running one); a failed first write drops it and raises."""
        async with self._lock:
            if self._stopped:
                return
            self._stop_watching()
            self.plan, self.settings, self.finished, self.replanned = plan, settings, None, None
            self._run += 1
            self._watch()
            try:
                await self._async_step()
            except HomeAssistantError:
                await self._async_drop()
                raise

    async def async_cancel(self) -> None:
        """End the plan: the plan's override stops (its fallback is written)."""
        async with self._lock:
            if self.plan is not None and not self._stopped:
                await self._async_ensure(None)
                await self._async_drop()

    async def async_restore(self) -> None:
        """Take up a plan stored before a restart; write only if a step of it is due."""
        store = plan_store(self._hass)
        stored = await store.async_get(self._entry.entry_id, self._coordinator.subentry.subentry_id)
        if stored is None:
            return
        async with self._lock:
            if self._stopped:
                return
            self.plan, self.settings = stored.plan, stored.settings
            running = self._controller.override
            if running is not None and running.started_at == stored.own_since:
                self._own = running
            self._watch()
            await self._async_step_logged()

    @callback
    def async_stop(self) -> None:
        """Stop running (entry unload); the plan stays stored. Nothing is written after it."""
        self._stopped = True
        self._stop_watching()
        self._cancel_intent()

    # --- Watching ------------------------------------------------------------------------

    def _watch(self) -> None:
        self._unsubs = [self._coordinator.async_add_listener(self._on_poll)]
        if self.settings is not None and self.settings.price_entity is not None:
            self._unsubs.append(
                async_track_state_change_event(
                    self._hass, [self.settings.price_entity], self._on_price_change
                )
            )

    def _stop_watching(self) -> None:
        for unsub in self._unsubs:
            unsub()
        self._unsubs = []
        super()._stop_watching()

    def _task(self, coro: Coroutine[Any, Any, None]) -> None:
        self._entry.async_create_task(self._hass, coro, f"{DOMAIN} plan {self._name}")

    @callback
    def _on_poll(self) -> None:
        """Finish at the target; re-plan when the state of charge falls behind (once a poll)."""
        polled = self._coordinator.data
        if (plan := self.plan) is None or self.finished is not None or polled == self._polled:
            return
        self._polled = polled
        soc = self._soc()
        if soc is not None and soc >= plan.target_soc:
            self._task(self._async_step_locked())
        elif (reason := replan_needed(plan, dt_util.utcnow(), soc)) is not None:
            self._task(self._async_replan_locked(reason, None, plan))

    @callback
    def _on_price_change(self, _event: Event[EventStateChangedData]) -> None:
        self._task(self._async_check_prices())

    async def _async_check_prices(self) -> None:
        """Re-plan when the price entity's forecast is no longer the plan's."""
        plan, settings = self.plan, self.settings
        if plan is None or settings is None or self.finished is not None:
            return
        now = dt_util.utcnow()
        try:
            slots = await async_plan_slots(self._hass, settings, now, plan.deadline)
        except HomeAssistantError as err:
            LOGGER.warning("Charge plan of %s keeps its prices: %s", self._name, err)
            return
        if (reason := replan_needed(plan, now, self._soc(), slots)) is not None:
            await self._async_replan_locked(reason, slots, plan)

    @callback
    def _on_intent(
        self, previous: Override | None, current: Override | None, owner: object | None
    ) -> None:
        """Note the plan's own writes; a write of anyone else ends the plan."""
        if owner is self:
            self._own = current
            return
        if self.plan is None or self.finished is not None:
            return
        if (
            current is None
            and previous is not None
            and previous.ended(dt_util.utcnow(), self._soc())
        ):
            return  # an override's own end (time or target)
        if (
            current is not None
            and previous is self._own
            and (previous is not None and current.started_at == previous.started_at)
        ):
            self._own = current  # a changed charge / discharge limit: the override runs on
            return
        LOGGER.info("A write to %s ends its charge plan", self._name)
        self._ended_run = self._run
        self._task(self._async_drop_locked(self._run))
