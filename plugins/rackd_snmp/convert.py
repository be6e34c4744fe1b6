"""Raw SNMP values to canonical numbers: scales, "not available" sentinels, Raritan decimal digits."""

from __future__ import annotations

from rackd_snmp.client import Value
from rackd_snmp.profile import Metric

# Enough digits for mA and mV, few enough to hide binary noise (13 x 0.1 = 1.3000000000000003).
_DIGITS = 6


class WrongTypeError(ValueError):
    """The agent returned a non-integer where the MIB defines a number."""


def scaled(metric: Metric, raw: Value) -> float | None:
    """The metric's value in its canonical unit, or None for the column's "not available" markers."""
    if raw is None:
        return None
    if not isinstance(raw, int):
        raise WrongTypeError(f"expected an integer, got {raw!r}")
    if raw in metric.not_available or (metric.negative_is_missing and raw < 0):
        return None
    value = raw * metric.scale
    if metric.magnitude:
        value = abs(value)
    return round(value, _DIGITS)


def with_decimals(raw: Value, decimals: int) -> float | None:
    """A Raritan reading: the unsigned raw value divided by 10^decimals."""
    if raw is None:
        return None
    if not isinstance(raw, int):
        raise WrongTypeError(f"expected an integer, got {raw!r}")
    return round(raw / float(10**decimals), _DIGITS)
