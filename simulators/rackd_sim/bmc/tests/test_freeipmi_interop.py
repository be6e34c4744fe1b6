"""Interop: FreeIPMI (ipmi-sensors, ipmipower, ipmi-sel) against the simulated BMC."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from rackd_sim.bmc.process import BmcProcess

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("ipmi-sensors") is None, reason="freeipmi-tools is not installed"),
]


def freeipmi(tool: str, bmc: BmcProcess, cache: Path, *args: str) -> str:
    ep = bmc.endpoint
    assert ep is not None
    # LAN_2_0 explicitly: FreeIPMI's default driver is IPMI 1.5, which this BMC (like pyghmi's) does not speak.
    command = [tool, "-D", "LAN_2_0", "-h", f"{ep.host}:{ep.port}", "-u", ep.username, "-p", ep.password,
               "--session-timeout", "5000", "--retransmission-timeout", "500"]
    if tool != "ipmipower":
        command += ["--sdr-cache-directory", str(cache)]
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"{tool} {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def test_ipmi_sensors_show_the_simulator_values(shared_sim: BmcProcess, tmp_path: Path) -> None:
    expected = shared_sim.control("readings")["sensors"]
    out = freeipmi("ipmi-sensors", shared_sim, tmp_path, "--comma-separated-output", "--no-header-output",
                   "--quiet-cache")
    rows = {fields[1]: fields for fields in (line.split(",") for line in out.splitlines() if line)}
    assert len(rows) == len(expected)
    for name, value in expected.items():
        _, _, _, reading, _, event = rows[name]
        if name.endswith("Status"):
            assert "Presence detected" in event
        elif value is None:
            assert reading == "N/A"
        else:
            assert float(reading) == pytest.approx(value, abs=0.01), name


def test_ipmipower_stat_off_on(sim: BmcProcess, tmp_path: Path) -> None:
    assert freeipmi("ipmipower", sim, tmp_path, "--stat").strip().endswith(": on")
    assert freeipmi("ipmipower", sim, tmp_path, "--off").strip().endswith(": ok")
    sim.wait_for(lambda s: s["power"] == "off")
    assert freeipmi("ipmipower", sim, tmp_path, "--stat").strip().endswith(": off")
    assert freeipmi("ipmipower", sim, tmp_path, "--on").strip().endswith(": ok")
    sim.wait_for(lambda s: s["power"] == "on")


def test_ipmi_sel_lists_power_and_fault_events(sim: BmcProcess, tmp_path: Path) -> None:
    sim.control("power", action="off")
    sim.wait_for(lambda s: s["sel_entries"] >= 1)
    sim.control("sensor", name="Inlet Temp", value=42)
    out = freeipmi("ipmi-sel", sim, tmp_path, "--comma-separated-output", "--no-header-output")
    assert "System ACPI Power State" in out
    assert "S5/G2" in out
    assert "Inlet Temp" in out
    assert "Upper Critical - going high" in out
