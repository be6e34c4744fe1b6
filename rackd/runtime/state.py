"""What the runtime knows about a device right now: power, health, reachability per source, key figures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from rackd.model import Health, Inventory, PowerState, Reading, SensorKind, worst_health

# Readings that also appear in the retained state as key figures (what a dashboard tile shows).
KEY_FIGURE_SENSORS = frozenset({"system_power", "total_power", "total_energy", "total_apparent_power"})


class Availability(StrEnum):
    """Whether the last poll of a source succeeded."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class SourceState:
    """Reachability of one source (the BMC of a node, a PDU) as of the last poll."""

    availability: Availability = Availability.UNKNOWN
    since: dt.datetime | None = None
    error: str | None = None
    last_success: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class DeviceState:
    """The retained state of one device."""

    power: Mapping[str, PowerState] = field(default_factory=dict)
    health: Health = Health.UNKNOWN
    sources: Mapping[str, SourceState] = field(default_factory=dict)
    figures: Mapping[str, float | None] = field(default_factory=dict)
    inventory: Inventory | None = None


def key_figures(readings: Sequence[Reading]) -> dict[str, float | None]:
    """The figures worth keeping in the retained state: totals and the hottest temperature."""
    figures: dict[str, float | None] = {r.sensor: r.value for r in readings if r.sensor in KEY_FIGURE_SENSORS}
    temperatures = [r.value for r in readings if r.kind is SensorKind.TEMPERATURE and r.value is not None]
    if temperatures:
        figures["hottest_temp"] = max(temperatures)
    return figures


def readings_health(readings: Sequence[Reading]) -> Health:
    """The device's health from its readings: the worst of them."""
    return worst_health((r.health for r in readings), default=Health.OK)
