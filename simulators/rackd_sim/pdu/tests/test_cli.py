"""`rackd sim pdu` as a process: one JSON ready line naming endpoints and credentials; stopped by its PID."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from rackd_sim.pdu.tests.netsnmp import netsnmp


@pytest.fixture
def sim_process() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "rackd", "sim", "pdu", "--vendor", "raritan_pdu2", "--vendor", "apc_rpdu2",
         "--outlets", "4", "--switch-delay", "0", "--v3-user", "ops:authkey-1:privkey-1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


async def test_ready_line_and_clean_stop(sim_process: subprocess.Popen[str]) -> None:
    assert sim_process.stdout is not None
    line = sim_process.stdout.readline()  # blocks until ready; pytest-timeout bounds it
    ready = json.loads(line)
    assert ready["simulator"] == "pdu"
    assert [pdu["vendor"] for pdu in ready["pdus"]] == ["raritan_pdu2", "apc_rpdu2"]
    first = ready["pdus"][0]
    assert first["host"] == "127.0.0.1"
    assert first["port"] > 0
    assert first["communities"] == {"read": "public", "write": "private"}
    assert first["v3_users"][0]["user"] == "ops"
    got = await netsnmp("snmpget", "-v2c", "-c", first["communities"]["read"], "-Oqv", first["endpoint"],
                        "1.3.6.1.2.1.1.2.0")
    assert "13742.6" in got.out
    sim_process.send_signal(signal.SIGTERM)
    assert sim_process.wait(20) == 0
