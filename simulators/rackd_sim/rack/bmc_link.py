"""A server's BMC simulator process, driven from the rack's event loop without blocking it."""

from __future__ import annotations

import asyncio
import secrets
import threading
from pathlib import Path
from typing import Any

from rackd_sim.bmc.process import BmcEndpoint, BmcProcess
from rackd_sim.rack.spec import RackTiming, ServerPlan


class BmcLink:
    """One `rackd sim bmc` child: started with the rack's timings, controlled over its JSON-lines channel."""

    def __init__(self, plan: ServerPlan, timing: RackTiming, log_dir: Path | None) -> None:
        """Prepare the process (a random password, the rack's timings); nothing runs until `start()`."""
        self.password = secrets.token_urlsafe(12)
        args = [
            f"--password={self.password}",  # one word: a random password may start with "-"
            "--power-on-delay", str(timing.bmc_power_on_delay),
            "--power-off-delay", str(timing.bmc_power_off_delay),
            "--boot-delay", str(timing.os_boot),
            "--shutdown-delay", str(timing.os_shutdown),
            "--cold-reset-time", str(timing.bmc_boot),
            "--load", str(plan.load_mean),
        ]
        if not plan.powered:
            args.append("--off")
        log_path = None if log_dir is None else log_dir / f"bmc-{plan.id}.log"
        self.process = BmcProcess(*args, log_path=log_path)
        self.endpoint: BmcEndpoint | None = None
        # BmcProcess keeps one control connection: one request at a time.
        self._lock = threading.Lock()

    async def start(self) -> BmcEndpoint:
        """Start the child and wait for its ready line (in a worker thread)."""
        self.endpoint = await asyncio.to_thread(self.process.start)
        return self.endpoint

    def _call(self, op: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return self.process.control(op, **fields)

    async def control(self, op: str, **fields: Any) -> dict[str, Any]:
        """One control request (raises RuntimeError when the BMC answers `ok: false`)."""
        return await asyncio.to_thread(self._call, op, fields)

    async def stop(self) -> None:
        """Stop the child by its PID."""
        await asyncio.to_thread(self.process.stop)
