"""The `rackd` command line, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

GOOD = """
[site]
name = "lab"
[daemon]
state_dir = "{state}"
[[node]]
id = "gpu-01"
rack = "r1"
bmc = {{ driver = "fake", host = "gpu-01", power = "off" }}
"""


def rackd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rackd", *args], capture_output=True, text=True, timeout=60, check=False
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rackd.toml"
    path.write_text(textwrap.dedent(text).format(state=tmp_path / "state"))
    return path


def test_version() -> None:
    result = rackd("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("rackd ")


def test_check_config_ok(tmp_path: Path) -> None:
    result = rackd("check-config", "-c", str(write(tmp_path, GOOD)))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "1 node" in result.stdout


def test_check_config_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    bad = GOOD.replace('power = "off"', 'power = "sideways", colour = "red"')
    path = write(tmp_path, bad)
    result = rackd("check-config", "-c", str(path))
    assert result.returncode == 1
    assert f"{path}: node[0].bmc.power:" in result.stderr
    assert f"{path}: node[0].bmc.colour: unknown key" in result.stderr
    assert "2 error(s)" in result.stderr


def test_check_config_missing_file(tmp_path: Path) -> None:
    result = rackd("check-config", "-c", str(tmp_path / "absent.toml"))
    assert result.returncode == 1
    assert "no such file" in result.stderr


def test_drivers_lists_the_fake_driver_with_capabilities() -> None:
    result = rackd("drivers", "--json")
    assert result.returncode == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["fake"]["capabilities"] == ["event_log", "inventory", "power", "sensors"]
    assert rows["fake"]["target"] == "rackd.testing.fake_driver:FakeDriver"


def test_poll_reads_one_device_without_daemon_or_broker(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = rackd("poll", "-c", str(path), "gpu-01", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["power"] == {"chassis": "off"}
    assert {r["sensor"] for r in report["readings"]} == {"inlet_temp", "system_power"}
    table = rackd("poll", "-c", str(path), "gpu-01")
    assert "power chassis: off" in table.stdout
    assert "inlet_temp" in table.stdout


def test_poll_reports_a_device_fault(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('power = "off"', 'fault = "unreachable"'))
    result = rackd("poll", "-c", str(path), "gpu-01", "--json")
    assert result.returncode == 1
    assert "DeviceUnreachableError" in json.loads(result.stdout)["error"]


def test_poll_unknown_device(tmp_path: Path) -> None:
    result = rackd("poll", "-c", str(write(tmp_path, GOOD)), "gpu-99")
    assert result.returncode == 1
    assert "no device 'gpu-99'" in result.stderr
    assert "gpu-01" in result.stderr
