"""The simulated GPU server behind the BMC: power state machine, OS state, load, sensor values, SEL events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from rackd_sim.bmc.catalog import PSU_COUNT, PSU_FAILED, PSU_INPUT_LOST, PSU_PRESENT, build_catalog
from rackd_sim.bmc.sdr import SensorSpec, SensorType
from rackd_sim.bmc.sel import EVENT_TYPE_SENSOR_SPECIFIC, EVENT_TYPE_THRESHOLD, EventLog, event_record

COMPLETION_OK = 0x00
COMPLETION_NOT_IN_PRESENT_STATE = 0xD5

# Event-only sensors the BMC logs power events against (not in the SDR: clients show them by number).
SENSOR_ACPI_STATE = 0x40
SENSOR_POWER_UNIT = 0x41
SENSOR_NMI = 0x42
SENSOR_TYPE_CRITICAL_INTERRUPT = 0x13
ACPI_S0_WORKING = 0x00
ACPI_S5_SOFT_OFF = 0x05
POWER_UNIT_CYCLE = 0x01
NMI_DIAGNOSTIC = 0x00
PSU_OFFSET_FAILURE = 0x01

STANDBY_WATTS = 24.0
IDLE_WATTS = 650.0
FULL_LOAD_WATTS = 6000.0
MAINS_VOLTS = 230.0


class ChassisControl(StrEnum):
    """Chassis Control directives (netfn 0x00, cmd 0x02, data byte 0)."""

    OFF = "off"
    ON = "on"
    CYCLE = "cycle"
    RESET = "reset"
    DIAG = "diag"
    SOFT_OFF = "soft_off"


DIRECTIVES: dict[int, ChassisControl] = {
    0: ChassisControl.OFF,
    1: ChassisControl.ON,
    2: ChassisControl.CYCLE,
    3: ChassisControl.RESET,
    4: ChassisControl.DIAG,
    5: ChassisControl.SOFT_OFF,
}


@dataclass(frozen=True, slots=True)
class Timing:
    """How long the server takes for each transition (seconds; short in tests)."""

    power_on: float = 3.0  # chassis reports on this long after the request
    power_off: float = 0.5
    boot: float = 20.0  # OS up this long after power-on completed
    shutdown: float = 5.0  # OS shutdown after an ACPI soft-off request
    cycle_off: float = 2.0  # time spent off during a power cycle


@dataclass
class _Pending:
    due: float
    step: Callable[[], None]
    label: str = ""


@dataclass
class ServerState:
    """What the simulated server is doing right now (read under the machine's lock)."""

    power_on: bool = False
    os_up: bool = False
    load: float = 0.3
    ambient: float = 24.0
    overrides: dict[str, float | None] = field(default_factory=dict)
    failed_psus: set[int] = field(default_factory=set)


class ServerMachine:
    """The server: chassis power with realistic delays, OS boot/shutdown, sensors that follow power and load.

    Transitions are applied lazily on every access, so no timer thread is needed and state is always current.
    """

    def __init__(
        self,
        timing: Timing | None = None,
        *,
        powered: bool = True,
        sel: EventLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """A server that starts on (with its OS up) or off."""
        self.timing = timing or Timing()
        self.sensors: list[SensorSpec] = build_catalog()
        self.by_number = {spec.number: spec for spec in self.sensors}
        self.sel = sel or EventLog()
        self._clock = clock
        self._lock = threading.RLock()
        self._pending: list[_Pending] = []
        self.state = ServerState(power_on=powered, os_up=powered)
        self.console_listeners: list[Callable[[bytes], None]] = []
        self.min_watts: float | None = None
        self.max_watts: float | None = None
        self._watts_total = 0.0
        self._watts_samples = 0

    # --- power ---------------------------------------------------------------------------------------

    def _advance(self) -> None:
        now = self._clock()
        while True:
            due = [p for p in self._pending if p.due <= now]
            if not due:
                return
            first = min(due, key=lambda p: p.due)
            self._pending.remove(first)
            first.step()

    def _schedule(self, delay: float, step: Callable[[], None], label: str) -> None:
        self._pending.append(_Pending(self._clock() + delay, step, label))

    def _cancel(self) -> None:
        self._pending.clear()

    def _log(
        self,
        sensor_type: int,
        sensor: int,
        event_type: int,
        offset: int,
        *,
        deassertion: bool = False,
        data2: int = 0xFF,
        data3: int = 0xFF,
    ) -> None:
        body = event_record(0, sensor_type, sensor, event_type, offset, deassertion=deassertion, data2=data2,
                            data3=data3)
        self.sel.add(body)

    def _console(self, text: str) -> None:
        for listener in list(self.console_listeners):
            listener(text.encode())

    def _became_on(self) -> None:
        self.state.power_on = True
        self._log(SensorType.ACPI_POWER_STATE, SENSOR_ACPI_STATE, EVENT_TYPE_SENSOR_SPECIFIC, ACPI_S0_WORKING)
        self._console("\r\nBIOS POST complete\r\nBooting Linux...\r\n")
        self._schedule(self.timing.boot, self._os_booted, "boot")

    def _os_booted(self) -> None:
        self.state.os_up = True
        self._console("\r\nUbuntu 24.04 LTS gpu-sim ttyS0\r\n\r\ngpu-sim login: ")

    def _became_off(self) -> None:
        self.state.power_on = False
        self.state.os_up = False
        self._log(SensorType.ACPI_POWER_STATE, SENSOR_ACPI_STATE, EVENT_TYPE_SENSOR_SPECIFIC, ACPI_S5_SOFT_OFF)

    def tick(self) -> None:
        """Apply every transition that is due (SEL entries appear when they happen, not when power is asked)."""
        with self._lock:
            self._advance()

    def power_state(self) -> str:
        """'on' or 'off', as Get Chassis Status reports it."""
        with self._lock:
            self._advance()
            return "on" if self.state.power_on else "off"

    def os_up(self) -> bool:
        """Whether the simulated OS has finished booting."""
        with self._lock:
            self._advance()
            return self.state.os_up

    def control(self, directive: ChassisControl) -> int:
        """Act on a chassis control request; returns the IPMI completion code."""
        with self._lock:
            self._advance()
            on = self.state.power_on
            t = self.timing
            if directive is ChassisControl.ON:
                if not on and not any(p.label == "power_on" for p in self._pending):
                    self._cancel()
                    self._schedule(t.power_on, self._became_on, "power_on")
            elif directive is ChassisControl.OFF:
                self._cancel()
                if on:
                    self._console("\r\n[hard power off]\r\n")
                    self._schedule(t.power_off, self._became_off, "power_off")
            elif directive is ChassisControl.SOFT_OFF:
                # ACPI soft-off is a request to the OS: it is ignored unless the OS is up to act on it.
                if on and self.state.os_up and not any(p.label == "shutdown" for p in self._pending):
                    self._console("\r\nACPI power button pressed; shutting down...\r\n")
                    self._schedule(t.shutdown, self._became_off, "shutdown")
            elif directive in (ChassisControl.RESET, ChassisControl.CYCLE, ChassisControl.DIAG):
                if not on:
                    return COMPLETION_NOT_IN_PRESENT_STATE
                self._cancel()
                if directive is ChassisControl.RESET:
                    self.state.os_up = False
                    self._console("\r\n[reset]\r\n")
                    self._schedule(0.0, self._became_on, "reset")
                elif directive is ChassisControl.CYCLE:
                    self._log(SensorType.POWER_UNIT, SENSOR_POWER_UNIT, EVENT_TYPE_SENSOR_SPECIFIC, POWER_UNIT_CYCLE)
                    self._schedule(t.power_off, self._became_off, "cycle_off")
                    self._schedule(t.power_off + t.cycle_off + t.power_on, self._became_on, "power_on")
                else:
                    self._log(SENSOR_TYPE_CRITICAL_INTERRUPT, SENSOR_NMI, EVENT_TYPE_SENSOR_SPECIFIC, NMI_DIAGNOSTIC)
                    self.state.os_up = False
                    self._console("\r\nKernel panic - not syncing: NMI: Not continuing\r\n")
            return COMPLETION_OK

    # --- load and faults -----------------------------------------------------------------------------

    def set_load(self, load: float) -> None:
        """Workload share 0..1: drives temperatures, fans and power."""
        with self._lock:
            self.state.load = max(0.0, min(1.0, load))

    def set_ambient(self, celsius: float) -> None:
        """Inlet air temperature."""
        with self._lock:
            self.state.ambient = celsius

    def set_sensor(self, name: str, value: float | None) -> None:
        """Pin a threshold sensor to a value (None: unavailable); logs threshold crossings to the SEL."""
        spec = self.spec_named(name)
        with self._lock:
            before = self._status(spec)
            self.state.overrides[spec.name] = value
            after = self._status(spec)
            self._log_threshold_changes(spec, before, after, value)

    def clear_sensor(self, name: str) -> None:
        """Let a pinned sensor follow the model again."""
        spec = self.spec_named(name)
        with self._lock:
            self.state.overrides.pop(spec.name, None)

    def fail_psu(self, psu: int, failed: bool = True) -> None:
        """Fail (or repair) one PSU: its status asserts 'failure detected', the other carries the load."""
        if not 1 <= psu <= PSU_COUNT:
            raise ValueError(f"no PSU {psu}")
        with self._lock:
            if failed == (psu in self.state.failed_psus):
                return
            if failed:
                self.state.failed_psus.add(psu)
            else:
                self.state.failed_psus.discard(psu)
            spec = self.spec_named(f"PSU{psu} Status")
            self._log(spec.sensor_type, spec.number, EVENT_TYPE_SENSOR_SPECIFIC, PSU_OFFSET_FAILURE,
                      deassertion=not failed)

    def spec_named(self, name: str) -> SensorSpec:
        """The sensor with this name (case-insensitive)."""
        for spec in self.sensors:
            if spec.name.lower() == name.lower():
                return spec
        raise KeyError(f"no sensor named {name!r}")

    def _status(self, spec: SensorSpec) -> int:
        value = self.value(spec)
        return 0 if value is None or spec.discrete else spec.threshold_status(spec.to_raw(value))

    def _log_threshold_changes(self, spec: SensorSpec, before: int, after: int, value: float | None) -> None:
        # threshold status bits 3-5 (upper) and 0-2 (lower) map to event offsets: UNC high 07h, UC high 09h,
        # UNR high 0Bh; LNC low 00h, LC low 02h, LNR low 04h.
        offsets = {0: 0x00, 1: 0x02, 2: 0x04, 3: 0x07, 4: 0x09, 5: 0x0B}
        t = spec.thresholds
        limits = {} if t is None else {0: t.lnc, 1: t.lc, 2: t.lnr, 3: t.unc, 4: t.uc, 5: t.unr}
        for bit, offset in offsets.items():
            was, now = before >> bit & 1, after >> bit & 1
            if was == now:
                continue
            limit = limits.get(bit)
            self._log(
                spec.sensor_type, spec.number, EVENT_TYPE_THRESHOLD, offset, deassertion=not now,
                data2=spec.to_raw(value) if value is not None else 0xFF,
                data3=spec.to_raw(limit) if limit is not None else 0xFF,
            )

    # --- sensors -------------------------------------------------------------------------------------

    def system_power(self) -> float:
        """Watts drawn at the wall (what DCMI reports)."""
        with self._lock:
            self._advance()
            s = self.state
            if not s.power_on:
                return STANDBY_WATTS
            return IDLE_WATTS + (FULL_LOAD_WATTS - IDLE_WATTS) * s.load

    def _psu_share(self, psu: int) -> float:
        live = [n for n in range(1, PSU_COUNT + 1) if n not in self.state.failed_psus]
        if psu not in live:
            return 0.0
        return self.system_power() / len(live)

    def value(self, spec: SensorSpec) -> float | None:  # noqa: PLR0911 - one branch per sensor family
        """The value of a threshold sensor now (None: unavailable, e.g. CPU temperature while off)."""
        with self._lock:
            self._advance()
            if spec.name in self.state.overrides:
                return self.state.overrides[spec.name]
            s = self.state
            name = spec.name
            load = s.load
            if name == "Inlet Temp":
                return s.ambient
            if name == "Exhaust Temp":
                return s.ambient + (8 + 22 * load if s.power_on else 1)
            if name.startswith("PSU") and name.endswith("Input Power"):
                return self._psu_share(int(name[3]))
            if name.startswith("PSU") and name.endswith("Current"):
                return self._psu_share(int(name[3])) / MAINS_VOLTS
            if not s.power_on:
                return None  # host-side sensors are not scanned while the host is off
            if name.startswith("CPU"):
                return s.ambient + 20 + 45 * load
            if name.startswith("GPU"):
                return s.ambient + 15 + 50 * load + int(name[3]) * 0.5
            if name.startswith("Fan"):
                return 3000 + 9000 * load
            if name == "P12V":
                return 12.0
            return None

    def states(self, spec: SensorSpec) -> int:
        """The asserted state bits of a discrete sensor."""
        with self._lock:
            if spec.sensor_type == SensorType.POWER_SUPPLY:
                psu = spec.entity_instance
                bits = PSU_PRESENT
                if psu in self.state.failed_psus:
                    bits |= PSU_FAILED | PSU_INPUT_LOST
                return bits
            return 0

    def dcmi_reading(self) -> tuple[int, int, int, int]:
        """(current, minimum, maximum, average) watts since the BMC started."""
        with self._lock:
            watts = self.system_power()
            self.min_watts = watts if self.min_watts is None else min(self.min_watts, watts)
            self.max_watts = watts if self.max_watts is None else max(self.max_watts, watts)
            self._watts_total += watts
            self._watts_samples += 1
            average = self._watts_total / self._watts_samples
            return round(watts), round(self.min_watts), round(self.max_watts), round(average)
