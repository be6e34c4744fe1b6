"""The driver against OpenIPMI's ipmi_sim, an independent BMC implementation: power, sensors, SEL."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rackd_ipmi.driver import IpmiDriver
from rackd_ipmi.options import IpmiOptions
from rackd_sim.bmc.catalog import build_catalog
from rackd_sim.bmc.sdr import record_for

from rackd.drivers.contract import SessionContext
from rackd.model import Health, PowerAction, PowerState, SensorKind

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("ipmi_sim") is None, reason="openipmi (ipmi_sim) is not installed"),
]

USER, PASSWORD = "admin", "ipmi-sim-pw"
# A few of the GPU server's sensors, with the SDR records our own simulator serves (ipmi_sim only stores them).
SENSORS = ("Inlet Temp", "GPU3 Temp", "Fan1", "PSU1 Input Power", "PSU2 Input Power", "PSU1 Status")
RAW_VALUES = {"Inlet Temp": 25, "GPU3 Temp": 92, "Fan1": 95, "PSU1 Input Power": 100, "PSU2 Input Power": 90}

CHASSIS_SCRIPT = """#!/bin/sh
# ipmi_sim chassis_control: $1 = MC, $2 = get|set, then parameter names (and values for set).
state="$(dirname "$0")/power.state"
[ -f "$state" ] || echo 1 > "$state"
case "$2" in
  get) shift 2; for p in "$@"; do [ "$p" = power ] && echo "power:$(cat "$state")"; done ;;
  set) shift 2; while [ $# -ge 2 ]; do [ "$1" = power ] && echo "$2" > "$state"; shift 2; done ;;
esac
"""


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class IpmiSim:
    port: int
    console_port: int
    proc: subprocess.Popen[bytes]

    def command(self, line: str) -> str:
        with socket.create_connection(("127.0.0.1", self.console_port), timeout=5) as conn:
            conn.sendall(line.encode() + b"\n")
            conn.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := conn.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")


def write_config(root: Path, port: int, console_port: int) -> tuple[Path, Path]:
    script = root / "chassis_control"
    script.write_text(CHASSIS_SCRIPT, encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    lan = root / "lan.conf"
    lan.write_text(
        f"""name "rackdsim"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{script} 0x20"
  user 2 true "{USER}" "{PASSWORD}" admin 10 none md2 md5 straight
console 127.0.0.1 {console_port}
""",
        encoding="utf-8",
    )
    specs = [spec for spec in build_catalog() if spec.name in SENSORS]
    lines = ["mc_setbmc 0x20", "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02", "sel_enable 0x20 1000 0x0a"]
    for record_id, spec in enumerate(specs, start=1):
        reading_type = 0x6F if spec.discrete else 0x01
        lines.append(f"sensor_add 0x20 0 {spec.number} {int(spec.sensor_type):#04x} {reading_type:#04x}")
        if spec.discrete:
            lines.append(f"sensor_set_bit_clr_rest 0x20 0 {spec.number} 0 1")
            lines.append(f"sensor_set_event_support 0x20 0 {spec.number} enable scanning per-state "
                         "000000000000011 000000000000011 000000000000011 000000000000011")
        else:
            t = spec.thresholds
            assert t is not None
            upper = [spec.to_raw(v) if v is not None else 0 for v in (t.unr, t.uc, t.unc)]
            mask = "".join("1" if v is not None else "0" for v in (t.unr, t.uc, t.unc, t.lnr, t.lc, t.lnc))
            lower = [spec.to_raw(v) if v is not None else 0 for v in (t.lnr, t.lc, t.lnc)]
            lines.append(
                f"sensor_set_threshold 0x20 0 {spec.number} settable {mask} "
                + " ".join(f"{v:#04x}" for v in upper + lower)
            )
            lines.append(f"sensor_set_event_support 0x20 0 {spec.number} enable scanning per-state "
                         "000111111000000 000111111000000 000111111000000 000111111000000")
            lines.append(f"sensor_set_value 0x20 0 {spec.number} {RAW_VALUES[spec.name]:#04x} 0")
        record = record_for(record_id, spec)
        lines.append("main_sdr_add 0x20 " + " ".join(f"{b:#04x}" for b in record))
    lines.append("mc_enable 0x20")
    emu = root / "rackd.emu"
    emu.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lan, emu


@pytest.fixture
def ipmi_sim(tmp_path: Path) -> Iterator[IpmiSim]:
    port, console_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    lan, emu = write_config(tmp_path, port, console_port)
    state = tmp_path / "ipmi_sim-state"
    state.mkdir()
    log = (tmp_path / "ipmi_sim.log").open("wb")
    proc = subprocess.Popen(
        ["ipmi_sim", "-c", str(lan), "-f", str(emu), "-s", str(state), "-n"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    sim = IpmiSim(port, console_port, proc)
    try:
        wait_until_answering(port, proc)
        yield sim
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


# RMCP header (class ASF) + ASF presence ping (IANA 4542, type 0x80, tag 1)
RMCP_PING = bytes([0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x80, 0x01, 0x00, 0x00])


def wait_until_answering(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Ready when the LAN channel answers an RMCP presence ping (its console opens earlier than its LAN)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                sock.sendto(RMCP_PING, ("127.0.0.1", port))
                sock.recvfrom(512)
            except OSError:  # timeout, or ICMP port unreachable while it is still starting
                continue
            return
    raise RuntimeError("ipmi_sim did not start answering")


def options_for(sim: IpmiSim) -> IpmiOptions:
    return IpmiOptions.model_validate({"host": "127.0.0.1", "port": sim.port, "username": USER, "password": PASSWORD})


async def test_power_sensors_and_sel_against_ipmi_sim(
    driver: IpmiDriver, ipmi_sim: IpmiSim, context: SessionContext
) -> None:
    session = await driver.open(context, options_for(ipmi_sim))
    try:
        assert session.negotiated_suite == 3  # ipmi_sim has no SHA-256: pyghmi fell back from 17 by itself
        assert await session.get_power("chassis") is PowerState.ON
        await session.set_power("chassis", PowerAction.OFF)
        assert await session.get_power("chassis") is PowerState.OFF
        await session.set_power("chassis", PowerAction.ON)
        assert await session.get_power("chassis") is PowerState.ON

        readings = {r.sensor: r for r in await session.read_sensors()}
        assert readings["inlet_temp"].value == 25.0
        assert readings["inlet_temp"].health is Health.OK
        assert readings["gpu3_temp"].value == 92.0
        assert readings["gpu3_temp"].health is Health.CRITICAL
        assert readings["fan1"].value == 95 * 60
        assert readings["fan1"].kind is SensorKind.FAN
        assert readings["psu1_input_power"].value == 100 * 14
        # ipmi_sim has no DCMI: system_power is the sum of the PSU input power sensors
        assert readings["system_power"].value == (100 + 90) * 14
        assert readings["psu1_status"].kind is SensorKind.STATUS

        start = await session.read_log(None)
        assert start.entries == ()
        # a PSU failure record (sensor type 08h, sensor 24, sensor-specific, offset 1) added through the console
        ipmi_sim.command("sel_add 0x20 0x02 0x00 0x00 0x00 0x00 0x20 0x00 0x04 0x08 0x18 0x6f 0x01 0xff 0xff")
        batch = await session.read_log(start.cursor)
        assert len(batch.entries) == 1
        assert batch.entries[0].data.get("component_type") == "Power Supply"
        assert not batch.log_reset
    finally:
        await session.close()
