"""Unit tests of the simulator's SDR, SEL, FRU encodings and the server state machine (no network)."""

from __future__ import annotations

import struct

import pytest
from rackd_sim.bmc.catalog import build_catalog
from rackd_sim.bmc.fru import FruInfo, fru_image
from rackd_sim.bmc.machine import COMPLETION_NOT_IN_PRESENT_STATE, ChassisControl, ServerMachine, Timing
from rackd_sim.bmc.sdr import SensorSpec, SensorType, Thresholds, Unit, full_record, reading_reply
from rackd_sim.bmc.sel import EventLog, event_record


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_linear_conversion_round_trips_through_raw() -> None:
    spec = SensorSpec(1, "P12V", SensorType.VOLTAGE, 7, unit=Unit.VOLTS, m=6, r_exp=-2)
    assert spec.to_raw(12.0) == 200
    assert spec.from_raw(200) == pytest.approx(12.0)
    assert spec.quantize(12.02) == pytest.approx(12.0)


def test_threshold_status_bits() -> None:
    spec = SensorSpec(1, "T", SensorType.TEMPERATURE, 1, unit=Unit.CELSIUS, thresholds=Thresholds(unc=80, uc=90))
    assert reading_reply(spec, 50)[2] == 0
    assert reading_reply(spec, 85)[2] == 0b1000
    assert reading_reply(spec, 95)[2] == 0b11000
    assert reading_reply(spec, None)[1] & 0x20  # reading unavailable


def test_full_record_layout() -> None:
    spec = build_catalog()[0]
    record = full_record(1, spec)
    assert record[2] == 0x51
    assert record[3] == 0x01
    assert record[4] == len(record) - 5
    assert record[47] & 0xC0 == 0xC0  # 8-bit ASCII id string
    assert record[48:].decode() == "Inlet Temp"


def test_catalog_names_fit_the_sdr_and_are_unique() -> None:
    names = [spec.name for spec in build_catalog()]
    assert len(names) == len(set(names))
    assert all(len(name) <= 16 for name in names)
    assert sum(name.startswith("GPU") for name in names) == 8


def test_fru_areas_have_zero_checksums() -> None:
    image = fru_image(FruInfo())
    assert sum(image[:8]) % 256 == 0
    for offset_index in (2, 3, 4):
        start = image[offset_index] * 8
        length = image[start + 1] * 8
        assert sum(image[start : start + length]) % 256 == 0


def test_sel_wraps_and_clear_restarts_ids() -> None:
    log = EventLog(capacity=3, wrap=True)
    ids = [log.add(event_record(0, 1, 1, 1, 9)) for _ in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert [r.record_id for r in log.records()] == [3, 4, 5]
    assert log.info()[13] & 0x80  # overflow flag
    log.clear()
    assert log.records() == []
    assert log.add(event_record(0, 1, 1, 1, 9)) == 1
    following, data = log.entry(0) or (0, b"")
    assert following == 0xFFFF
    assert struct.unpack_from("<H", data)[0] == 1


def test_power_state_machine_with_delays_and_0xd5_while_off() -> None:
    clock = ManualClock()
    machine = ServerMachine(Timing(power_on=2.0, power_off=0.5, boot=10.0, shutdown=3.0, cycle_off=1.0),
                            powered=False, clock=clock)
    assert machine.control(ChassisControl.CYCLE) == COMPLETION_NOT_IN_PRESENT_STATE
    assert machine.control(ChassisControl.RESET) == COMPLETION_NOT_IN_PRESENT_STATE
    assert machine.control(ChassisControl.ON) == 0
    assert machine.power_state() == "off"
    clock.now += 2.0
    assert machine.power_state() == "on"
    assert not machine.os_up()
    # soft-off is ignored until the OS is up to act on it
    machine.control(ChassisControl.SOFT_OFF)
    clock.now += 5.0
    assert machine.power_state() == "on"
    clock.now += 5.0
    assert machine.os_up()
    machine.control(ChassisControl.SOFT_OFF)
    clock.now += 3.0
    assert machine.power_state() == "off"


def test_sensor_values_follow_power_and_load() -> None:
    clock = ManualClock()
    machine = ServerMachine(powered=True, clock=clock)
    gpu = machine.spec_named("GPU1 Temp")
    machine.set_load(0.0)
    idle = machine.value(gpu)
    idle_power = machine.system_power()
    machine.set_load(1.0)
    assert (machine.value(gpu) or 0) > (idle or 0)
    assert machine.system_power() > idle_power
    machine.control(ChassisControl.OFF)
    clock.now += 10
    assert machine.value(gpu) is None
    assert machine.system_power() < idle_power


def test_threshold_crossing_and_psu_failure_are_logged() -> None:
    machine = ServerMachine(powered=True)
    machine.set_sensor("GPU3 Temp", 92.0)
    machine.fail_psu(2)
    records = machine.sel.records()
    assert len(records) >= 3  # UNC and UC going high, PSU failure
    assert records[-1].data[10] == SensorType.POWER_SUPPLY
    psu2 = machine.spec_named("PSU2 Input Power")
    assert machine.value(psu2) == 0.0
