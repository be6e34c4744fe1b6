"""SDR sensor readings (pyghmi SensorReading) → rackd Readings: stable slugs, canonical units, health."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from rackd.model import Health, Reading, SensorKind

# pyghmi.constants.Health bits
_PYGHMI_WARNING = 1
_PYGHMI_CRITICAL = 2
_PYGHMI_FAILED = 4

_UNIT_KINDS: dict[str, SensorKind] = {
    "°C": SensorKind.TEMPERATURE,
    "°F": SensorKind.TEMPERATURE,
    "RPM": SensorKind.FAN,
    "V": SensorKind.VOLTAGE,
    "A": SensorKind.CURRENT,
    "W": SensorKind.POWER,
    "% ": SensorKind.HUMIDITY,  # pyghmi renders a percentage of an unspecified unit as "% "
    "Hz": SensorKind.FREQUENCY,
}
_NON_SLUG = re.compile(r"[^a-z0-9]+")
VALUE_DIGITS = 4  # pyghmi computes values as midpoints of float bounds; round away the float noise


def slugify(name: str) -> str:
    """A stable sensor id from a BMC sensor name: 'GPU3 Temp' → 'gpu3_temp', 'PSU1 Input Power' → …."""
    slug = _NON_SLUG.sub("_", name.strip().lower()).strip("_")
    return slug or "sensor"


def health_of(bits: int) -> Health:
    """Rackd health from pyghmi's health bit mask."""
    if bits & (_PYGHMI_CRITICAL | _PYGHMI_FAILED):
        return Health.CRITICAL
    if bits & _PYGHMI_WARNING:
        return Health.WARNING
    return Health.OK


def to_reading(sensor: Any, slug: str, observed_at: dt.datetime) -> Reading | None:
    """One pyghmi SensorReading as a Reading; None for numeric sensors in units rackd has no kind for."""
    units = str(getattr(sensor, "units", "") or "")
    states = tuple(str(s) for s in (sensor.states or ()))
    health = health_of(int(sensor.health or 0))
    if getattr(sensor, "unavailable", 0):
        unavailable_kind = _UNIT_KINDS.get(units, SensorKind.STATUS)
        # Not scanned (e.g. host-side sensors while the host is off): no value, and no health to claim.
        return Reading.of(
            slug, unavailable_kind, None, health=Health.UNKNOWN, observed_at=observed_at, states=("unavailable",)
        )
    if sensor.value is None:
        return Reading.of(slug, SensorKind.STATUS, None, health=health, observed_at=observed_at, states=states)
    kind = _UNIT_KINDS.get(units)
    if kind is None:
        return None
    value = float(sensor.value)
    if units == "°F":
        value = (value - 32.0) * 5.0 / 9.0
    if not math.isfinite(value):
        # Garbage from the BMC (a conversion gone wrong, or one that overflows once converted to canonical units):
        # a number that is not one is "not available", never data.
        return Reading.of(slug, kind, None, health=Health.UNKNOWN, observed_at=observed_at, states=("invalid",))
    return Reading.of(slug, kind, round(value, VALUE_DIGITS), health=health, observed_at=observed_at, states=states)


def to_readings(sensors: Iterable[Any], observed_at: dt.datetime) -> list[Reading]:
    """Every reading, with slugs made unique in SDR order ('fan', 'fan_2', …)."""
    readings: list[Reading] = []
    seen: dict[str, int] = {}
    used: set[str] = set()
    for sensor in sensors:
        base = slugify(str(sensor.name))
        count = seen.get(base, 0)
        slug = base
        while slug in used:  # 'Fan', 'Fan' and a sensor really named 'Fan 2' must still get distinct ids
            count += 1
            slug = f"{base}_{count + 1}"
        seen[base] = count
        used.add(slug)
        reading = to_reading(sensor, slug, observed_at)
        if reading is not None:
            readings.append(reading)
    return readings


def psu_input_power(readings: Sequence[Reading]) -> float | None:
    """Sum of PSU input power sensors (the fallback for system_power when DCMI is missing)."""
    values = [
        r.value
        for r in readings
        if r.kind is SensorKind.POWER and r.value is not None and r.sensor.startswith("psu") and "out" not in r.sensor
    ]
    return sum(values) if values else None
