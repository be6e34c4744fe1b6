"""An in-memory Publisher that records what the runtime publishes, for tests without a broker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from rackd.config import DeviceSpec
from rackd.model import CommandResult, Event, EventType, Reading
from rackd.runtime.rack_power import RackFigures
from rackd.runtime.state import DeviceState


@dataclass
class RecordingPublisher:
    """Implements rackd.bus.publisher.Publisher by appending to lists."""

    telemetry: list[tuple[str, str, list[Reading], dt.datetime]] = field(default_factory=list)
    states: list[tuple[str, DeviceState]] = field(default_factory=list)
    events: list[tuple[str, Event]] = field(default_factory=list)
    results: list[tuple[str, CommandResult, str | None]] = field(default_factory=list)
    racks: list[RackFigures] = field(default_factory=list)
    rack_events: list[tuple[str, Event]] = field(default_factory=list)

    def publish_rack(self, figures: RackFigures, ts: dt.datetime) -> None:
        """Record rack figures."""
        del ts
        self.racks.append(figures)

    def publish_rack_event(self, rack: str, event: Event) -> None:
        """Record a rack event."""
        self.rack_events.append((rack, event))

    def publish_telemetry(
        self, device: DeviceSpec, source: str, readings: Sequence[Reading], observed_at: dt.datetime
    ) -> None:
        """Record a telemetry message."""
        self.telemetry.append((device.id, source, list(readings), observed_at))

    def publish_state(self, device: DeviceSpec, state: DeviceState) -> None:
        """Record a state message."""
        self.states.append((device.id, state))

    def publish_event(self, device: DeviceSpec, event: Event) -> None:
        """Record an event."""
        self.events.append((device.id, event))

    def publish_result(
        self,
        device: DeviceSpec,
        result: CommandResult,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None:
        """Record a command result."""
        del correlation
        self.results.append((device.id, result, response_topic))

    def events_of(self, kind: EventType, device: str | None = None) -> list[Event]:
        """Events of one type (and device)."""
        return [e for d, e in self.events if e.type is kind and (device is None or d == device)]

    def last_state(self, device: str) -> DeviceState | None:
        """The newest state published for a device."""
        for d, state in reversed(self.states):
            if d == device:
                return state
        return None
