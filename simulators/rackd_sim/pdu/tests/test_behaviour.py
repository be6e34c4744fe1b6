"""Vendor behaviour of the simulated PDU: delayed commands, native reboots, power-up states, meters, faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from rackd_sim.pdu.agent import PduAgent, PduSpec
from rackd_sim.pdu.model import Op, PowerOn, Timing
from rackd_sim.pdu.tests.conftest import StartSim
from rackd_sim.pdu.tests.netsnmp import netsnmp

RECORDINGS = Path(__file__).parents[4] / "plugins" / "rackd_snmp" / "tests" / "data" / "recordings"


async def wait_for(condition: Callable[[], bool], deadline: float = 5.0) -> None:
    until = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < until, "condition not met before the deadline"
        await asyncio.sleep(0.01)


async def test_delayed_command_is_pending_until_it_acts(start_sim: StartSim) -> None:
    sim = start_sim(PduSpec(vendor="apc_rpdu2", outlets=2, timing=Timing(delayed=0.2)))
    pdu = sim["pdu1"].pdu
    endpoint = sim["pdu1"].endpoint
    done = await netsnmp("snmpset", "-v2c", "-c", "private", endpoint, "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.1", "i", "6")
    assert done.code == 0, done.out
    pending = await netsnmp("snmpget", "-v2c", "-c", "public", endpoint, "1.3.6.1.4.1.318.1.1.26.9.2.3.1.6.1")
    assert pending.out.strip().endswith("INTEGER: 1")  # commandPending
    assert pdu.outlets[1].on
    await wait_for(lambda: not pdu.outlets[1].on)
    assert pdu.outlets[1].pending is None


async def test_cancel_pending_command(start_sim: StartSim) -> None:
    sim = start_sim(PduSpec(vendor="eaton_epdu", outlets=2))
    pdu = sim["pdu1"].pdu
    endpoint = sim["pdu1"].endpoint
    off = "1.3.6.1.4.1.534.6.6.7.6.6.1.3.0.2"
    assert (await netsnmp("snmpset", "-v2c", "-c", "private", endpoint, off, "i", "30")).code == 0
    status = await netsnmp("snmpget", "-v2c", "-c", "public", endpoint, "1.3.6.1.4.1.534.6.6.7.6.6.1.2.0.2")
    assert status.out.strip().endswith("INTEGER: 2")  # pendingOff
    assert (await netsnmp("snmpset", "-v2c", "-c", "private", endpoint, off, "i", "-1")).code == 0
    assert pdu.outlets[2].pending is None
    assert pdu.outlets[2].on


async def test_native_reboot_of_an_off_outlet_differs_per_vendor(start_sim: StartSim) -> None:
    sim = start_sim(
        PduSpec(name="apc", vendor="apc_rpdu2", outlets=1, timing=Timing(reboot_off=0.05)),
        PduSpec(name="eaton", vendor="eaton_epdu", outlets=1, timing=Timing(reboot_off=0.05)),
    )
    for name in ("apc", "eaton"):
        sim[name].pdu.command(1, Op.OFF)
        sim[name].pdu.command(1, Op.REBOOT)
    await wait_for(lambda: sim["eaton"].pdu.outlets[1].on)  # Eaton: off outlet comes on after the off-time
    assert not sim["apc"].pdu.outlets[1].on  # APC: a reboot leaves an off outlet off
    assert sim["apc"].pdu.outlets[1].pending is None


async def test_pdu_power_cycle_restores_outlets_per_power_on_setting(start_sim: StartSim) -> None:
    sim = start_sim(PduSpec(vendor="raritan_pdu2", outlets=3, timing=Timing(boot=0.05)))
    pdu = sim["pdu1"].pdu
    pdu.outlets[1].power_on = PowerOn.OFF
    pdu.outlets[2].power_on = PowerOn.ON
    pdu.outlets[3].power_on = PowerOn.LAST
    pdu.command(2, Op.OFF)
    pdu.power_cycle()
    assert not pdu.answers()
    await wait_for(pdu.answers)
    assert [pdu.outlets[n].on for n in (1, 2, 3)] == [False, True, True]


async def test_loads_drive_meters(start_sim: StartSim) -> None:
    sim = start_sim(PduSpec(vendor="sentry4", outlets=2, load_w=0.0))
    pdu = sim["pdu1"].pdu
    pdu.set_load(1, 460.0)
    endpoint = sim["pdu1"].endpoint
    base = "1.3.6.1.4.1.1718.4.1.8.3.1"
    got = await netsnmp("snmpget", "-v2c", "-c", "public", "-Oqv", endpoint, f"{base}.3.1.1.1", f"{base}.7.1.1.1",
                        f"{base}.7.1.1.2")
    assert got.out.split() == ["200", "460", "0"]  # 2.00 A at 230 V, 460 W, nothing on outlet 2
    pdu.command(1, Op.OFF)
    got = await netsnmp("snmpget", "-v2c", "-c", "public", "-Oqv", endpoint, f"{base}.7.1.1.1")
    assert got.out.split() == ["0"]


async def test_silent_pdu_times_out_and_wrong_values_fault(start_sim: StartSim) -> None:
    sim = start_sim(PduSpec(vendor="eaton_epdu", outlets=2))
    endpoint = sim["pdu1"].endpoint
    current = "1.3.6.1.4.1.534.6.6.7.6.4.1.3.0.1"
    sim["pdu1"].pdu.faults.wrong_values = True
    got = await netsnmp("snmpget", "-v2c", "-c", "public", endpoint, current)
    assert 'STRING: "ERR"' in got.out
    sim["pdu1"].pdu.faults.silent = True
    got = await netsnmp("snmpget", "-v2c", "-c", "public", "-t", "0.3", "-r", "0", endpoint, current)
    assert got.code != 0
    assert "Timeout" in got.out


def test_seeded_from_a_recording_keeps_its_values_and_names() -> None:
    agent = PduAgent(PduSpec(recording=RECORDINGS / "eatonpdu_2.snmprec"))
    assert agent.vendor.name == "eaton_epdu"
    assert len(agent.pdu.outlets) == 24
    assert agent.pdu.outlets[1].name == "Power strip + s-rw-lab-rack"
    recorded_voltage = (1, 3, 6, 1, 4, 1, 534, 6, 6, 7, 3, 2, 1, 3, 0, 1, 1)
    assert int(agent.controller.store.values[recorded_voltage]) == 118450
