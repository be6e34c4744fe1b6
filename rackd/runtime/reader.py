"""One full read of one device session — power, sensors, event log, inventory — each call under a deadline."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from rackd.drivers.contract import DeviceSession, EventLogSource, InventorySource, PowerControl, SensorSource
from rackd.drivers.deadline import CallDeadline, bound
from rackd.errors import DeviceError, DeviceTimeoutError, DriverBusyError, UnsupportedError
from rackd.model import Inventory, LogBatch, PowerState, PowerTarget, Reading
from rackd.runtime.clock import Clock

T = TypeVar("T")


@dataclass
class DeviceRead:
    """What one poll saw."""

    power: dict[str, PowerState] = field(default_factory=dict)
    readings: list[Reading] = field(default_factory=list)
    log: LogBatch | None = None
    inventory: Inventory | None = None
    unsupported: list[str] = field(default_factory=list)
    # The inventory is optional: a failed read of it does not fail the poll, whose readings stand. The session it
    # failed on is the owner's to judge (a missed deadline has poisoned it).
    inventory_error: DeviceError | None = None


async def call_with_deadline(
    clock: Clock,
    seconds: float,
    what: str,
    call: Callable[[], Awaitable[T]],
    *,
    queue_limit: float | None = None,
    urgent: bool = False,
    order: float | None = None,
) -> T:
    """Await a driver call under a deadline; an expired deadline becomes DeviceTimeoutError.

    Time the driver spends queueing the call on its own capacity does not count against `seconds` (see
    CallDeadline); a queue longer than `queue_limit` (default: `seconds`) becomes DriverBusyError. `order` (default:
    now) places the call in the driver's queue: the calls of one poll share the poll's start time.
    """
    limit = seconds if queue_limit is None else queue_limit
    deadline: CallDeadline | None = None
    try:
        async with clock.timeout(seconds) as timeout:
            deadline = CallDeadline(
                seconds, limit, urgent=urgent, order=order, now=clock.monotonic, reschedule=timeout.reschedule
            )
            with bound(deadline):
                return await call()
    except TimeoutError:
        if deadline is not None and deadline.paused:
            raise DriverBusyError(
                f"{what}: not started within {limit:g} s: the driver's workers were busy with other devices"
            ) from None
        raise DeviceTimeoutError(f"{what}: no answer within {seconds:g} s") from None


@dataclass
class DeviceReader:
    """Reads a session; remembers what is per-session (targets, inventory) so it is fetched once."""

    session: DeviceSession
    clock: Clock
    call_timeout: float
    queue_limit: float | None = None  # how long a call may wait for the driver's capacity (see CallDeadline)
    targets: list[PowerTarget] | None = None
    inventory: Inventory | None = None  # the owner may hand over what an earlier session read
    inventory_tried: bool = False  # True: this session does not read the inventory (again)
    inventory_read_at: float | None = None  # when this session read it (or learnt it is unsupported)

    async def read(self, log_cursor: str | None, *, read_log: bool = True, order: float | None = None) -> DeviceRead:
        """Poll everything the session offers; UnsupportedError of an optional part is noted, not fatal.

        The inventory comes last: on a new session it is tens of requests (a FRU read), and under load and loss it
        was the most common failure at start-up (site benchmark, seventh session: 28 of 39 in one run). Read last
        and non-fatal, it no longer keeps the device's telemetry back.
        """
        began = order if order is not None else self.clock.monotonic()  # the poll's calls share one queue place

        async def call(what: str, work: Callable[[], Awaitable[T]]) -> T:
            return await call_with_deadline(
                self.clock, self.call_timeout, what, work, queue_limit=self.queue_limit, order=began
            )

        result = DeviceRead()
        session = self.session
        if isinstance(session, PowerControl):
            if self.targets is None:
                self.targets = list(await call("power targets", session.power_targets))
            for target in self.targets:
                result.power[target.id] = await call(
                    f"power state of {target.id}", functools.partial(session.get_power, target.id)
                )
        if isinstance(session, SensorSource):
            result.readings = list(await call("sensors", session.read_sensors))
        if read_log and isinstance(session, EventLogSource):
            try:
                result.log = await call("event log", lambda: session.read_log(log_cursor))
            except UnsupportedError:
                result.unsupported.append("event_log")
        if isinstance(session, InventorySource) and not self.inventory_tried:
            answered = True
            try:
                self.inventory = await call("inventory", session.read_inventory)
            except UnsupportedError:
                self.inventory = None
                result.unsupported.append("inventory")
            except DriverBusyError:
                answered = False  # the device was not asked: the next poll tries again
            except DeviceError as exc:
                answered = False
                result.inventory_error = exc
                self.inventory_tried = True  # not on this session again: on the next one
            if answered:
                self.inventory_tried = True
                self.inventory_read_at = self.clock.monotonic()
        result.inventory = self.inventory
        return result
