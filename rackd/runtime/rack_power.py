"""The rack power model: totals per feed and phase from the PDUs, per-node draw, budget use, and their events."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from rackd.config import Config, DeviceKind
from rackd.model import Event, EventType, Reading, Severity
from rackd.runtime.clock import Clock
from rackd.runtime.runner import DeviceRunner

log = structlog.get_logger(__name__)

_INLET_POWER = re.compile(r"^(?:unit\d+_)?inlet\d+_power$")
_PHASE = re.compile(r"^(?:unit\d+_)?(?:phase|inlet\d+_l|inlet\d+_phase)(\d+)_(power|current)$")
_OUTLET_POWER = re.compile(r"^outlet(\S+?)_power$")
IMBALANCE_WARN = 0.2  # (max - min) / mean of phase currents above which a 3-phase feed is unbalanced
BUDGET_WARN = 0.9


@dataclass
class FeedFigures:
    """One power feed of a rack (all PDUs declaring the same `feed`)."""

    power: float = 0.0
    pdus: list[str] = field(default_factory=list)
    phases: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> {"power": W, "current": A}
    complete: bool = True  # False when a PDU of the feed gave no total


@dataclass
class RackFigures:
    """A rack at one moment."""

    rack: str
    feeds: dict[str, FeedFigures]
    total_power: float | None
    budget_w: float | None
    nodes: dict[str, dict[str, float | None]]

    @property
    def budget_use(self) -> float | None:
        """Measured draw over the budget, 0..1+ (None without a budget or a complete total)."""
        if self.budget_w is None or self.total_power is None:
            return None
        return self.total_power / self.budget_w

    def imbalance(self, feed: str) -> float | None:
        """(max - min) / mean of the feed's phase currents; None for fewer than 3 phases."""
        currents = [p["current"] for p in self.feeds[feed].phases.values() if "current" in p]
        if len(currents) < 3 or sum(currents) <= 0:
            return None
        mean = sum(currents) / len(currents)
        return (max(currents) - min(currents)) / mean


def pdu_total(readings: Sequence[Reading]) -> float | None:
    """A PDU's draw: its total, else the sum of its inlets, phases, or outlets, whichever it meters."""
    values = {r.sensor: r.value for r in readings if r.value is not None}
    if "total_power" in values:
        return values["total_power"]
    for pattern in (_INLET_POWER, re.compile(r"^(?:unit\d+_)?phase\d+_power$"), _OUTLET_POWER):
        matched = [v for k, v in values.items() if pattern.match(k)]
        if matched:
            return sum(matched)
    return None


def pdu_phases(readings: Sequence[Reading]) -> dict[str, dict[str, float]]:
    """Per-phase power and current of one PDU."""
    phases: dict[str, dict[str, float]] = {}
    for reading in readings:
        match = _PHASE.match(reading.sensor)
        if match and reading.value is not None:
            entry = phases.setdefault(match[1], {})
            entry[match[2]] = entry.get(match[2], 0.0) + reading.value
    return phases


def rack_figures(config: Config, rack: str, runners: Mapping[str, DeviceRunner]) -> RackFigures:
    """Compute one rack's figures from the runners' last readings."""
    feeds: dict[str, FeedFigures] = {}
    outlet_power: dict[str, float] = {}
    any_pdu = False
    for spec in config.devices:
        runner = runners.get(spec.id)
        if spec.rack != rack or spec.kind is not DeviceKind.PDU or runner is None:
            continue
        any_pdu = True
        figures = feeds.setdefault(spec.feed or spec.id, FeedFigures())
        figures.pdus.append(spec.id)
        readings = runner.readings if runner.available else []
        total = pdu_total(readings)
        if total is None:
            figures.complete = False
        else:
            figures.power += total
        for phase, values in pdu_phases(readings).items():
            entry = figures.phases.setdefault(phase, {})
            for key, value in values.items():
                entry[key] = entry.get(key, 0.0) + value
        for reading in readings:
            match = _OUTLET_POWER.match(reading.sensor)
            if match and reading.value is not None:
                outlet_power[f"{spec.id}:{match[1]}"] = reading.value
    nodes: dict[str, dict[str, float | None]] = {}
    for spec in config.devices:
        if spec.rack != rack or spec.kind is not DeviceKind.NODE:
            continue
        measured = [outlet_power[o] for o in spec.outlets if o in outlet_power]
        runner = runners.get(spec.id)
        nodes[spec.id] = {
            "outlet_power": sum(measured) if measured and len(measured) == len(spec.outlets) else None,
            "bmc_power": runner.figures.get("system_power") if runner is not None else None,
        }
    complete = any_pdu and all(f.complete for f in feeds.values())
    total = sum(f.power for f in feeds.values()) if complete else None
    budget = next((r.power_budget_w for r in config.settings.rack if r.id == rack), None)
    return RackFigures(rack, feeds, total, budget, nodes)


class RackPowerModel:
    """Publishes rack telemetry every interval and raises budget and phase-imbalance events on transitions."""

    def __init__(
        self, config: Config, runners: Mapping[str, DeviceRunner], publisher: RackPublisher, clock: Clock
    ) -> None:
        """Racks are those named by any device."""
        self.runners = runners
        self.publisher = publisher
        self.clock = clock
        self.configure(config)
        self._budget_level: dict[str, Severity | None] = {}
        self._unbalanced: dict[tuple[str, str], bool] = {}

    def configure(self, config: Config) -> None:
        """Take a (reloaded) config."""
        self.config = config
        self.racks = sorted({spec.rack for spec in config.devices})

    def update(self) -> list[RackFigures]:
        """Compute, publish and raise events once."""
        out = []
        for rack in self.racks:
            figures = rack_figures(self.config, rack, self.runners)
            out.append(figures)
            if not figures.feeds and not figures.nodes:
                continue
            self.publisher.publish_rack(figures, self.clock.now())
            self._budget_events(figures)
            self._imbalance_events(figures)
        return out

    def _budget_events(self, figures: RackFigures) -> None:
        use = figures.budget_use
        if use is None:
            return
        level = Severity.CRITICAL if use >= 1.0 else Severity.WARNING if use >= BUDGET_WARN else None
        previous = self._budget_level.get(figures.rack)
        self._budget_level[figures.rack] = level
        if level == previous or (previous is None and level is None):
            return
        message = (
            f"rack {figures.rack} draws {figures.total_power:.0f} W of its {figures.budget_w:.0f} W budget ({use:.0%})"
        )
        self._rack_event(
            figures.rack,
            EventType.THRESHOLD_CROSSED,
            level or Severity.INFO,
            message,
            {
                "sensor": "rack_power_budget",
                "value": figures.total_power,
                "budget_w": figures.budget_w,
                "use": round(use, 4),
                "to": (level or "ok"),
            },
        )

    def _imbalance_events(self, figures: RackFigures) -> None:
        for feed in figures.feeds:
            ratio = figures.imbalance(feed)
            if ratio is None:
                continue
            unbalanced = ratio > IMBALANCE_WARN
            key = (figures.rack, feed)
            if self._unbalanced.get(key, False) == unbalanced:
                continue
            self._unbalanced[key] = unbalanced
            state = "unbalanced" if unbalanced else "balanced again"
            self._rack_event(
                figures.rack,
                EventType.THRESHOLD_CROSSED,
                Severity.WARNING if unbalanced else Severity.INFO,
                f"rack {figures.rack} feed {feed} phases {state} ({ratio:.0%} spread of current)",
                {
                    "sensor": f"feed_{feed}_phase_imbalance",
                    "value": round(ratio, 4),
                    "to": "warning" if unbalanced else "ok",
                },
            )

    def _rack_event(
        self, rack: str, kind: EventType, severity: Severity, message: str, data: dict[str, object]
    ) -> None:
        log.info("rack_power_event", rack=rack, message=message)
        self.publisher.publish_rack_event(rack, Event(kind, severity, message, self.clock.now(), "rack", data))

    async def run(self) -> None:
        """Update on the default poll interval until cancelled."""
        interval = self.config.settings.defaults.poll_interval
        while True:
            await self.clock.sleep(interval)
            self.update()


class RackPublisher(Protocol):
    """Where rack figures and rack events go (the bus)."""

    def publish_rack(self, figures: RackFigures, ts: dt.datetime) -> None:
        """Rack telemetry."""

    def publish_rack_event(self, rack: str, event: Event) -> None:
        """A rack event (durable, like device events)."""
