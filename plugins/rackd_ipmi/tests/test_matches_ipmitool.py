"""The driver reads the same values ipmitool shows for the same BMC (sensors and DCMI power)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable

import pytest
from rackd_ipmi.driver import IpmiDriver
from rackd_ipmi.options import IpmiOptions
from rackd_ipmi.sensors import slugify
from rackd_sim.bmc.process import BmcProcess

from rackd.drivers.contract import SessionContext

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("ipmitool") is None, reason="ipmitool is not installed"),
]


def ipmitool(bmc: BmcProcess, *args: str) -> str:
    ep = bmc.endpoint
    assert ep is not None
    result = subprocess.run(
        ["ipmitool", "-I", "lanplus", "-H", ep.host, "-p", str(ep.port), "-U", ep.username, "-P", ep.password,
         *args],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return result.stdout


@pytest.mark.parametrize("load", [0.1, 0.9])
async def test_driver_readings_equal_ipmitool(
    driver: IpmiDriver, sim: BmcProcess, context: SessionContext, options: Callable[..., IpmiOptions], load: float
) -> None:
    sim.control("load", value=load)
    sim.control("sensor", name="Exhaust Temp", value=77)  # over its critical threshold
    table = ipmitool(sim, "sensor", "list")  # full precision values and status
    dcmi = ipmitool(sim, "dcmi", "power", "reading")
    session = await driver.open(context, options(sim))
    try:
        readings = {r.sensor: r for r in await session.read_sensors()}
    finally:
        await session.close()
    compared = 0
    for line in table.splitlines():
        fields = [f.strip() for f in line.split("|")]
        name, value, unit, status = fields[0], fields[1], fields[2], fields[3]
        reading = readings[slugify(name)]
        if unit == "discrete":
            assert reading.value is None
            continue
        if value == "na":
            assert reading.value is None
            continue
        assert reading.value == pytest.approx(float(value), abs=1e-3), name
        expected_health = {"ok": "ok", "nc": "warning", "cr": "critical", "nr": "critical"}[status]
        assert reading.health == expected_health, name
        compared += 1
    assert compared >= 20
    assert readings["exhaust_temp"].health == "critical"
    match = re.search(r"Instantaneous power reading:\s+(\d+) Watts", dcmi)
    assert match is not None
    assert readings["system_power"].value == float(match.group(1))
