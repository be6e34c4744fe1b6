"""What the runtime hands to the bus: telemetry, retained state and events of a device (a Protocol)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from rackd.config import DeviceSpec
from rackd.model import CommandResult, Event, Reading
from rackd.runtime.state import DeviceState


class Publisher(Protocol):
    """Non-blocking hand-off: telemetry keeps the newest per topic, state is retained, events are never lost."""

    def publish_telemetry(
        self, device: DeviceSpec, source: str, readings: Sequence[Reading], observed_at: dt.datetime
    ) -> None:
        """One poll's readings of one source."""

    def publish_state(self, device: DeviceSpec, state: DeviceState) -> None:
        """The device's retained state."""

    def publish_event(self, device: DeviceSpec, event: Event) -> None:
        """An event: spooled durably before this returns."""

    def publish_result(
        self,
        device: DeviceSpec,
        result: CommandResult,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None:
        """A command result (to an MQTT 5 response topic when given): spooled durably before this returns."""
