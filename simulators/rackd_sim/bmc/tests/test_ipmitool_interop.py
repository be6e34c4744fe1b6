"""Interop: ipmitool -I lanplus against the simulated BMC shows the values the simulator holds."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import IO, Any

import pytest
from rackd_sim.bmc.process import BmcProcess

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("ipmitool") is None, reason="ipmitool is not installed"),
]


def ipmitool(bmc: BmcProcess, *args: str, password: str | None = None, suite: str | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    ep = bmc.endpoint
    assert ep is not None
    command = ["ipmitool", "-I", "lanplus", "-H", ep.host, "-p", str(ep.port), "-U", ep.username,
               "-P", password if password is not None else ep.password, "-R", "2", "-N", "1"]
    if suite is not None:
        command += ["-C", suite]
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"ipmitool {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result


def leading_number(text: str) -> float | None:
    match = re.match(r"\s*(-?\d+(?:\.\d+)?)", text)
    return float(match.group(1)) if match else None


def test_power_status_off_on_cycle(sim: BmcProcess) -> None:
    assert "Chassis Power is on" in ipmitool(sim, "power", "status").stdout
    ipmitool(sim, "power", "off")
    sim.wait_for(lambda s: s["power"] == "off")
    assert "Chassis Power is off" in ipmitool(sim, "power", "status").stdout
    refused = ipmitool(sim, "power", "cycle", check=False)
    assert "not supported in present state" in refused.stdout + refused.stderr
    ipmitool(sim, "power", "on")
    sim.wait_for(lambda s: s["power"] == "on")
    assert "Chassis Power is on" in ipmitool(sim, "power", "status").stdout
    ipmitool(sim, "power", "cycle")
    sim.wait_for(lambda s: s["power"] == "off")
    sim.wait_for(lambda s: s["power"] == "on")


def test_sdr_elist_shows_the_simulator_values(shared_sim: BmcProcess) -> None:
    expected = shared_sim.control("readings")["sensors"]
    lines = ipmitool(shared_sim, "sdr", "elist").stdout.splitlines()
    shown = {}
    for line in lines:
        fields = [f.strip() for f in line.split("|")]
        shown[fields[0]] = fields[4]
    assert len(shown) == len(expected)
    for name, value in expected.items():
        text = shown[name[:16]]
        if name.endswith("Status"):
            assert "Presence detected" in text
        elif value is None:
            assert "No Reading" in text
        else:
            assert leading_number(text) == pytest.approx(value, abs=0.01), name


def test_sdr_elist_shows_threshold_state(sim: BmcProcess) -> None:
    sim.control("sensor", name="GPU3 Temp", value=92)
    line = next(line for line in ipmitool(sim, "sdr", "elist").stdout.splitlines() if line.startswith("GPU3 Temp"))
    assert "| ucr |" in line
    assert "92 degrees C" in line


def test_sel_list_shows_power_and_fault_events(sim: BmcProcess) -> None:
    ipmitool(sim, "power", "off")
    sim.wait_for(lambda s: s["sel_entries"] >= 1)
    sim.control("psu", psu=2, failed=True)
    text = ipmitool(sim, "sel", "list").stdout
    assert "System ACPI Power State" in text
    assert "S5/G2: soft-off" in text
    assert "Power Supply" in text
    assert "Failure detected" in text


def test_fru_print(shared_sim: BmcProcess) -> None:
    text = ipmitool(shared_sim, "fru", "print", "0").stdout
    assert "Product Name          : GPU Server G8" in text
    assert "Product Serial        : SIM0000001" in text


def test_dcmi_power_reading_equals_simulator(shared_sim: BmcProcess) -> None:
    expected = shared_sim.control("readings")["system_power"]
    text = ipmitool(shared_sim, "dcmi", "power", "reading").stdout
    match = re.search(r"Instantaneous power reading:\s+(\d+) Watts", text)
    assert match is not None, text
    assert int(match.group(1)) == expected


@pytest.mark.parametrize("suite", ["3", "17"])
def test_cipher_suites_3_and_17(shared_sim: BmcProcess, suite: str) -> None:
    assert "Chassis Power is" in ipmitool(shared_sim, "power", "status", suite=suite).stdout


def test_wrong_password_is_refused(shared_sim: BmcProcess) -> None:
    result = ipmitool(shared_sim, "power", "status", password="not-the-password", check=False)
    assert result.returncode != 0


def test_session_limit_refuses_the_fifth_session(sim: BmcProcess) -> None:
    ep = sim.endpoint
    assert ep is not None
    shells = [
        subprocess.Popen(
            ["ipmitool", "-I", "lanplus", "-H", ep.host, "-p", str(ep.port), "-U", ep.username, "-P", ep.password,
             "shell"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )
        for _ in range(4)
    ]
    try:
        for shell in shells:
            assert shell.stdin is not None
            shell.stdin.write("power status\n")
            shell.stdin.flush()
        sim.wait_for(lambda s: s["established_sessions"] == 4)
        refused = ipmitool(sim, "power", "status", check=False)
        assert refused.returncode != 0
        assert "insufficient resources" in (refused.stdout + refused.stderr).lower()
    finally:
        for shell in shells:
            assert shell.stdin is not None
            shell.stdin.write("exit\n")
            shell.stdin.close()
        for shell in shells:
            try:
                shell.wait(timeout=10)
            except subprocess.TimeoutExpired:
                shell.kill()
                shell.wait()
    sim.wait_for(lambda s: s["open_sessions"] == 0)
    assert "Chassis Power is" in ipmitool(sim, "power", "status").stdout


def test_cipher_suite_17_refused_by_a_suite_3_only_bmc(tmp_path: pytest.TempPathFactory) -> None:
    with BmcProcess("--cipher-suites", "3") as bmc:
        assert "Chassis Power is" in ipmitool(bmc, "power", "status", suite="3").stdout
        started = time.monotonic()
        refused = ipmitool(bmc, "power", "status", suite="17", check=False)
        assert refused.returncode != 0
        assert time.monotonic() - started < 30  # a clean error, not a hang to the tool's own timeout


def test_sol_activate_carries_console_both_ways(sim: BmcProcess) -> None:
    ep = sim.endpoint
    assert ep is not None
    proc = subprocess.Popen(
        ["ipmitool", "-I", "lanplus", "-H", ep.host, "-p", str(ep.port), "-U", ep.username, "-P", ep.password,
         "sol", "activate"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        wait_console(sim, lambda c: c["sol_active"])
        proc.stdin.write(b"hello\r")
        proc.stdin.flush()
        wait_console(sim, lambda c: "hello" in c["typed"])
        sim.control("console", text="BOOT-BANNER-XYZ\r\n")
        output = read_until(proc.stdout, b"BOOT-BANNER-XYZ", timeout=10)
        assert b"BOOT-BANNER-XYZ" in output
        proc.stdin.write(b"~.")
        proc.stdin.flush()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    wait_console(sim, lambda c: not c["sol_active"])


def wait_console(sim: BmcProcess, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate(sim.control("console")):
        assert time.monotonic() < deadline, "console condition not met"
        time.sleep(0.02)


def read_until(stream: IO[bytes], marker: bytes, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while marker not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                break
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            data += chunk
    return data
