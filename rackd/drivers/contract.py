"""The driver contract: what a driver declares and what a device session can do (Protocols)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import structlog
from pydantic import BaseModel, ConfigDict

from rackd.model import Inventory, LogBatch, PowerAction, PowerState, PowerTarget, Reading


class Capability(StrEnum):
    """What a driver's sessions can do."""

    POWER = "power"
    SENSORS = "sensors"
    CONSOLE = "console"
    EVENT_LOG = "event_log"
    INVENTORY = "inventory"


class DriverOptions(BaseModel):
    """Base of every driver's typed options model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def config_warnings(self) -> list[tuple[str, str]]:
        """Risky but valid settings, as (key path below the device, message); `rackd check-config` prints them."""
        return []


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What the runtime tells a driver about the device it opens a session to."""

    device_id: str
    role: str  # "bmc" (of a node), "pdu", "console_server", "console"
    state_dir: Path  # a directory the driver may keep per-device state in (caches)
    log: structlog.stdlib.BoundLogger = field(default_factory=lambda: structlog.get_logger("rackd.driver"))


@runtime_checkable
class DeviceSession(Protocol):
    """An open session to one device; `close` logs out and never raises."""

    async def close(self) -> None:
        """Log out and release resources; safe to call more than once."""


@runtime_checkable
class PowerControl(Protocol):
    """Switchable targets: the chassis of a BMC, the outlets of a PDU. Results are *accepted*, not verified."""

    async def power_targets(self) -> Sequence[PowerTarget]:
        """What can be switched."""

    async def get_power(self, target: str) -> PowerState:
        """The observed power state of one target."""

    async def set_power(self, target: str, action: PowerAction) -> None:
        """Ask the device to act; returns once the device accepted the request."""


@runtime_checkable
class SensorSource(Protocol):
    """A full read of every sensor, in canonical units with stable ids."""

    async def read_sensors(self) -> Sequence[Reading]:
        """One full read."""


@runtime_checkable
class EventLogSource(Protocol):
    """The device's own event log, read incrementally from an opaque cursor the runtime persists."""

    async def read_log(self, cursor: str | None) -> LogBatch:
        """Entries after `cursor` (None: first read — return no history, only the cursor to start from)."""


@runtime_checkable
class InventorySource(Protocol):
    """Model, serial and firmware of the device."""

    async def read_inventory(self) -> Inventory:
        """Read once per session."""


@runtime_checkable
class ConsoleStream(Protocol):
    """A byte stream to a serial console."""

    async def read(self) -> bytes:
        """The next chunk of console output; b"" at end of stream."""

    async def write(self, data: bytes) -> None:
        """Send bytes to the console."""

    async def send_break(self) -> None:
        """Send a serial BREAK; raises UnsupportedError where the transport cannot carry one."""

    async def close(self) -> None:
        """Close the stream; never raises."""


@runtime_checkable
class ConsoleTransport(Protocol):
    """A session that can open a console byte stream."""

    async def open_console(self) -> ConsoleStream:
        """Open the console stream."""


class Driver(Protocol):
    """A driver plugin, found through the entry-point group `rackd.drivers` and instantiated once per process.

    Drivers never sleep, retry or schedule; they raise only `rackd.errors` exceptions; blocking libraries run in a
    bounded executor inside the driver.
    """

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    options_model: ClassVar[type[DriverOptions]]

    async def open(self, context: SessionContext, options: Any) -> DeviceSession:
        """Open (log in) a session to one device; `options` is an instance of `options_model`."""

    async def aclose(self) -> None:
        """Release process-wide resources (executors, engines) at shutdown."""
