"""The data model shared by drivers, runtime and bus: readings, power, events, commands (canonical units)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

JSONValue = Any  # a value that json.dumps accepts; kept loose because event data is free-form per type

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class SensorKind(StrEnum):
    """What a reading measures; each kind has exactly one canonical unit."""

    POWER = "power"
    TEMPERATURE = "temperature"
    CURRENT = "current"
    FAN = "fan"
    VOLTAGE = "voltage"
    HUMIDITY = "humidity"
    ENERGY = "energy"
    FREQUENCY = "frequency"
    APPARENT_POWER = "apparent_power"
    POWER_FACTOR = "power_factor"
    STATUS = "status"  # discrete sensors (PSU presence, outlet state): value null, meaning in health/states


CANONICAL_UNITS: Mapping[SensorKind, str] = {
    SensorKind.POWER: "W",
    SensorKind.TEMPERATURE: "Cel",
    SensorKind.CURRENT: "A",
    SensorKind.FAN: "rpm",
    SensorKind.VOLTAGE: "V",
    SensorKind.HUMIDITY: "%",
    SensorKind.ENERGY: "Wh",
    SensorKind.FREQUENCY: "Hz",
    SensorKind.APPARENT_POWER: "VA",
    SensorKind.POWER_FACTOR: "1",
    SensorKind.STATUS: "",
}


class Health(StrEnum):
    """Health of one reading or of a whole device."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


HEALTH_ORDER: Mapping[Health, int] = {Health.OK: 0, Health.UNKNOWN: 1, Health.WARNING: 2, Health.CRITICAL: 3}


def worst_health(healths: Iterable[Health], default: Health = Health.OK) -> Health:
    """The most severe of several healths (critical > warning > unknown > ok)."""
    worst = default
    for health in healths:
        if HEALTH_ORDER[health] > HEALTH_ORDER[worst]:
            worst = health
    return worst


class PowerState(StrEnum):
    """Observed power state of a power target (a server chassis or a PDU outlet)."""

    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


class PowerAction(StrEnum):
    """Power actions a driver may accept; the runtime verifies their outcome."""

    ON = "on"
    OFF = "off"
    SOFT_OFF = "soft_off"
    RESET = "reset"
    CYCLE = "cycle"
    DIAG = "diag"


class Severity(StrEnum):
    """Severity of an event."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class EventType(StrEnum):
    """The kinds of event published on `{device}/event`."""

    POWER_CHANGED = "power_changed"
    THRESHOLD_CROSSED = "threshold_crossed"
    SENSOR_STATE_CHANGED = "sensor_state_changed"
    LOG_ENTRY = "log_entry"  # a device event-log record (IPMI SEL, PDU log)
    LOG_CLEARED = "log_cleared"  # the device's event log was cleared or wrapped
    UNREACHABLE = "unreachable"
    RECOVERED = "recovered"
    COUNTER_RESET = "counter_reset"
    CONSOLE_PATTERN = "console_pattern"
    ACTION_STARTED = "action_started"
    ACTION_FINISHED = "action_finished"
    SPOOL_OVERFLOW = "spool_overflow"


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def _require_utc(value: dt.datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() != dt.timedelta(0):
        raise ValueError(f"{what} must be timezone-aware UTC, got {value!r}")


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement of one sensor, in the canonical unit of its kind.

    The device and source it came from are carried by the message envelope (one telemetry message per poll of
    one source), not repeated per reading.
    """

    sensor: str
    kind: SensorKind
    value: float | None
    unit: str
    health: Health
    observed_at: dt.datetime
    states: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # e.g. "counter_reset" on an energy counter that went backwards

    def __post_init__(self) -> None:
        """Reject readings that break the data model: bad slug, wrong unit, naive time, NaN."""
        if not SLUG_RE.match(self.sensor):
            raise ValueError(f"sensor id {self.sensor!r} is not a slug ([a-z0-9_], starting alphanumeric)")
        expected = CANONICAL_UNITS[self.kind]
        if self.unit != expected:
            raise ValueError(f"sensor {self.sensor}: kind {self.kind} needs unit {expected!r}, got {self.unit!r}")
        if self.value is not None and self.value != self.value:  # NaN: a device bug, never a number
            raise ValueError(f"sensor {self.sensor}: value is NaN; use None for 'not available'")
        _require_utc(self.observed_at, f"sensor {self.sensor} observed_at")

    @classmethod
    def of(
        cls,
        sensor: str,
        kind: SensorKind,
        value: float | None,
        *,
        health: Health = Health.OK,
        observed_at: dt.datetime | None = None,
        states: tuple[str, ...] = (),
        flags: tuple[str, ...] = (),
    ) -> Reading:
        """Build a reading with the canonical unit of its kind filled in."""
        return cls(
            sensor=sensor,
            kind=kind,
            value=None if value is None else float(value),
            unit=CANONICAL_UNITS[kind],
            health=health,
            observed_at=observed_at or utc_now(),
            states=states,
            flags=flags,
        )


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened on a device, published once on `{device}/event` (never lost)."""

    type: EventType
    severity: Severity
    message: str
    observed_at: dt.datetime = field(default_factory=utc_now)
    source: str | None = None
    data: Mapping[str, JSONValue] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        """Events carry UTC times only."""
        _require_utc(self.observed_at, "event observed_at")


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One record of a device's own event log (IPMI SEL, PDU event log)."""

    record_id: str
    severity: Severity
    message: str
    observed_at: dt.datetime | None  # None when the device clock was not set ("pre-init")
    data: Mapping[str, JSONValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LogBatch:
    """New log entries since a cursor, the cursor to resume from, and whether the log was cleared/wrapped."""

    entries: tuple[LogEntry, ...]
    cursor: str | None
    log_reset: bool = False


@dataclass(frozen=True, slots=True)
class Inventory:
    """What a device is: model, serial, firmware (read once per session)."""

    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PowerTarget:
    """Something that can be switched: the chassis behind a BMC, or one PDU outlet."""

    id: str  # "chassis", or the outlet number as a string ("7")
    label: str | None = None


class CommandStatus(StrEnum):
    """Lifecycle of a command: accepted → running → succeeded | failed | rejected (| interrupted by a crash)."""

    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"


TERMINAL_STATUSES = frozenset(
    {CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.REJECTED, CommandStatus.INTERRUPTED}
)


@dataclass(frozen=True, slots=True)
class Command:
    """A request to act on one device, idempotent by its client-chosen id."""

    id: str
    action: str  # e.g. "power.cycle", "outlet.on", "refresh"
    device: str
    args: Mapping[str, JSONValue] = field(default_factory=dict)
    requested_by: str | None = None
    reason: str | None = None
    received_at: dt.datetime = field(default_factory=utc_now)


@dataclass(frozen=True, slots=True)
class CommandStep:
    """One step taken while carrying out a command, with its time."""

    at: dt.datetime
    message: str
    data: Mapping[str, JSONValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """Where a command stands, with every step taken so far."""

    id: str
    device: str
    action: str
    status: CommandStatus
    message: str = ""
    steps: tuple[CommandStep, ...] = ()
    at: dt.datetime = field(default_factory=utc_now)
