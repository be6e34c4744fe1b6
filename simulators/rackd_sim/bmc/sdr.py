"""SDR records and sensor readings of the simulated BMC, encoded per IPMI 2.0 (tables 43-1, 43-2, 35-15)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

SDR_VERSION = 0x51
RECORD_FULL = 0x01
RECORD_COMPACT = 0x02
READING_TYPE_THRESHOLD = 0x01
READING_TYPE_SENSOR_SPECIFIC = 0x6F
OWNER_BMC = 0x20

# Reading byte 2 of Get Sensor Reading: events and scanning enabled, or reading unavailable.
READING_OK = 0xC0
READING_UNAVAILABLE = 0xC0 | 0x20


class SensorType(IntEnum):
    """IPMI sensor type codes (table 42-3) used by the simulator."""

    TEMPERATURE = 0x01
    VOLTAGE = 0x02
    CURRENT = 0x03
    FAN = 0x04
    POWER_SUPPLY = 0x08
    POWER_UNIT = 0x09
    OTHER_UNITS = 0x0B  # power in watts is reported as "other units-based sensor"
    ACPI_POWER_STATE = 0x22


class Unit(IntEnum):
    """IPMI base unit codes (table 43-15)."""

    UNSPECIFIED = 0
    CELSIUS = 1
    VOLTS = 4
    AMPS = 5
    WATTS = 6
    RPM = 18


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Threshold values in sensor units; None when the threshold is not defined."""

    lnr: float | None = None
    lc: float | None = None
    lnc: float | None = None
    unc: float | None = None
    uc: float | None = None
    unr: float | None = None


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """One sensor of the SDR: a linear threshold sensor (full record) or a discrete one (compact record)."""

    number: int
    name: str
    sensor_type: SensorType
    entity_id: int
    entity_instance: int = 1
    unit: Unit = Unit.UNSPECIFIED
    m: int = 1
    b: int = 0
    r_exp: int = 0
    thresholds: Thresholds | None = None
    discrete: bool = False
    discrete_mask: int = 0  # the states a discrete sensor can assert

    def to_raw(self, value: float) -> int:
        """The 8-bit raw reading closest to `value` (clamped to 0..255)."""
        raw: float = (value / (10.0**self.r_exp) - self.b) / self.m
        return max(0, min(255, math.floor(raw + 0.5)))

    def from_raw(self, raw: int) -> float:
        """The value a client computes from a raw reading (y = (M*x + B) * 10^R)."""
        return float((self.m * raw + self.b) * (10.0**self.r_exp))

    def quantize(self, value: float) -> float:
        """The value as clients will see it after the 8-bit round trip."""
        return round(self.from_raw(self.to_raw(value)), 6)

    def threshold_status(self, raw: int) -> int:
        """Byte 3 of Get Sensor Reading: which thresholds the raw reading is at or beyond."""
        t = self.thresholds
        if t is None:
            return 0
        status = 0
        for bit, limit, below in (
            (0, t.lnc, True),
            (1, t.lc, True),
            (2, t.lnr, True),
            (3, t.unc, False),
            (4, t.uc, False),
            (5, t.unr, False),
        ):
            if limit is None:
                continue
            limit_raw = self.to_raw(limit)
            if (below and raw <= limit_raw) or (not below and raw >= limit_raw):
                status |= 1 << bit
        return status


def _id_string(name: str) -> bytes:
    encoded = name.encode("ascii")[:16]
    # 8-bit ASCII+Latin1 (type 11b); 6-bit packing garbles names in ipmitool (see the reference page).
    return bytes([0xC0 | len(encoded)]) + encoded


def _header(record_id: int, record_type: int, body: bytes) -> bytes:
    return bytes([record_id & 0xFF, record_id >> 8, SDR_VERSION, record_type, len(body)]) + body


def _threshold_masks(t: Thresholds) -> tuple[int, int, int]:
    """(lower mask word, upper mask word, readable/settable word) of a full record."""
    lower = 0
    upper = 0
    readable = 0
    # assertion events: lower thresholds "going low", upper thresholds "going high"; bits 12-14 say the
    # comparison status is returned in Get Sensor Reading.
    for present, event_bit, compare_bit, read_bit in (
        (t.lnc is not None, 0, 12, 0),
        (t.lc is not None, 2, 13, 1),
        (t.lnr is not None, 4, 14, 2),
    ):
        if present:
            lower |= (1 << event_bit) | (1 << compare_bit)
            readable |= 1 << read_bit
    for present, event_bit, compare_bit, read_bit in (
        (t.unc is not None, 7, 12, 3),
        (t.uc is not None, 9, 13, 4),
        (t.unr is not None, 11, 14, 5),
    ):
        if present:
            upper |= (1 << event_bit) | (1 << compare_bit)
            readable |= 1 << read_bit
    return lower, upper, readable


def full_record(record_id: int, spec: SensorSpec) -> bytes:
    """A Full Sensor Record (type 01h) for a linear threshold sensor."""
    t = spec.thresholds or Thresholds()
    lower, upper, readable = _threshold_masks(t)
    m = spec.m & 0x3FF
    b = spec.b & 0x3FF
    capabilities = 0x40 | (0x04 if readable else 0)  # auto re-arm; thresholds readable
    body = bytes(
        [
            OWNER_BMC,
            0x00,
            spec.number,
            spec.entity_id,
            spec.entity_instance,
            0x7F,  # initialization: scanning and events enabled
            capabilities,
            spec.sensor_type,
            READING_TYPE_THRESHOLD,
            lower & 0xFF,
            lower >> 8,
            upper & 0xFF,
            upper >> 8,
            readable,
            0x00,  # settable threshold mask: none
            0x00,  # units 1: unsigned, no rate, no modifier
            spec.unit,
            0x00,
            0x00,  # linearization: linear
            m & 0xFF,
            (m >> 2) & 0xC0,  # M high bits, tolerance 0
            b & 0xFF,
            (b >> 2) & 0xC0,  # B high bits, accuracy 0
            0x00,
            ((spec.r_exp & 0x0F) << 4),  # R exponent, B exponent 0
            0x00,  # analog characteristics: none
            0x00,
            0x00,
            0x00,
            0xFF,  # sensor maximum reading
            0x00,  # sensor minimum reading
            *(spec.to_raw(v) if v is not None else 0 for v in (t.unr, t.uc, t.unc, t.lnr, t.lc, t.lnc)),
            0x00,  # hysteresis +
            0x00,  # hysteresis -
            0x00,
            0x00,
            0x00,  # OEM
        ]
    )
    return _header(record_id, RECORD_FULL, body + _id_string(spec.name))


def compact_record(record_id: int, spec: SensorSpec) -> bytes:
    """A Compact Sensor Record (type 02h) for a discrete sensor-specific sensor."""
    mask = spec.discrete_mask
    body = bytes(
        [
            OWNER_BMC,
            0x00,
            spec.number,
            spec.entity_id,
            spec.entity_instance,
            0x7F,
            0x40,
            spec.sensor_type,
            READING_TYPE_SENSOR_SPECIFIC,
            mask & 0xFF,
            mask >> 8,
            mask & 0xFF,
            mask >> 8,
            mask & 0xFF,
            mask >> 8,
            0x00,
            0x00,
            0x00,
            0x00,  # record sharing
            0x00,
            0x00,  # hysteresis
            0x00,
            0x00,
            0x00,
            0x00,
            0x00,  # OEM
        ]
    )
    return _header(record_id, RECORD_COMPACT, body + _id_string(spec.name))


def record_for(record_id: int, spec: SensorSpec) -> bytes:
    """The SDR record of a sensor."""
    return compact_record(record_id, spec) if spec.discrete else full_record(record_id, spec)


def threshold_reply(spec: SensorSpec) -> list[int]:
    """Get Sensor Thresholds reply data: readable mask then LNC, LC, LNR, UNC, UC, UNR raw values."""
    t = spec.thresholds or Thresholds()
    _, _, readable = _threshold_masks(t)
    values = [spec.to_raw(v) if v is not None else 0 for v in (t.lnc, t.lc, t.lnr, t.unc, t.uc, t.unr)]
    return [readable, *values]


def reading_reply(spec: SensorSpec, value: float | None, states: int = 0) -> list[int]:
    """Get Sensor Reading reply data for a threshold value (None: unavailable) or discrete state bits."""
    if spec.discrete:
        return [0x00, READING_OK, states & 0xFF, 0x80 | ((states >> 8) & 0x7F)]
    if value is None:
        return [0x00, READING_UNAVAILABLE, 0x00]
    raw = spec.to_raw(value)
    return [raw, READING_OK, spec.threshold_status(raw)]
