"""The state of one simulated PDU, vendor-neutral: outlets, loads, energy, pending commands, faults, reboots."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

log = structlog.get_logger(__name__)


class PowerOn(StrEnum):
    """What an outlet does when the PDU itself powers up."""

    ON = "on"
    OFF = "off"
    LAST = "last"


class Op(StrEnum):
    """A switching operation in progress on an outlet."""

    ON = "on"
    OFF = "off"
    REBOOT = "reboot"


@dataclass
class Timing:
    """How long things take on the simulated PDU (seconds); short in tests, realistic in demos."""

    switch: float = 0.0  # relay actuation after a command is accepted
    reboot_off: float = 5.0  # how long a native reboot keeps the outlet off
    delayed: float = 3.0  # the delay of "delayed on/off" commands
    boot: float = 2.0  # how long the PDU stays silent when it reboots itself


@dataclass
class Faults:
    """What the simulated PDU does wrong; tests and the CLI flip these at run time."""

    silent: bool = False  # stops answering altogether (a hung management card)
    drop_rate: float = 0.0  # fraction of requests silently dropped
    reply_delay: float = 0.0  # answer this late (longer than the client timeout = a timeout)
    wrong_values: bool = False  # metered columns answer with garbage types


@dataclass
class Outlet:
    """One outlet: switched state, its power-up setting, the load behind it and its energy meter."""

    number: int
    name: str
    on: bool = True
    power_on: PowerOn = PowerOn.LAST
    load_w: float = 0.0  # what the plugged-in equipment draws while the outlet is on
    energy_wh: float = 0.0
    pending: Op | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    @property
    def power_w(self) -> float:
        """What the outlet delivers now."""
        return self.load_w if self.on else 0.0


@dataclass(frozen=True, slots=True)
class SetRecord:
    """One accepted SET, kept for assertions."""

    oid: str
    value: int
    at: float


class SimulatedPdu:
    """One PDU's behaviour, independent of how SNMP reaches it."""

    def __init__(
        self,
        name: str,
        outlets: list[Outlet],
        timing: Timing | None = None,
        voltage: float = 230.0,
        reboot_when_off_turns_on: bool = False,
    ) -> None:
        """Create the PDU with every outlet as given."""
        self.name = name
        self.outlets = {outlet.number: outlet for outlet in outlets}
        self.timing = timing or Timing()
        self.voltage = voltage
        self.faults = Faults()
        self.set_log: list[SetRecord] = []
        self.changed: Callable[[], None] = lambda: None  # the agent refreshes its tables on every change
        self._reboot_when_off_turns_on = reboot_when_off_turns_on  # Eaton-style native reboot
        self._metered_at = time.monotonic()
        self._boot_timer: asyncio.TimerHandle | None = None
        self.booting = False

    # ------------------------------------------------------------------ loads and meters

    def set_load(self, number: int, watts: float) -> None:
        """Set what the equipment behind an outlet draws while it is on (the virtual rack drives this)."""
        self.meter()
        self.outlets[number].load_w = max(0.0, watts)
        self.changed()

    def set_power_on(self, number: int, setting: PowerOn) -> None:
        """Change what an outlet does when the PDU powers up (the safety setting rackd reports)."""
        self.outlets[number].power_on = setting
        self.changed()

    def set_energy(self, number: int, watt_hours: float) -> None:
        """Set an outlet's energy meter (a user reset on the PDU, or a test seeding a value)."""
        self.meter()
        self.outlets[number].energy_wh = max(0.0, watt_hours)
        self.changed()

    def meter(self) -> None:
        """Advance every energy counter to now."""
        now = time.monotonic()
        hours = (now - self._metered_at) / 3600.0
        self._metered_at = now
        for outlet in self.outlets.values():
            outlet.energy_wh += outlet.power_w * hours

    def current_a(self, outlet: Outlet) -> float:
        """The outlet's current at the PDU's voltage."""
        return outlet.power_w / self.voltage if self.voltage else 0.0

    @property
    def total_w(self) -> float:
        """Everything the PDU delivers."""
        return sum(outlet.power_w for outlet in self.outlets.values())

    @property
    def total_wh(self) -> float:
        """Energy through the PDU since the simulation started."""
        return sum(outlet.energy_wh for outlet in self.outlets.values())

    # ------------------------------------------------------------------ switching

    def answers(self) -> bool:
        """Whether a request arriving now is answered (faults and the PDU's own reboot)."""
        if self.faults.silent or self.booting:
            return False
        return not (self.faults.drop_rate and random.random() < self.faults.drop_rate)

    def record_set(self, oid: str, value: int) -> None:
        """Keep an accepted SET for assertions."""
        self.set_log.append(SetRecord(oid, value, time.monotonic()))

    def _set_state(self, outlet: Outlet, on: bool) -> None:
        self.meter()
        outlet.on = on
        self.changed()

    def _later(self, outlet: Outlet, delay: float, action: Callable[[], None]) -> None:
        if delay <= 0:
            action()
            return
        outlet.timers.append(asyncio.get_running_loop().call_later(delay, action))

    def command(self, number: int, op: Op, delay: float = 0.0) -> None:
        """Accept a switching command: after `delay` (+ relay time) the outlet switches; pending until then."""
        outlet = self.outlets[number]
        self.cancel(number)
        if op is Op.REBOOT and not outlet.on and not self._reboot_when_off_turns_on:
            log.info("sim_pdu_reboot_of_off_outlet_ignored", pdu=self.name, outlet=number)
            return  # APC/Sentry: a reboot leaves an outlet that is off, off
        outlet.pending = op
        self.changed()

        def finish() -> None:
            outlet.pending = None
            self._set_state(outlet, op is not Op.OFF)

        def act() -> None:
            if op is Op.REBOOT:
                self._set_state(outlet, on=False)
                self._later(outlet, self.timing.reboot_off, finish)
            else:
                finish()

        self._later(outlet, delay + self.timing.switch, act)

    def cancel(self, number: int) -> None:
        """Cancel whatever is pending on an outlet."""
        outlet = self.outlets[number]
        for timer in outlet.timers:
            timer.cancel()
        outlet.timers.clear()
        if outlet.pending is not None:
            outlet.pending = None
            self.changed()

    # ------------------------------------------------------------------ the PDU's own power

    def power_cycle(self, down_for: float | None = None) -> None:
        """The PDU loses power: all outlets off and silence, then outlets return per their power-up setting."""
        last = {number: outlet.on for number, outlet in self.outlets.items()}
        for number, outlet in self.outlets.items():
            self.cancel(number)
            self._set_state(outlet, on=False)
        self.booting = True
        log.info("sim_pdu_power_cycle", pdu=self.name)

        def boot() -> None:
            self.booting = False
            for number, outlet in self.outlets.items():
                comes_on = {PowerOn.ON: True, PowerOn.OFF: False, PowerOn.LAST: last[number]}[outlet.power_on]
                self._set_state(outlet, comes_on)
            log.info("sim_pdu_booted", pdu=self.name)

        delay = self.timing.boot if down_for is None else down_for
        if delay <= 0:
            boot()
        else:
            self._boot_timer = asyncio.get_running_loop().call_later(delay, boot)

    def close(self) -> None:
        """Cancel every timer."""
        for number in self.outlets:
            self.cancel(number)
        if self._boot_timer is not None:
            self._boot_timer.cancel()
