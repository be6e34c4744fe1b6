"""Every recorded PDU walk, served by snmpsim, read through `rackd poll`: each expected value, nothing absurd."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rackd_snmp.tests.snmpsim_agent import RECORDINGS, SnmpsimAgent

NAMES = sorted(path.name.removesuffix(".expected.json") for path in RECORDINGS.glob("*.expected.json"))

# A few readings per device pinned to their sensor ids (hand-checked against the MIBs), so ids stay stable.
PINNED: dict[str, dict[str, float]] = {
    "apc_ap8959eu3": {"total_power": 270.0, "total_energy": 1967700.0, "phase1_voltage": 231.0,
                      "phase1_current": 1.3},
    "eatonpdu_2": {"inlet1_l1_current": 14.108, "inlet1_l1_voltage": 118.45, "inlet1_l1_power": 1589.0,
                   "outlet1_current": 0.79, "outlet2_power": 142.0, "outlet1_energy": 785621.0},
    "raritan-pdu_px2": {"inlet1_current": 0.68, "inlet1_voltage": 233.0, "inlet1_frequency": 50.0,
                        "outlet3_current": 0.311, "outlet3_power": 68.0},
    "sentry3": {"inlet1_current": 3.62, "unit2_inlet1_current": 5.02, "unit2_inlet1_voltage": 205.9},
    "sentry4": {"inlet1_l1_current": 5.6, "unit2_inlet1_l3_current": 3.46, "inlet1_power": 1701.0,
                "inlet1_phase3_voltage": 209.4, "unit2_inlet1_frequency": 60.0},
    "vertiv-pdu_mn03edr1": {"inlet1_l2_current": 12.64, "phase1_voltage": 206.8, "breaker4_current": 2.57},
}
SWITCHED = {"apc_ap8959eu3": 24, "eatonpdu_2": 24}

# What a rack PDU can physically report; anything outside is a scale or encoding bug.
BOUNDS: dict[str, tuple[float, float]] = {
    "current": (0.0, 200.0),
    "voltage": (80.0, 500.0),
    "power": (0.0, 100_000.0),
    "apparent_power": (0.0, 100_000.0),
    "power_factor": (0.0, 1.0),
    "energy": (0.0, 1e10),
    "frequency": (45.0, 65.0),
}


def _close(value: float, expected: float) -> bool:
    return math.isclose(value, expected, rel_tol=1e-3, abs_tol=0.006)


def _poll(snmpsim: SnmpsimAgent, name: str, tmp_path: Path) -> dict[str, Any]:
    community = tmp_path / "community"
    community.write_text(name + "\n", encoding="utf-8")
    config = tmp_path / "rackd.toml"
    config.write_text(
        f"""
[site]
name = "lab"
[daemon]
state_dir = "{tmp_path / 'state'}"
[[pdu]]
id = "pdu1"
rack = "r1"
driver = "snmp"
host = "127.0.0.1"
port = {snmpsim.port}
timeout = 2.0
snmp = {{ version = "2c", community = {{ file = "{community}" }} }}
""",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "rackd", "--log-level", "warning", "poll", "-c", str(config), "pdu1", "--json"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert name not in done.stderr  # the community is a secret: never logged
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("name", NAMES)
def test_rackd_poll_reports_every_expected_value(snmpsim: SnmpsimAgent, name: str, tmp_path: Path) -> None:
    expected = json.loads((RECORDINGS / f"{name}.expected.json").read_text(encoding="utf-8"))
    result = _poll(snmpsim, name, tmp_path)
    assert result["ok"], result["error"]
    readings = result["readings"]
    by_sensor = {reading["sensor"]: reading for reading in readings}
    assert len(by_sensor) == len(readings), "duplicate sensor ids"

    unused = [r for r in readings if r["value"] is not None]
    missing = []
    for entry in expected["readings"]:
        match = next(
            (r for r in unused
             if r["kind"] == entry["kind"] and r["unit"] == entry["unit"] and _close(r["value"], entry["value"])),
            None,
        )
        if match is None:
            missing.append(f"{entry['kind']} {entry['value']} {entry['unit']} ({entry['oid']}, {entry['descr']})")
        else:
            unused.remove(match)
    assert not missing, f"{name}: not reported: {missing}"

    for sensor, value in PINNED[name].items():
        assert sensor in by_sensor, f"{name}: no {sensor} in {sorted(by_sensor)}"
        assert _close(by_sensor[sensor]["value"], value), (sensor, by_sensor[sensor]["value"], value)

    absurd = []
    for reading in readings:
        if reading["kind"] == "status":
            assert reading["value"] is None
            assert reading["states"], reading
            continue
        low, high = BOUNDS[reading["kind"]]
        if reading["value"] is not None and not low <= reading["value"] <= high:
            absurd.append(reading)
    assert not absurd, f"{name}: absurd readings: {absurd}"

    assert len(result["power"]) == SWITCHED.get(name, 0)
    assert result["inventory"]["extra"]["profile"]
