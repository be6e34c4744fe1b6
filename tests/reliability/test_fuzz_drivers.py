"""Property-based fuzzing of the drivers' value conversion: SNMP column values and IPMI sensor readings become
readings or "not available", or a clear per-value error the driver turns into a null reading — never a crash,
never a NaN or a negative step passed off as a measurement."""
# ruff: noqa: PT017 - a property test accepts either outcome; when a value is refused it checks the refusal

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from rackd_ipmi.sensors import to_readings
from rackd_snmp.convert import WrongTypeError, scaled, with_decimals
from rackd_snmp.profile import Metric

from rackd.model import SLUG_RE, SensorKind

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
raw_values = (
    st.none()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.text(max_size=20)
    | st.binary(max_size=8).map(lambda b: b.decode("latin-1"))
)
metrics = st.builds(
    Metric,
    column=st.integers(1, 30),
    kind=st.sampled_from([SensorKind.CURRENT, SensorKind.POWER, SensorKind.ENERGY, SensorKind.VOLTAGE]),
    name=st.just("outlet{0}_x"),
    scale=st.sampled_from([1.0, 0.1, 0.01, 0.001, 10.0]),
    negative_is_missing=st.booleans(),
    magnitude=st.booleans(),
)


@settings(max_examples=1000, deadline=None)
@given(metrics, raw_values)
def test_snmp_values_convert_or_are_refused_clearly(metric: Metric, raw: Any) -> None:
    try:
        value = scaled(metric, raw)
    except WrongTypeError as exc:
        assert "expected an integer" in str(exc)
        return
    if value is not None:
        assert math.isfinite(value)
        if metric.negative_is_missing or metric.magnitude:
            assert value >= 0


@settings(max_examples=500, deadline=None)
@given(raw_values, st.integers(0, 6))
def test_raritan_decimals(raw: Any, decimals: int) -> None:
    try:
        value = with_decimals(raw, decimals)
    except WrongTypeError:
        return
    assert value is None or math.isfinite(value)


@dataclass
class FakeSensorReading:
    """The attributes of pyghmi's SensorReading, as the driver reads them (pyghmi builds these from BMC bytes)."""

    name: str
    value: float | None
    units: str
    health: int
    states: list[str]
    unavailable: int = 0


sensor_readings = st.builds(
    FakeSensorReading,
    name=st.text(max_size=20),
    value=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    units=st.sampled_from(["°C", "°F", "RPM", "V", "A", "W", "%", "Hz", "", "unknown", "dB"]),
    health=st.integers(0, 2**16),
    states=st.lists(st.text(max_size=10), max_size=3),
    unavailable=st.integers(0, 1),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(sensor_readings, max_size=12))
# Found by CI: a finite Fahrenheit value that overflows to inf once converted to Celsius.
@example([FakeSensorReading(name="t", value=3.595386269724632e307, units="°F", health=0, states=[])])
def test_ipmi_sensor_data_becomes_valid_readings(sensors: list[FakeSensorReading]) -> None:
    readings = to_readings(sensors, NOW)
    ids = [r.sensor for r in readings]
    assert len(ids) == len(set(ids))
    for reading in readings:
        assert SLUG_RE.match(reading.sensor)
        assert reading.value is None or math.isfinite(reading.value)
