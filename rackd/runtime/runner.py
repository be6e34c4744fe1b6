"""One runner per device: polls on its own interval and phase, backs off, tracks availability, raises events."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import structlog

from rackd.bus.publisher import Publisher
from rackd.config import DefaultsConfig, DeviceSpec
from rackd.drivers.contract import DeviceSession, Driver, PowerControl, SessionContext
from rackd.errors import (
    AuthError,
    DeviceError,
    DeviceProtocolError,
    DeviceRefusedError,
    DriverBusyError,
    SessionLimitError,
    UnsupportedError,
    describe,
)
from rackd.model import (
    Event,
    EventType,
    Health,
    Inventory,
    LogBatch,
    PowerAction,
    PowerState,
    Reading,
    SensorKind,
    Severity,
)
from rackd.runtime.backoff import Backoff, phase_offset
from rackd.runtime.clock import Clock
from rackd.runtime.cursors import CursorStore
from rackd.runtime.reader import DeviceRead, DeviceReader, call_with_deadline
from rackd.runtime.state import Availability, DeviceState, SourceState, key_figures, readings_health

T = TypeVar("T")

_HEALTH_SEVERITY = {
    Health.OK: Severity.INFO,
    Health.UNKNOWN: Severity.WARNING,
    Health.WARNING: Severity.WARNING,
    Health.CRITICAL: Severity.CRITICAL,
}
# A new session reuses the inventory an earlier one read this recently: a FRU read is tens of requests, and a
# re-login after one lost request must not repeat it before the device's telemetry is out again. A board swapped
# behind the BMC shows within this time.
INVENTORY_MAX_AGE = 3600.0
SESSION_FREE_MARGIN = 0.1  # seconds past the moment a driver said a session frees (it rounds to 0.1 s)
# Errors after which the session is still trusted; everything else discards it (never reuse a dubious session).
_SESSION_SURVIVES = (UnsupportedError, DeviceRefusedError, DriverBusyError)


class _SessionLostError(DeviceError):
    """A poll's call failed because a command had discarded the session under it (the command reports why)."""


class DeviceRunner:
    """Polls one device's driver session forever; a device fault never escapes `run()`."""

    def __init__(
        self,
        spec: DeviceSpec,
        driver: Driver,
        publisher: Publisher,
        clock: Clock,
        cursors: CursorStore,
        defaults: DefaultsConfig,
        state_dir: Path,
        rng: random.Random | None = None,
    ) -> None:
        """Prepare the runner; nothing talks to the device until `run()`."""
        self.spec = spec
        self._driver = driver
        self._publisher = publisher
        self._clock = clock
        self._cursors = cursors
        self._defaults = defaults
        self._state_dir = state_dir
        self._backoff = Backoff(defaults.backoff_initial, defaults.backoff_max, rng or random.Random())
        self._log = structlog.get_logger("rackd.runner").bind(device=spec.id, source=spec.role)
        self._reader: DeviceReader | None = None
        self._inventory: Inventory | None = None  # as last read, kept across sessions (INVENTORY_MAX_AGE)
        self._inventory_read_at: float | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._poll_now = asyncio.Event()
        self._first_poll = asyncio.Event()
        # A command does not wait for a poll in progress: drivers serialize one device's calls themselves and put
        # commands first (the driver contract). The runner keeps one login and one command at a time per device.
        self._opening = asyncio.Lock()
        self._commanding = asyncio.Lock()
        self._power_epoch = 0  # counts commands that read or switched power: a poll begun before one is stale
        self.source = SourceState()
        self.power: dict[str, PowerState] = {}
        self.health: Health = Health.UNKNOWN
        self.figures: dict[str, float | None] = {}
        self.readings: list[Reading] = []
        self.last_on_power: float | None = None
        self.extra_sources: dict[str, SourceState] = {}  # e.g. the node's console, kept by the console service
        self._sensor_health: dict[str, Health] = {}
        self._sensor_states: dict[str, tuple[str, ...]] = {}
        self.polls = 0
        self.failures = 0
        self.skipped_ticks = 0
        self.busy_skips = 0  # polls skipped because the driver had no capacity (the device was not asked)
        self._busy_streak = 0
        self.open_attempts = 0

    @property
    def available(self) -> bool:
        """True when the last poll succeeded."""
        return self.source.availability is Availability.UP

    def poll_soon(self) -> None:
        """Poll as soon as the current wait allows (after a command changed the device)."""
        self._poll_now.set()

    async def wait_first_poll(self) -> bool:
        """Wait until the first poll ended either way; True if it succeeded."""
        await self._first_poll.wait()
        return self.available

    async def read_power(self, target: str) -> PowerState:
        """Observe one target's power state now (alongside a poll in progress: the driver puts commands first)."""
        async with self._commanding:
            self._power_epoch += 1
            state = await self._command_call(f"power state of {target}", lambda s: s.get_power(target), repeatable=True)
            self.observed_power(target, state)
        return state

    async def send_power(self, target: str, action: PowerAction) -> None:
        """Ask the device to act on one target (accepted, not verified)."""
        async with self._commanding:
            self._power_epoch += 1
            await self._command_call(f"power {action} on {target}", lambda s: s.set_power(target, action))

    async def power_targets(self) -> list[str]:
        """Ids of the session's power targets."""
        async with self._commanding:
            reader = await self.session(urgent=True)
            if reader.targets is None:
                targets = await self._command_call("power targets", lambda s: s.power_targets(), repeatable=True)
                reader.targets = list(targets)
            return [t.id for t in reader.targets]

    async def _command_call(
        self, what: str, call: Callable[[PowerControl], Awaitable[T]], *, repeatable: bool = False
    ) -> T:
        """One driver call for a command; a read (`repeatable`) whose session a failing poll discarded goes again."""
        repeated = False
        while True:
            reader = await self.session(urgent=True)
            session = reader.session
            if not isinstance(session, PowerControl):
                raise UnsupportedError(f"{self.spec.id}: driver {self.spec.driver} has no power control")
            try:
                return await call_with_deadline(
                    self._clock,
                    self.spec.call_timeout,
                    f"{self.spec.id}: {what}",
                    functools.partial(call, session),
                    urgent=True,
                )
            except DeviceError as exc:
                lost = self._reader is not reader  # a poll that failed meanwhile discarded the session under it
                if not isinstance(exc, _SESSION_SURVIVES):
                    self._discard_session(reader)
                if repeated or not repeatable or not lost or isinstance(exc, DriverBusyError):
                    raise
                # A read is safe to send again on a fresh session; a switching request never is (it may have
                # reached the device before its session failed).
                self._log.debug("command_read_repeated", what=what, error=str(exc))
                repeated = True

    def observed_power(self, target: str, state: PowerState) -> None:
        """Record an observed power state (a poll's, or an action's); raises power_changed on a change."""
        previous = self.power.get(target)
        if previous is not None and previous is not state and state is not PowerState.UNKNOWN:
            self._event(
                EventType.POWER_CHANGED,
                Severity.INFO,
                f"{self.spec.id} {target} power {previous} -> {state}",
                {"target": target, "from": previous.value, "to": state.value},
            )
        if state is not PowerState.UNKNOWN:
            self.power[target] = state

    def set_extra_source(self, name: str, state: SourceState) -> None:
        """Another part of the daemon reports a source of this device (the console): republish the state."""
        self.extra_sources[name] = state
        self._publish_state()

    def request_stop(self) -> None:
        """Finish the poll in progress (if any), then return from `run()`."""
        self._stop.set()

    async def run(self) -> None:
        """Poll until stopped or cancelled."""
        interval = self.spec.poll_interval
        next_at = self._clock.monotonic() + phase_offset(self.spec.id, interval)
        # The retry of a poll that failed on a device that was up queues as that poll did (the driver orders calls
        # by it): the device's telemetry is already late, and the polls that started since are not.
        retry_order: float | None = None
        while not self._stop.is_set():
            await self._sleep(next_at - self._clock.monotonic())
            if self._stop.is_set():
                break
            if self._poll_now.is_set():
                self._poll_now.clear()
                next_at = self._clock.monotonic()  # an out-of-band poll restarts the grid from now
            started = next_at
            order = self._clock.monotonic() if retry_order is None else retry_order
            retry_order = None
            try:
                await self.poll_once(order)
            except DriverBusyError as exc:
                # The daemon, not the device, was short of capacity: skip this tick, keep the availability.
                self._on_busy(exc)
            except _SessionLostError as lost:
                # A command failed on the session this poll was using and discarded it: that failure is the
                # command's to report. Poll again at once on a fresh session, which decides the availability.
                self._log.debug("poll_session_lost_to_command", error=str(lost.__cause__))
                next_at = self._clock.monotonic()
                continue
            except DeviceError as exc:
                self._first_poll.set()
                if self.available:
                    retry_order = order
                await self._sleep(self._on_failure(exc))
                next_at = self._clock.monotonic()  # after a backoff, try again at once
                continue
            except Exception as exc:  # noqa: BLE001 - a driver bug must not stop the daemon: a failed poll
                self._first_poll.set()
                self._log.exception("driver_bug", driver=self.spec.driver)
                await self._sleep(self._on_failure(DeviceProtocolError(f"driver bug: {exc!r}")))
                next_at = self._clock.monotonic()
                continue
            next_at = started + interval
            now = self._clock.monotonic()
            if next_at <= now:
                # The poll overran its interval: skip the ticks it overlapped rather than polling back to back.
                missed = int((now - next_at) // interval) + 1
                next_at += missed * interval
                self.skipped_ticks += missed
                self._log.debug("poll_overrun", skipped_ticks=missed)

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the runtime clock, waking early when a stop is requested."""
        if seconds <= 0 or self._stop.is_set():
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stop.wait())
        waker = asyncio.ensure_future(self._poll_now.wait())
        try:
            await asyncio.wait({sleeper, stopper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
            waker.cancel()

    async def session(self, *, urgent: bool = False, order: float | None = None) -> DeviceReader:
        """The open session (logging in first if needed; `urgent` for a command, which goes ahead of polls)."""
        async with self._opening:  # a poll and a command that both find no session must not both log in
            return await self._open_session(urgent=urgent, order=order)

    async def _open_session(self, *, urgent: bool, order: float | None) -> DeviceReader:
        if self._reader is None:
            assert self.spec.options is not None
            context = SessionContext(
                device_id=self.spec.id,
                role=self.spec.role,
                state_dir=self._state_dir / "drivers" / self.spec.id,
                log=self._log,
            )
            self.open_attempts += 1
            options = self.spec.options
            session = await call_with_deadline(
                self._clock,
                self._defaults.open_timeout,
                f"{self.spec.id}: login",
                lambda: self._driver.open(context, options),
                queue_limit=self._defaults.open_timeout if urgent else self.spec.poll_interval,
                urgent=urgent,
                order=order,
            )
            read_at = self._inventory_read_at
            self._reader = DeviceReader(
                session,
                self._clock,
                self.spec.call_timeout,
                self.spec.poll_interval,
                inventory=self._inventory,
                inventory_tried=read_at is not None and self._clock.monotonic() - read_at < INVENTORY_MAX_AGE,
            )
            self._log.debug("session_opened")
        return self._reader

    async def poll_once(self, order: float) -> DeviceRead:
        """One full poll: read, raise events, publish telemetry and state. Raises DeviceError on failure.

        Every call of the poll, the login too, queues in the driver by `order` (when the poll began).
        """
        reader = await self.session(order=order)
        epoch = self._power_epoch
        cursor = self._cursors.get(self.spec.id, self.spec.role)
        try:
            result = await reader.read(cursor, order=order)
        except DeviceError as exc:
            if self._reader is not reader and not isinstance(exc, DriverBusyError):
                raise _SessionLostError from exc
            raise
        if reader.inventory_read_at is not None:
            self._inventory, self._inventory_read_at = reader.inventory, reader.inventory_read_at
        if result.inventory_error is not None:
            # The readings stand; a session whose inventory read failed is judged as after any failed call.
            self._log.info("inventory_read_failed", error=describe(result.inventory_error))
            if not isinstance(result.inventory_error, _SESSION_SURVIVES):
                self._discard_session(reader)
        if epoch != self._power_epoch:
            # A command read or switched power during this poll: the poll's power states may predate it.
            result.power.clear()
        self.polls += 1
        self._on_success()
        self._process(result)
        self._first_poll.set()
        return result

    def _process(self, result: DeviceRead) -> None:
        now = self._clock.now()
        for target, state in result.power.items():
            self.observed_power(target, state)
        self.power.update(result.power)  # a poll also records "unknown", which an action's reading does not
        self._sensor_events(result.readings)
        if result.log is not None:
            self._log_events(result.log)
        if result.readings:
            self.readings = list(result.readings)
            self._publisher.publish_telemetry(self.spec, self.spec.role, result.readings, now)
            self.health = readings_health(result.readings)
            self.figures = key_figures(result.readings)
            draw = self.figures.get("system_power")
            if draw and PowerState.ON in self.power.values():
                self.last_on_power = draw  # what this node draws when on: the budget check's estimate
        elif self.health is Health.UNKNOWN:
            self.health = Health.OK
        self._publish_state()

    def _sensor_events(self, readings: Sequence[Reading]) -> None:
        for reading in readings:
            before = self._sensor_health.get(reading.sensor)
            if reading.health is not Health.UNKNOWN:
                # Remember the last known health across unreadable spells, so ok → (off) → ok raises nothing
                # and ok → (off) → critical raises one event.
                self._sensor_health[reading.sensor] = reading.health
            if reading.kind is SensorKind.STATUS:
                old_states = self._sensor_states.get(reading.sensor)
                self._sensor_states[reading.sensor] = reading.states
                if old_states is not None and old_states != reading.states:
                    self._event(
                        EventType.SENSOR_STATE_CHANGED,
                        _HEALTH_SEVERITY[reading.health],
                        f"{self.spec.id} {reading.sensor}: {', '.join(reading.states) or 'no state asserted'}",
                        {
                            "sensor": reading.sensor,
                            "from": list(old_states),
                            "to": list(reading.states),
                            "health": reading.health.value,
                        },
                    )
            elif (
                before is not None
                and before is not reading.health
                # A sensor that went unreadable (host off, not scanned) crossed no threshold: not an event.
                and Health.UNKNOWN not in (before, reading.health)
            ):
                self._event(
                    EventType.THRESHOLD_CROSSED,
                    _HEALTH_SEVERITY[reading.health],
                    f"{self.spec.id} {reading.sensor} {before} -> {reading.health} at {reading.value} {reading.unit}",
                    {
                        "sensor": reading.sensor,
                        "kind": reading.kind.value,
                        "value": reading.value,
                        "unit": reading.unit,
                        "from": before.value,
                        "to": reading.health.value,
                    },
                )
            if "counter_reset" in reading.flags:
                self._event(
                    EventType.COUNTER_RESET,
                    Severity.INFO,
                    f"{self.spec.id} {reading.sensor} counter was reset or wrapped",
                    {"sensor": reading.sensor, "value": reading.value, "unit": reading.unit},
                )

    def _log_events(self, batch: LogBatch) -> None:
        if batch.log_reset:
            self._event(
                EventType.LOG_CLEARED,
                Severity.WARNING,
                f"{self.spec.id} event log was cleared or wrapped",
                {"cursor": batch.cursor},
            )
        for entry in batch.entries:
            data = dict(entry.data)
            data["record_id"] = entry.record_id
            if entry.observed_at is not None:
                data["device_time"] = entry.observed_at.isoformat()
            self._event(EventType.LOG_ENTRY, entry.severity, entry.message, data)
        # The cursor moves only after the events are spooled: a crash in between replays, never loses.
        self._cursors.set(self.spec.id, self.spec.role, batch.cursor)

    def _event(self, kind: EventType, severity: Severity, message: str, data: dict[str, object]) -> None:
        self._publisher.publish_event(
            self.spec, Event(kind, severity, message, self._clock.now(), self.spec.role, data)
        )

    def _publish_state(self) -> None:
        state = DeviceState(
            power=dict(self.power),
            health=self.health if self.available else Health.UNKNOWN,
            sources={self.spec.role: self.source, **self.extra_sources},
            figures=dict(self.figures),
            inventory=self._inventory,
        )
        self._publisher.publish_state(self.spec, state)

    def _on_success(self) -> None:
        self._busy_streak = 0
        previous = self.source.availability
        now = self._clock.now()
        self._backoff.reset()
        if previous is Availability.UP:
            self.source = SourceState(Availability.UP, self.source.since, None, now)
            return
        self.source = SourceState(Availability.UP, now, None, now)
        if previous is Availability.DOWN:
            self._log.info("device_recovered")
            self._event(EventType.RECOVERED, Severity.INFO, f"{self.spec.id} is reachable again", {})
        else:
            self._log.info("device_available")

    def _on_busy(self, exc: DriverBusyError) -> None:
        self.skipped_ticks += 1
        self.busy_skips += 1
        self._busy_streak += 1
        # once per streak at info: at site scale an overloaded driver would otherwise log every device every tick
        level = self._log.info if self._busy_streak == 1 else self._log.debug
        level("poll_skipped_driver_busy", error=str(exc), streak=self._busy_streak)

    def _on_failure(self, exc: DeviceError) -> float:
        """Record a failed poll; returns how long to wait before the next attempt."""
        self.failures += 1
        if not isinstance(exc, _SESSION_SURVIVES):
            self._discard_session(self._reader)
        error = describe(exc)
        previous = self.source.availability
        if previous is not Availability.DOWN:
            self.source = SourceState(Availability.DOWN, self._clock.now(), error, self.source.last_success)
            self._log.warning("device_unavailable", error=error)  # once per transition, not per failure
            self._event(
                EventType.UNREACHABLE,
                Severity.WARNING,
                f"{self.spec.id} is unreachable: {error}",
                {"error": error},
            )
            self._publish_state()
        else:
            self._log.debug("poll_failed", error=error)
            if self.source.error != error:
                self.source = SourceState(Availability.DOWN, self.source.since, error, self.source.last_success)
        if isinstance(exc, AuthError):
            # A fixed long wait: BMCs lock an account after a few bad logins.
            return self._defaults.auth_backoff
        if isinstance(exc, SessionLimitError) and exc.retry_after is not None:
            # The driver counts the device's sessions itself and knows when one frees: wait for that, not a growing
            # backoff (at 1,000 BMCs a device refused twice at start-up waited 40 s for a place that freed in 3).
            return exc.retry_after + SESSION_FREE_MARGIN
        return self._backoff.next_delay()

    def _discard_session(self, reader: DeviceReader | None) -> None:
        """Close `reader`'s session in the background, unless it was discarded already (by a poll or a command)."""
        if reader is None or reader is not self._reader:
            return
        self._reader = None
        task = asyncio.create_task(self._close(reader.session), name=f"close-session:{self.spec.id}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, session: DeviceSession) -> None:
        try:
            async with self._clock.timeout(self._defaults.open_timeout):
                await session.close()
        except Exception as exc:  # noqa: BLE001 - closing is best effort: the device may be gone
            self._log.debug("session_close_failed", error=repr(exc))

    async def aclose(self) -> None:
        """Log out of the session and wait for sessions being discarded."""
        self._discard_session(self._reader)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
