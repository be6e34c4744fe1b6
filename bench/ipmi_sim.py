"""Fleets of OpenIPMI `ipmi_sim` BMCs (~4 MB each): 24 analog sensors, no DCMI; for fleets too large for pyghmi sims."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SENSORS = 24
USER, PASSWORD = "admin", "bench-pass"

_SDR_HEAD = """sdr type 18
\tdevice_slave_address\t0x20
\tdevice_channel_number\t0
\tchassis\t\t\ttrue
\tipmb_event_gen\t\tfalse
\tipmb_event_recv\t\tfalse
\tfru_inventory\t\tfalse
\tsel\t\t\ttrue
\tsdr\t\t\ttrue
\tsensor\t\t\ttrue
\tentity_id\t\tsystem_board
\tentity_instance\t\t1
\tid_string\t\t"bench bmc"
endsdr
"""

_SDR_SENSOR = """sdr type 1
\tsensor_owner_id\t\t0x20
\tsensor_owner_lun\t0
\tchannel_number\t\t0
\tsensor_number\t\t{number}
\tentity_id\t\tsystem_board
\tentity_instance\t\t1
\tsensor_type\t\tTemperature
\tinit_scanning\t\ttrue
\tinit_sensor_type\ttrue
\tdefault_sensor_scan_on\ttrue
\tevent_reading_type_code\t1
\tanalog_data_format\tunsigned
\trate_unit\t\tnone
\tmodifier_unit\t\tnone
\tpercentage\t\tfalse
\tbase_unit\t\tdegrees_C
\tmodifier_unit_code\tunspecified
\tlinearization\t\tlinear
\tm\t\t\t1
\ttolerance\t\t0
\tb\t\t\t0
\taccuracy\t\t1
\taccuracy_exp\t\t0
\tsensor_direction\tinput
\tr_exp\t\t\t0
\tb_exp\t\t\t0
\tsensor_maximum\t\t255
\tsensor_minimum\t\t0
\tid_string\t\t"Temp {number}"
endsdr
"""

_LAN_CONF = """name "{name}"
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
user 2 true "{user}" "{password}" admin 10 none md2 md5 straight
"""


@dataclass(frozen=True)
class SimBmc:
    """One running ipmi_sim."""

    host: str
    port: int
    process: subprocess.Popen[bytes]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _emu() -> str:
    lines = ["mc_setbmc 0x20", "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr",
             "sel_enable 0x20 1000 0x0a"]  # fmt: skip
    for number in range(1, SENSORS + 1):
        lines += [f"sensor_add 0x20 0 {number} 0x01 0x01", f"sensor_set_value 0x20 0 {number} {20 + number} 0"]
    lines.append("mc_enable 0x20")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def ipmi_sim_fleet(count: int, workdir: Path) -> Iterator[list[SimBmc]]:
    """`count` ipmi_sim processes on free loopback ports, stopped by PID afterwards."""
    base = workdir / "ipmi_sim"
    base.mkdir(parents=True, exist_ok=True)
    sdrs = base / "bench.sdrs"
    sdrs.write_text(_SDR_HEAD + "".join(_SDR_SENSOR.format(number=n) for n in range(1, SENSORS + 1)), "utf-8")
    compiled = base / "bench.bsdr"
    subprocess.run(["sdrcomp", "-8", "-o", str(compiled), str(sdrs)], check=True, capture_output=True)
    emu = base / "bench.emu"
    emu.write_text(_emu(), encoding="utf-8")
    fleet: list[SimBmc] = []
    try:
        for index in range(count):
            name = f"bmc{index}"
            port = _free_udp_port()
            state = base / name
            (state / "ipmi_sim" / name).mkdir(parents=True)
            shutil.copy(compiled, state / "ipmi_sim" / name / "sdr.20.main")
            conf = state / "lan.conf"
            conf.write_text(_LAN_CONF.format(name=name, port=port, user=USER, password=PASSWORD), encoding="utf-8")
            process = subprocess.Popen(
                ["ipmi_sim", "-c", str(conf), "-f", str(emu), "-s", str(state), "-n"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            fleet.append(SimBmc("127.0.0.1", port, process))
        time.sleep(1.0)  # ipmi_sim binds at once; a moment for the last ones to read their files
        dead = [bmc for bmc in fleet if bmc.process.poll() is not None]
        if dead:
            raise RuntimeError(f"{len(dead)} of {count} ipmi_sim processes exited at start")
        yield fleet
    finally:
        for bmc in fleet:
            if bmc.process.poll() is None:
                bmc.process.send_signal(signal.SIGTERM)
        for bmc in fleet:
            try:
                bmc.process.wait(5)
            except subprocess.TimeoutExpired:
                bmc.process.kill()
                bmc.process.wait()
