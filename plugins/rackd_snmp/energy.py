"""Reset-aware energy counters: a counter that steps backwards is flagged, never published as a negative step."""

from __future__ import annotations

COUNTER_RESET = "counter_reset"


class EnergyCounters:
    """The last value of every energy sensor of one device, to tell a reset or wrap from normal growth."""

    def __init__(self) -> None:
        """Start with no history: the first value of each counter is taken as it is."""
        self._last: dict[str, float] = {}

    def flags(self, sensor: str, value: float | None) -> tuple[str, ...]:
        """("counter_reset",) when `value` is below the previous one (user reset, 32-bit wrap, replaced meter)."""
        if value is None:
            return ()
        previous = self._last.get(sensor)
        self._last[sensor] = value
        if previous is not None and value < previous:
            return (COUNTER_RESET,)
        return ()
