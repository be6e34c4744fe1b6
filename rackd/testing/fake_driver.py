"""The `fake` driver: scriptable readings, power, event log and faults, for tests and the quick-start run."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from rackd.drivers.contract import Capability, DriverOptions, SessionContext
from rackd.errors import (
    AuthError,
    DeviceProtocolError,
    DeviceRefusedError,
    DeviceTimeoutError,
    DeviceUnreachableError,
    SessionLimitError,
)
from rackd.model import (
    Health,
    Inventory,
    LogBatch,
    LogEntry,
    PowerAction,
    PowerState,
    PowerTarget,
    Reading,
    SensorKind,
    Severity,
    utc_now,
)
from rackd.secrets import Secret


class FakeFault(StrEnum):
    """What a fake device does wrong."""

    NONE = "none"
    HANG = "hang"  # never answers: the runtime's deadline must end the call
    TIMEOUT = "timeout"  # the driver reports a timeout at once
    UNREACHABLE = "unreachable"
    AUTH = "auth"  # login refused
    SESSION_LIMIT = "session_limit"  # login refused: no free session, one frees in `session_frees_in` s
    GARBAGE = "garbage"  # answers something that cannot be parsed


class FakeReadingSpec(DriverOptions):
    """One scripted sensor."""

    sensor: str
    kind: SensorKind
    value: float | None
    health: Health = Health.OK
    jitter: float = 0.0  # +/- random spread per read, for a lively demo


class FakeOptions(DriverOptions):
    """Options of the `fake` driver."""

    host: str = "fake"  # key of the device in the in-process FakeWorld (tests script it through that)
    username: str | None = None
    password: Secret | None = None
    power: PowerState = PowerState.ON
    targets: list[str] = ["chassis"]
    readings: list[FakeReadingSpec] = [
        FakeReadingSpec(sensor="inlet_temp", kind=SensorKind.TEMPERATURE, value=24.0, jitter=0.5),
        FakeReadingSpec(sensor="system_power", kind=SensorKind.POWER, value=850.0, jitter=40.0),
    ]
    log_entries_per_poll: int = 0  # new event-log records per read_log call (event delivery tests)
    fault: FakeFault = FakeFault.NONE
    fault_file: Path | None = None  # if set, each call reads the fault from this file (for subprocess tests)
    model: str = "FakeServer 9000"


@dataclass
class FakeDevice:
    """The state of one fake device, shared by all sessions to it; tests change it to script behaviour."""

    options: FakeOptions
    power: dict[str, PowerState] = field(default_factory=dict)
    readings: list[FakeReadingSpec] = field(default_factory=list)
    fault: FakeFault = FakeFault.NONE
    call_delay: float = 0.0  # seconds each call takes (through `sleep`, so a manual clock can drive it)
    session_frees_in: float | None = None  # what a SESSION_LIMIT refusal says about the wait
    log_seq: int = 0
    boot: str = field(default_factory=lambda: f"{os.getpid()}-{time.time_ns()}")
    opens: int = 0
    closes: int = 0
    calls: int = 0
    inventory_reads: int = 0
    open_sessions: int = 0
    set_power_calls: list[tuple[str, PowerAction]] = field(default_factory=list)
    hang_release: asyncio.Event | None = None
    ignore_soft_off: bool = False  # an OS that does not shut down on ACPI
    stuck: bool = False  # accepts power requests but never changes state

    def current_fault(self) -> FakeFault:
        """The fault in force: the fault file wins when configured."""
        path = self.options.fault_file
        if path is not None:
            try:
                text = path.read_text(encoding="utf-8").strip()
            except OSError:
                return FakeFault.NONE
            return FakeFault(text) if text else FakeFault.NONE
        return self.fault


class FakeWorld:
    """All fake devices of this process, by host; the in-process scripting handle for tests."""

    def __init__(self) -> None:
        """Start empty; devices appear on first open."""
        self.devices: dict[str, FakeDevice] = {}
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.power_log: list[tuple[str, str, PowerAction]] = []  # (host, target, action) across all devices

    def device(self, options: FakeOptions) -> FakeDevice:
        """The device for these options, created from them on first use."""
        device = self.devices.get(options.host)
        if device is None:
            device = FakeDevice(
                options=options,
                power=dict.fromkeys(options.targets, options.power),
                readings=list(options.readings),
                fault=options.fault,
            )
            self.devices[options.host] = device
        return device

    def reset(self) -> None:
        """Forget every device (between tests)."""
        self.devices.clear()
        self.power_log.clear()
        self.sleep = asyncio.sleep


WORLD = FakeWorld()


class FakeSession:
    """A session to a fake device: power, sensors, event log and inventory."""

    def __init__(self, device: FakeDevice) -> None:
        """Bind to the shared device state."""
        self._device = device
        self._closed = False
        self._ids = itertools.count()

    async def _call(self) -> FakeDevice:
        device = self._device
        device.calls += 1
        if self._closed:
            raise DeviceProtocolError("fake session used after close")
        if device.call_delay:
            await WORLD.sleep(device.call_delay)
            if self._closed:  # closed under a call in flight (by a failing poll or command): the call fails too
                raise DeviceProtocolError("fake session closed during the call")
        fault = device.current_fault()
        if fault is FakeFault.HANG:
            release = device.hang_release or asyncio.Event()
            device.hang_release = release
            await release.wait()
        elif fault is FakeFault.TIMEOUT:
            raise DeviceTimeoutError(f"fake {device.options.host}: no answer")
        elif fault is FakeFault.UNREACHABLE:
            raise DeviceUnreachableError(f"fake {device.options.host}: connection refused")
        elif fault is FakeFault.GARBAGE:
            raise DeviceProtocolError(f"fake {device.options.host}: unparseable reply")
        return device

    async def power_targets(self) -> Sequence[PowerTarget]:
        """The scripted targets."""
        device = await self._call()
        return [PowerTarget(target) for target in device.power]

    async def get_power(self, target: str) -> PowerState:
        """The scripted power state of one target."""
        device = await self._call()
        try:
            return device.power[target]
        except KeyError:
            raise DeviceProtocolError(f"fake {device.options.host}: no power target {target!r}") from None

    async def set_power(self, target: str, action: PowerAction) -> None:
        """Record the request and switch at once (cycle/reset while off are refused, as real BMCs do)."""
        device = await self._call()
        if target not in device.power:
            raise DeviceProtocolError(f"fake {device.options.host}: no power target {target!r}")
        if action in {PowerAction.CYCLE, PowerAction.RESET} and device.power[target] is PowerState.OFF:
            raise DeviceRefusedError(f"fake {device.options.host}: {action} refused while off")
        device.set_power_calls.append((target, action))
        WORLD.power_log.append((device.options.host, target, action))
        if device.stuck or (action is PowerAction.SOFT_OFF and device.ignore_soft_off):
            return
        if action in {PowerAction.ON, PowerAction.CYCLE, PowerAction.RESET}:
            device.power[target] = PowerState.ON
        elif action in {PowerAction.OFF, PowerAction.SOFT_OFF}:
            device.power[target] = PowerState.OFF

    async def read_sensors(self) -> Sequence[Reading]:
        """The scripted readings (with jitter); all null while the chassis is off."""
        device = await self._call()
        now = utc_now()
        powered = PowerState.ON in device.power.values()
        readings = []
        for spec in device.readings:
            value = spec.value
            if value is not None and spec.jitter:
                value = round(value + random.uniform(-spec.jitter, spec.jitter), 2)
            if not powered and spec.kind in {SensorKind.POWER, SensorKind.FAN}:
                value = 0.0
            readings.append(Reading.of(spec.sensor, spec.kind, value, health=spec.health, observed_at=now))
        return readings

    async def read_log(self, cursor: str | None) -> LogBatch:
        """Each call appends `log_entries_per_poll` records; returns those after the cursor."""
        device = await self._call()
        first_new = device.log_seq + 1
        device.log_seq += device.options.log_entries_per_poll
        if cursor is None:
            return LogBatch((), str(device.log_seq))
        after = int(cursor) if cursor.isdigit() else 0
        reset = after > device.log_seq
        start = max(after + 1, first_new) if not reset else 1
        entries = tuple(
            LogEntry(
                record_id=str(seq),
                severity=Severity.INFO,
                message=f"fake log record {seq}",
                observed_at=utc_now(),
                data={"seq": seq, "boot": device.boot},
            )
            for seq in range(start, device.log_seq + 1)
        )
        return LogBatch(entries, str(device.log_seq), log_reset=reset)

    async def read_inventory(self) -> Inventory:
        """A fixed inventory."""
        device = await self._call()
        device.inventory_reads += 1
        return Inventory(
            manufacturer="rackd", model=device.options.model, serial=device.options.host, firmware="fake-1.0"
        )

    async def close(self) -> None:
        """Log out (counted, so tests can check sessions are never leaked)."""
        if not self._closed:
            self._closed = True
            self._device.closes += 1
            self._device.open_sessions -= 1


class FakeDriver:
    """Scriptable stand-in for a BMC or PDU driver."""

    name: ClassVar[str] = "fake"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.POWER, Capability.SENSORS, Capability.EVENT_LOG, Capability.INVENTORY}
    )
    options_model: ClassVar[type[DriverOptions]] = FakeOptions

    async def open(self, context: SessionContext, options: Any) -> FakeSession:  # noqa: ARG002 - no per-device state
        """Log in to the fake device (auth and network faults apply here too)."""
        assert isinstance(options, FakeOptions)
        device = WORLD.device(options)
        device.opens += 1
        fault = device.current_fault()
        if fault is FakeFault.AUTH:
            raise AuthError(f"fake {options.host}: login refused for user {options.username!r}")
        if fault is FakeFault.SESSION_LIMIT:
            raise SessionLimitError(f"fake {options.host}: no free session", retry_after=device.session_frees_in)
        if options.password is not None:
            options.password.reveal()  # resolve late, like a real driver: fails here if the secret vanished
        session = FakeSession(device)
        device.open_sessions += 1
        if fault in {FakeFault.UNREACHABLE, FakeFault.TIMEOUT, FakeFault.HANG}:
            try:
                await session._call()
            except BaseException:
                await session.close()
                raise
        return session

    async def aclose(self) -> None:
        """Nothing process-wide to release."""
