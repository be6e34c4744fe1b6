"""The virtual rack: starts the PDUs, consoles and BMCs of a spec and links them on every tick."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from pathlib import Path
from typing import Any

import structlog

from rackd_sim.console_server.server import ConsoleServerSim
from rackd_sim.pdu.agent import PduSpec
from rackd_sim.pdu.model import PowerOn, Timing
from rackd_sim.pdu.simulator import PduSimulator
from rackd_sim.rack.bmc_link import BmcLink
from rackd_sim.rack.load import InferenceLoad
from rackd_sim.rack.server import RackServer
from rackd_sim.rack.spec import RackSpec

log = structlog.get_logger(__name__)

LOOPBACK = "127.0.0.1"
# The APC rPDU2 reports its total in hundredths of kW and each outlet in whole watts: the sum of the
# outlets may differ from the total by 5 W of rounding on the total plus 0.5 W per outlet.
TOTAL_RESOLUTION_W = 10.0


class VirtualRack:
    """Every simulator of one rack, in this process (BMCs as child processes), and the links between them."""

    def __init__(self, spec: RackSpec, log_dir: Path | None = None) -> None:
        """Build everything from the spec; nothing runs until `start()`."""
        self.spec = spec
        # The read-write community is a secret; the read-only one stays the well-known "public".
        self.community = secrets.token_urlsafe(12)
        timing = Timing(switch=spec.timing.pdu_switch_delay)
        self.pdus = PduSimulator(
            [
                PduSpec(
                    name=plan.id,
                    vendor=plan.vendor,
                    outlets=plan.outlets,
                    host=LOOPBACK,
                    read_community="public",
                    write_community=self.community,
                    timing=timing,
                    load_w=0.0,
                    voltage=plan.voltage,
                    power_on=PowerOn.LAST,
                )
                for plan in spec.pdus
            ]
        )
        consoles = [plan.id for plan in spec.servers if plan.console and plan.bmc]
        self.consoles = ConsoleServerSim(consoles, host=LOOPBACK, boot_speed=spec.timing.console_boot_speed)
        self.servers: dict[str, RackServer] = {}
        for index, plan in enumerate(spec.servers):
            feeds = [(self.pdus[pdu].pdu, self.pdus[pdu].pdu.outlets[number]) for pdu, number in plan.outlets]
            self.servers[plan.id] = RackServer(
                plan,
                InferenceLoad(plan, spec.load_period, seed=index),
                feeds,
                bmc=BmcLink(plan, spec.timing, log_dir) if plan.bmc else None,
                console=self.consoles[plan.id].console if plan.id in consoles else None,
                ambient_c=spec.ambient_c,
                bmc_boot_s=spec.timing.bmc_boot,
            )
        self._started = time.monotonic()
        self._ticker: asyncio.Task[None] | None = None
        self.tick_errors = 0
        self.hold_load = False  # freeze every server's load (steady meters for measurements)

    async def start(self) -> None:
        """Start the PDUs and consoles here and every BMC process (in parallel), then begin linking."""
        self.pdus.start()
        await self.consoles.start()
        links = [server.bmc for server in self.servers.values() if server.bmc is not None]
        try:
            await asyncio.gather(*(link.start() for link in links))
        except BaseException:
            await self.stop()
            raise
        for server in self.servers.values():
            if server.console is not None and server.plan.powered:
                server.console.power_on()
        await self.tick()
        self._ticker = asyncio.create_task(self._tick_forever(), name="rack-ticker")

    async def tick(self) -> None:
        """One linking pass over every server."""
        elapsed = time.monotonic() - self._started
        steps = (server.step(elapsed, hold_load=self.hold_load) for server in self.servers.values())
        results = await asyncio.gather(*steps, return_exceptions=True)
        for server, result in zip(self.servers.values(), results, strict=True):
            if isinstance(result, Exception):
                self.tick_errors += 1
                log.warning("rack_link_failed", server=server.plan.id, error=str(result))

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.spec.tick)  # the simulation's own clock rate, not a synchronisation
            await self.tick()

    async def stop(self) -> None:
        """Stop linking, every BMC process (by PID), the consoles and the PDUs."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await asyncio.gather(
            *(server.bmc.stop() for server in self.servers.values() if server.bmc is not None),
            return_exceptions=True,
        )
        await self.consoles.close()
        self.pdus.stop()

    def metering_tolerance_w(self, pdu: str) -> float:
        """How far the sum of a PDU's outlet readings may be from its total reading (rounding of the meters)."""
        return TOTAL_RESOLUTION_W / 2 + 0.5 * len(self.pdus[pdu].pdu.outlets)

    def status(self) -> dict[str, Any]:
        """What every part of the rack is doing (the control channel's `status`)."""
        return {
            "rack": self.spec.id,
            "servers": [server.describe() for server in self.servers.values()],
            "pdus": [
                {
                    "id": plan.id,
                    "feed": plan.feed,
                    "total_w": round(self.pdus[plan.id].pdu.total_w, 1),
                    "faults": vars(self.pdus[plan.id].pdu.faults).copy(),
                    "metering_tolerance_w": self.metering_tolerance_w(plan.id),
                }
                for plan in self.spec.pdus
            ],
            "tick_errors": self.tick_errors,
            "hold_load": self.hold_load,
        }

    def describe(self) -> dict[str, Any]:
        """Endpoints and credentials of every part (the ready line)."""
        consoles = {entry["name"]: entry for entry in self.consoles.describe()["consoles"]}
        servers = []
        for server in self.servers.values():
            entry: dict[str, Any] = {"id": server.plan.id, "outlets": server.describe()["outlets"]}
            if server.bmc is not None and server.bmc.endpoint is not None:
                endpoint = server.bmc.endpoint
                entry["bmc"] = {
                    "host": endpoint.host,
                    "port": endpoint.port,
                    "username": endpoint.username,
                    "password": endpoint.password,
                    "control": f"{endpoint.control_host}:{endpoint.control_port}",
                    "pid": endpoint.pid,
                }
            if server.plan.id in consoles:
                entry["console"] = {k: consoles[server.plan.id][k] for k in ("raw", "telnet", "rfc2217")}
            servers.append(entry)
        return {
            "site": self.spec.site,
            "rack": self.spec.id,
            "pdus": [
                {
                    "id": plan.id,
                    "feed": plan.feed,
                    "host": LOOPBACK,
                    "port": self.pdus[plan.id].port,
                    "community": self.community,
                    "vendor": plan.vendor,
                    "outlets": plan.outlets,
                }
                for plan in self.spec.pdus
            ],
            "servers": servers,
        }
