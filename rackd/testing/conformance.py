"""The conformance suite every driver must pass (napalm-style): run it against a live device or simulator."""

from __future__ import annotations

import asyncio
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rackd.drivers.contract import (
    Capability,
    DeviceSession,
    Driver,
    EventLogSource,
    InventorySource,
    PowerControl,
    SensorSource,
    SessionContext,
)
from rackd.model import CANONICAL_UNITS, SLUG_RE, LogBatch, PowerState, Reading
from rackd.runtime.clock import SystemClock
from rackd.runtime.reader import call_with_deadline

_PROTOCOLS: dict[Capability, type[Any]] = {
    Capability.POWER: PowerControl,
    Capability.SENSORS: SensorSource,
    Capability.EVENT_LOG: EventLogSource,
    Capability.INVENTORY: InventorySource,
}


@dataclass
class ConformanceReport:
    """What the suite saw; `problems` is empty for a conforming driver."""

    problems: list[str] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    power: dict[str, PowerState] = field(default_factory=dict)

    def check(self, condition: bool, problem: str) -> None:
        """Record `problem` unless `condition` holds."""
        if not condition:
            self.problems.append(problem)


async def check_driver(
    driver: Driver, options: Any, state_dir: Path, *, device_id: str = "dut", call_timeout: float = 15.0
) -> ConformanceReport:
    """Open a session and exercise every declared capability read-only; never switches power."""
    report = ConformanceReport()
    report.check(bool(driver.name) and SLUG_RE.match(driver.name) is not None, f"bad driver name {driver.name!r}")
    report.check(isinstance(options, driver.options_model), "options are not an instance of options_model")
    clock = SystemClock()
    context = SessionContext(device_id, "conformance", state_dir)
    session: DeviceSession = await call_with_deadline(
        clock, call_timeout, "open", lambda: driver.open(context, options)
    )
    try:
        report.check(isinstance(session, DeviceSession), "session has no close()")
        for capability, protocol in _PROTOCOLS.items():
            declared = capability in driver.capabilities
            report.check(
                declared == isinstance(session, protocol),
                f"capability {capability}: declared={declared} but session implements={not declared}",
            )
        if isinstance(session, PowerControl):
            targets = await call_with_deadline(clock, call_timeout, "power_targets", session.power_targets)
            # A metered-only PDU declares power control but may have no switchable outlet: empty is fine.
            report.check(len({t.id for t in targets}) == len(targets), "duplicate power target ids")
            for target in targets:
                state = await call_with_deadline(
                    clock, call_timeout, "get_power", functools.partial(session.get_power, target.id)
                )
                report.check(isinstance(state, PowerState), f"get_power({target.id}) returned {state!r}")
                report.power[target.id] = state
        if isinstance(session, SensorSource):
            readings = list(await call_with_deadline(clock, call_timeout, "read_sensors", session.read_sensors))
            report.readings = readings
            _check_readings(report, readings)
            again = list(await call_with_deadline(clock, call_timeout, "read_sensors", session.read_sensors))
            report.check(
                _sensor_ids(again) == _sensor_ids(readings),
                "sensor ids are not stable between two reads",
            )
            if isinstance(session, PowerControl) and report.power:
                await _check_command_during_a_poll(report, clock, call_timeout, session, readings)
        if isinstance(session, EventLogSource):
            batch = await call_with_deadline(clock, call_timeout, "read_log", lambda: session.read_log(None))
            report.check(isinstance(batch, LogBatch), "read_log did not return a LogBatch")
            report.check(batch.entries == (), "read_log(None) must return no history, only a cursor")
            again_batch = await call_with_deadline(
                clock, call_timeout, "read_log", lambda: session.read_log(batch.cursor)
            )
            report.check(not again_batch.log_reset, "read_log from a fresh cursor reported a reset")
        if isinstance(session, InventorySource):
            await call_with_deadline(clock, call_timeout, "read_inventory", session.read_inventory)
    finally:
        await session.close()
        await session.close()  # close must be idempotent
    return report


async def _check_command_during_a_poll(
    report: ConformanceReport, clock: SystemClock, call_timeout: float, session: Any, readings: list[Reading]
) -> None:
    """The runtime sends a command's power read in the middle of a poll's sensor read: both must answer."""
    target = next(iter(report.power))
    sensors = asyncio.ensure_future(call_with_deadline(clock, call_timeout, "read_sensors", session.read_sensors))
    await asyncio.sleep(0)  # the sensor read is under way
    try:
        state = await call_with_deadline(
            clock, call_timeout, "get_power during read_sensors", functools.partial(session.get_power, target)
        )
        report.check(isinstance(state, PowerState), f"get_power({target}) during read_sensors returned {state!r}")
    finally:
        during = list(await sensors)
    report.check(
        _sensor_ids(during) == _sensor_ids(readings),
        "a sensor read with a power read in its middle returned other sensor ids",
    )


def _sensor_ids(readings: list[Reading]) -> list[str]:
    return sorted(r.sensor for r in readings)


def _check_readings(report: ConformanceReport, readings: list[Reading]) -> None:
    report.check(len(readings) > 0, "no readings")
    ids = [r.sensor for r in readings]
    duplicates = sorted({s for s in ids if ids.count(s) > 1})
    report.check(not duplicates, f"duplicate sensor ids: {duplicates}")
    for reading in readings:
        report.check(reading.unit == CANONICAL_UNITS[reading.kind], f"{reading.sensor}: unit {reading.unit!r}")
        if reading.value is not None:
            report.check(math.isfinite(reading.value), f"{reading.sensor}: non-finite value {reading.value}")
