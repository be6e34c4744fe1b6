"""One server of the virtual rack: its PSUs fed by PDU outlets, its BMC, its console and its draw, linked."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from rackd_sim.console_server.machine import SimulatedConsole
from rackd_sim.pdu.model import Outlet, SimulatedPdu
from rackd_sim.rack.bmc_link import BmcLink
from rackd_sim.rack.load import InferenceLoad, watts
from rackd_sim.rack.spec import ServerPlan

log = structlog.get_logger(__name__)

BMC_PSUS = 2  # the BMC simulator models two PSUs: PSU n is fed by the server's n-th outlet
LOAD_RESOLUTION = 0.01  # the BMC is told about load changes at least this large


@dataclass
class RackServer:
    """A server (or an outlet-only device: switch, console server) and how the rest of the rack affects it."""

    plan: ServerPlan
    load: InferenceLoad
    feeds: list[tuple[SimulatedPdu, Outlet]]
    bmc: BmcLink | None = None
    console: SimulatedConsole | None = None
    ambient_c: float = 22.0
    bmc_boot_s: float = 2.0  # how long the BMC stays silent after mains returns
    bmc_ready_at: float | None = None  # monotonic time the booting BMC starts answering
    mains: bool = True  # at least one PSU has input
    power_on: bool = True  # host (chassis) power as the BMC reports it
    os_up: bool = True
    on_before_mains_loss: bool = True  # BMC power-restore policy "previous state"
    failed_psus: set[int] = field(default_factory=set)  # injected PSU failures
    psu_reported: dict[int, bool] = field(default_factory=dict)  # what the BMC was last told, per PSU
    load_value: float = 0.0
    load_sent: float = -1.0
    draw_w: float = 0.0
    bmc_faults: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Outlet-only devices have no BMC to ask: their power is their mains."""
        self.power_on = self.plan.powered
        self.os_up = self.plan.powered
        self.on_before_mains_loss = self.plan.powered

    def feed_states(self) -> list[bool]:
        """Whether each PSU's outlet delivers power."""
        return [outlet.on for _pdu, outlet in self.feeds]

    async def step(self, elapsed: float, *, hold_load: bool = False) -> None:
        """One linking pass: mains → BMC and host power → console → load → outlet draw (`hold_load`: keep it)."""
        fed = self.feed_states()
        mains = any(fed)
        if self.bmc is None:
            self.mains = self.power_on = self.os_up = mains
        else:
            await self._mains_changes(mains)
            if mains:
                await self._psu_inputs(fed)
                await self._observe_host()
        if not hold_load or self.load_sent < 0:
            self.load_value = self.load.at(elapsed)
        if self.bmc is not None and mains and self.load_sent < 0:
            await self.bmc.control("ambient", value=self.ambient_c)
        if self.bmc is not None and mains and abs(self.load_value - self.load_sent) >= LOAD_RESOLUTION:
            await self.bmc.control("load", value=round(self.load_value, 3))
            self.load_sent = self.load_value
        self._meter(fed)

    async def _mains_changes(self, mains: bool) -> None:
        assert self.bmc is not None
        if self.mains and not mains:
            self.mains = False
            self.on_before_mains_loss = self.power_on
            self.bmc_ready_at = None
            log.info("rack_server_lost_mains", server=self.plan.id)
            # No mains: the BMC is dead (no answer on the LAN, every session lost) and the host is off.
            await self.bmc.control("faults", hang=True, drop_rate=0.0, delay=0.0)
            await self.bmc.control("cold_reset")
            await self.bmc.control("power", action="off")
            self.bmc_faults.clear()
            self._host_changed(on=False)
        elif not self.mains and mains:
            self.mains = True
            self.psu_reported.clear()
            # The BMC boots first (silent meanwhile), then restores the host's power ("previous state").
            self.bmc_ready_at = time.monotonic() + self.bmc_boot_s
            log.info("rack_server_mains_restored", server=self.plan.id, power_on=self.on_before_mains_loss)
        if self.mains and self.bmc_ready_at is not None and time.monotonic() >= self.bmc_ready_at:
            self.bmc_ready_at = None
            await self.bmc.control("faults", hang=False)
            log.info("rack_bmc_booted", server=self.plan.id)
            if self.on_before_mains_loss:
                await self.bmc.control("power", action="on")

    async def _psu_inputs(self, fed: list[bool]) -> None:
        assert self.bmc is not None
        for psu in range(1, min(BMC_PSUS, len(fed)) + 1):
            failed = not fed[psu - 1] or psu in self.failed_psus
            if self.psu_reported.get(psu, False) != failed:
                await self.bmc.control("psu", psu=psu, failed=failed)
                self.psu_reported[psu] = failed
                log.info("rack_psu_changed", server=self.plan.id, psu=psu, failed=failed)

    async def _observe_host(self) -> None:
        assert self.bmc is not None
        status = await self.bmc.control("status")
        self.os_up = bool(status.get("os_up"))
        self._host_changed(on=status.get("power") == "on")

    def _host_changed(self, *, on: bool) -> None:
        if on == self.power_on:
            return
        self.power_on = on
        log.info("rack_host_power", server=self.plan.id, on=on)
        if self.console is not None:
            # The console follows the host: a boot log from power-on, silence from power-off.
            if on:
                self.console.power_on()
            else:
                self.console.power_off()

    def _meter(self, fed: list[bool]) -> None:
        """Put the server's draw on the outlets of its live PSUs (a failed or unfed PSU carries nothing)."""
        self.draw_w = watts(self.plan, self.load_value, powered=self.power_on) if self.mains else 0.0
        live = [i for i, on in enumerate(fed) if on and (i + 1) not in self.failed_psus]
        if not live:
            live = [i for i, on in enumerate(fed) if on]
        share = self.draw_w / len(live) if live else 0.0
        for index, (pdu, outlet) in enumerate(self.feeds):
            want = share if index in live else 0.0
            if abs(outlet.load_w - want) > 0.05:
                pdu.set_load(outlet.number, want)

    def describe(self) -> dict[str, Any]:
        """The server as the rack's status op reports it."""
        return {
            "id": self.plan.id,
            "model": self.plan.model,
            "mains": self.mains,
            "power": "on" if self.power_on else "off",
            "os_up": self.os_up,
            "load": round(self.load_value, 3),
            "draw_w": round(self.draw_w, 1),
            "outlets": [f"{pdu.name}:{outlet.number}" for pdu, outlet in self.feeds],
            "feeds_on": self.feed_states(),
            "failed_psus": sorted(self.failed_psus),
            "bmc_faults": dict(self.bmc_faults),
            "console": None if self.console is None else str(self.console.state),
        }
