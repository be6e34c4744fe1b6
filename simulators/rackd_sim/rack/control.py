"""The rack's control channel: JSON lines over TCP on loopback (`status`, `fault`), used by `rackd sim fault`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog

from rackd_sim.rack.faults import FaultError, inject
from rackd_sim.rack.rack import LOOPBACK, VirtualRack

log = structlog.get_logger(__name__)

MAX_LINE = 64 * 1024


class RackControl:
    """Serves one VirtualRack: `status`, `hold` (`value`: freeze the load) and `fault` (`target`, `kind`, `value`)."""

    def __init__(self, rack: VirtualRack) -> None:
        """Not listening until `start()`."""
        self.rack = rack
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        """Listen on loopback; returns the port."""
        self._server = await asyncio.start_server(self._client, LOOPBACK, port, limit=MAX_LINE)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one request; never raises."""
        op = request.get("op")
        try:
            if op == "status":
                return {"ok": True, **self.rack.status()}
            if op == "hold":
                self.rack.hold_load = bool(request.get("value", True))
                return {"ok": True, "hold_load": self.rack.hold_load}
            if op == "fault":
                done = await inject(self.rack, str(request.get("target")), str(request.get("kind")),
                                    request.get("value"))
                log.info("rack_fault_injected", target=request.get("target"), kind=request.get("kind"))
                return {"ok": True, "result": done}
        except FaultError as exc:
            return {"ok": False, "error": str(exc)}
        except (RuntimeError, OSError) as exc:  # a BMC process that refused or went away
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": False, "error": f"unknown op {op!r}; known: fault, hold, status"}

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                except ValueError as exc:
                    reply: dict[str, Any] = {"ok": False, "error": f"not JSON: {exc}"}
                else:
                    reply = await self.handle(request if isinstance(request, dict) else {})
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError):
            pass  # a client that went away or sent an over-long line
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
