"""`rackd poll`: one read of one device from its config, without daemon or broker."""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rackd.config import Config, DeviceSpec
from rackd.drivers.contract import SessionContext
from rackd.drivers.registry import DriverRegistry
from rackd.errors import RackdError, UnsupportedError, describe
from rackd.model import Inventory, PowerState, Reading
from rackd.runtime.clock import SystemClock
from rackd.runtime.reader import DeviceReader, call_with_deadline


@dataclass
class ProbeResult:
    """What one read of a device showed."""

    device: str
    driver: str
    power: dict[str, PowerState] = field(default_factory=dict)
    readings: list[Reading] = field(default_factory=list)
    inventory: Inventory | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the read succeeded."""
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (`rackd poll --json`)."""
        return {
            "device": self.device,
            "driver": self.driver,
            "ok": self.ok,
            "error": self.error,
            "power": {target: state.value for target, state in self.power.items()},
            "inventory": dataclasses.asdict(self.inventory) if self.inventory else None,
            "readings": [
                {
                    "sensor": r.sensor,
                    "kind": r.kind.value,
                    "value": r.value,
                    "unit": r.unit,
                    "health": r.health.value,
                    "states": list(r.states),
                    "flags": list(r.flags),
                }
                for r in self.readings
            ],
        }


async def probe_device(spec: DeviceSpec, config: Config, registry: DriverRegistry) -> ProbeResult:
    """Log in, read power, sensors and inventory once, log out."""
    if spec.driver is None or spec.options is None:
        raise UnsupportedError(f"{spec.id} has no driver configured")
    clock = SystemClock()
    defaults = config.settings.defaults
    driver = registry.get(spec.driver)
    result = ProbeResult(spec.id, spec.driver)
    # A scratch state dir: `rackd poll` is often run as root or another user, and must not leave files the
    # daemon's own user cannot later replace in the real state dir.
    scratch = tempfile.TemporaryDirectory(prefix="rackd-poll-")
    context = SessionContext(spec.id, spec.role, Path(scratch.name))
    options = spec.options
    try:
        session = await call_with_deadline(
            clock, defaults.open_timeout, f"{spec.id}: login", lambda: driver.open(context, options)
        )
        try:
            read = await DeviceReader(session, clock, spec.call_timeout).read(None, read_log=False)
            result.power, result.readings, result.inventory = read.power, read.readings, read.inventory
            if read.inventory_error is not None:
                result.error = f"inventory: {describe(read.inventory_error)}"
        finally:
            await session.close()
    except RackdError as exc:
        result.error = describe(exc)
    finally:
        await registry.aclose()
        scratch.cleanup()
    return result


def format_probe(result: ProbeResult) -> str:
    """A readable table of a probe result."""
    lines = [f"device {result.device} (driver {result.driver})"]
    if result.error:
        lines.append(f"  ERROR {result.error}")
    if result.inventory:
        inv = result.inventory
        lines.append(
            f"  inventory: {inv.manufacturer or '-'} {inv.model or '-'} serial {inv.serial or '-'} "
            f"firmware {inv.firmware or '-'}"
        )
    for target, state in result.power.items():
        lines.append(f"  power {target}: {state}")
    if result.readings:
        width = max(len(r.sensor) for r in result.readings)
        lines.append(f"  {'sensor':<{width}}  {'value':>12} unit   health")
        for r in result.readings:
            value = "n/a" if r.value is None else f"{r.value:g}"
            extra = f"  [{', '.join(r.states)}]" if r.states else ""
            lines.append(f"  {r.sensor:<{width}}  {value:>12} {r.unit:<6} {r.health}{extra}")
    return "\n".join(lines)
