"""net-snmp's snmpget/snmpset/snmpbulkwalk against the simulator: outlet tables behave as on the real device."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rackd_sim.pdu.agent import PduSpec, V3User
from rackd_sim.pdu.tests.conftest import StartSim
from rackd_sim.pdu.tests.netsnmp import netsnmp

pytestmark = pytest.mark.interop


@dataclass(frozen=True)
class Device:
    vendor: str
    state: str  # state column of outlet 3 (MIB constants, written out independently of the simulator)
    on: int
    off: int
    control: str  # control instance of outlet 3
    off_value: int
    on_value: int
    bad_value: int
    on_control: str | None = None  # Eaton switches on through a separate column (a delay; 0 = now)


DEVICES = [
    Device("apc_rpdu2", "1.3.6.1.4.1.318.1.1.26.9.2.3.1.5.3", 2, 1, "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.3", 2, 1, 4),
    Device("raritan_pdu2", "1.3.6.1.4.1.13742.6.4.1.2.1.3.1.3", 7, 8, "1.3.6.1.4.1.13742.6.4.1.2.1.2.1.3", 0, 1, 5),
    Device("sentry4", "1.3.6.1.4.1.1718.4.1.8.3.1.1.1.1.3", 1, 2, "1.3.6.1.4.1.1718.4.1.8.5.1.2.1.1.3", 2, 1, 9),
    Device("eaton_epdu", "1.3.6.1.4.1.534.6.6.7.6.6.1.2.0.3", 1, 0, "1.3.6.1.4.1.534.6.6.7.6.6.1.3.0.3", 0, 0, -7,
           on_control="1.3.6.1.4.1.534.6.6.7.6.6.1.4.0.3"),
]


def _value(output: str) -> int:
    return int(output.strip().rsplit(":", 1)[1])


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.vendor)
async def test_set_on_control_changes_status(start_sim: StartSim, device: Device) -> None:
    sim = start_sim(PduSpec(vendor=device.vendor, outlets=4))
    endpoint = sim["pdu1"].endpoint
    before = await netsnmp("snmpget", "-v2c", "-c", "public", endpoint, device.state)
    assert before.code == 0, before.out
    assert _value(before.out) == device.on

    done = await netsnmp("snmpset", "-v2c", "-c", "private", endpoint, device.control, "i", str(device.off_value))
    assert done.code == 0, done.out
    after = await netsnmp("snmpget", "-v2c", "-c", "public", endpoint, device.state)
    assert _value(after.out) == device.off

    on_control = device.on_control or device.control
    done = await netsnmp("snmpset", "-v2c", "-c", "private", endpoint, on_control, "i", str(device.on_value))
    assert done.code == 0, done.out
    assert _value((await netsnmp("snmpget", "-v2c", "-c", "public", endpoint, device.state)).out) == device.on


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: d.vendor)
async def test_refusals(start_sim: StartSim, device: Device) -> None:
    sim = start_sim(PduSpec(vendor=device.vendor, outlets=4))
    endpoint = sim["pdu1"].endpoint

    wrong = await netsnmp("snmpset", "-v2c", "-c", "private", endpoint, device.control, "i", str(device.bad_value))
    assert wrong.code != 0
    assert "wrongValue" in wrong.out

    read_only = await netsnmp("snmpset", "-v2c", "-c", "public", endpoint, device.control, "i",
                              str(device.off_value))
    assert read_only.code != 0
    assert "noAccess" in read_only.out

    status = await netsnmp("snmpset", "-v2c", "-c", "private", endpoint, device.state, "i", str(device.off))
    assert status.code != 0
    assert "notWritable" in status.out

    wrong_type = await netsnmp("snmpset", "-v2c", "-c", "private", endpoint, device.control, "s", "off")
    assert "wrongType" in wrong_type.out

    assert sim["pdu1"].pdu.set_log == []  # none of these switched anything
    assert all(outlet.on for outlet in sim["pdu1"].pdu.outlets.values())


async def test_bulkwalk_sees_the_whole_outlet_table_and_nothing_beyond(start_sim: StartSim) -> None:
    sim = start_sim(PduSpec(vendor="apc_rpdu2", outlets=24))
    column = "1.3.6.1.4.1.318.1.1.26.9.2.3.1.5"
    walk = await netsnmp("snmpbulkwalk", "-v2c", "-c", "public", "-Cr10", sim["pdu1"].endpoint, column)
    assert walk.code == 0, walk.out
    lines = walk.out.strip().splitlines()
    assert len(lines) == 24
    assert all(line.startswith("iso.3.6.1.4.1.318.1.1.26.9.2.3.1.5.") for line in lines)


async def test_atomic_set_applies_nothing_when_one_varbind_is_bad(start_sim: StartSim) -> None:
    sim = start_sim(PduSpec(vendor="eaton_epdu", outlets=4))
    base = "1.3.6.1.4.1.534.6.6.7.6.6.1.3.0"
    done = await netsnmp("snmpset", "-v2c", "-c", "private", sim["pdu1"].endpoint,
                         f"{base}.1", "i", "0", f"{base}.2", "i", "-5")
    assert "wrongValue" in done.out
    assert f"{base}.2".removeprefix("1.") in done.out  # errorIndex points at the second varbind
    assert all(outlet.on for outlet in sim["pdu1"].pdu.outlets.values())


async def test_v1_and_v3(start_sim: StartSim) -> None:
    sim = start_sim(PduSpec(vendor="sentry4", outlets=2, v3_users=(V3User("ops", "authkey-1", "privkey-1",
                                                                          "SHA-256", "AES"),)))
    endpoint = sim["pdu1"].endpoint
    v1 = await netsnmp("snmpget", "-v1", "-c", "public", endpoint, "1.3.6.1.2.1.1.2.0")
    assert "1.3.6.1.4.1.1718.4" in v1.out.replace("iso.", "1.")
    v3 = await netsnmp("snmpget", "-v3", "-l", "authPriv", "-u", "ops", "-a", "SHA-256", "-A", "authkey-1",
                       "-x", "AES", "-X", "privkey-1", endpoint, "1.3.6.1.2.1.1.2.0")
    assert v3.code == 0, v3.out
    bad = await netsnmp("snmpget", "-v3", "-l", "authPriv", "-u", "ops", "-a", "SHA-256", "-A", "wrong-key",
                        "-x", "AES", "-X", "privkey-1", "-t", "1", "-r", "0", endpoint, "1.3.6.1.2.1.1.2.0")
    assert bad.code != 0
    assert "Authentication failure" in bad.out
