"""`rackd run` managing a simulated SNMP PDU: outlet on/off/cycle through the daemon, verified by observed state."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rackd_sim.pdu.agent import PduSpec
from rackd_sim.pdu.model import Op, Timing
from rackd_sim.pdu.simulator import PduSimulator

from rackd.testing.broker import Mosquitto, running_mosquitto
from rackd.testing.processes import DaemonProcess

pytestmark = pytest.mark.integration


@dataclass
class Site:
    simulator: PduSimulator
    daemon: DaemonProcess
    socket: Path

    def outlet(self, number: int) -> bool:
        return self.simulator["pdu1"].pdu.outlets[number].on


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with running_mosquitto() as mosquitto:
        yield mosquitto


def rackd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "rackd", *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


async def wait_for(condition: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    until = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < until, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def status(site: Site) -> list[dict[str, Any]]:
    done = await asyncio.to_thread(rackd, "status", "--socket", str(site.socket), "--json")
    return json.loads(done.stdout) if done.returncode == 0 else []


def pdu_up(rows: list[dict[str, Any]]) -> bool:
    return any(row.get("device") == "pdu1" and row.get("availability") == "up" for row in rows)


@pytest.fixture
async def site(broker: Mosquitto, tmp_path: Path) -> AsyncIterator[Site]:
    simulator = PduSimulator([PduSpec(vendor="apc_rpdu2", outlets=4, timing=Timing(switch=0.1))])
    simulator.start()  # served by this test's event loop while the daemon runs in its own process
    community = tmp_path / "community"
    community.write_text("private\n", encoding="utf-8")
    config = tmp_path / "rackd.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [site]
            name = "lab"
            [daemon]
            state_dir = "{tmp_path}/state"
            control_socket = "{tmp_path}/control.sock"
            shutdown_grace = 3
            [mqtt]
            url = "{broker.url}"
            [defaults]
            poll_interval = 0.5
            call_timeout = 2
            power_timeout = 10
            [actions]
            min_interval = 0
            cycle_off_time = 0.3
            verify_interval = 0.1
            [[pdu]]
            id = "pdu1"
            rack = "r1"
            driver = "snmp"
            host = "127.0.0.1"
            port = {simulator["pdu1"].port}
            timeout = 0.5
            retries = 0
            snmp = {{ version = "2c", community = {{ file = "{community}" }} }}
            """
        ),
        encoding="utf-8",
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    daemon.start()
    the_site = Site(simulator, daemon, tmp_path / "control.sock")
    try:
        until = time.monotonic() + 30
        while not pdu_up(await status(the_site)):
            assert time.monotonic() < until, daemon.log_path.read_text(errors="replace")[-3000:]
            await asyncio.sleep(0.1)
        yield the_site
    finally:
        daemon.cleanup()
        simulator.stop()


async def outlet(site: Site, *args: str) -> tuple[int, dict[str, Any]]:
    done = await asyncio.to_thread(rackd, "outlet", *args, "--socket", str(site.socket), "--json")
    results = json.loads(done.stdout) if done.stdout.strip().startswith("[") else [{"raw": done.stdout + done.stderr}]
    return done.returncode, results[0]


async def test_off_on_and_cycle_through_the_daemon(site: Site) -> None:
    code, result = await outlet(site, "off", "pdu1:3")
    assert code == 0, result
    assert result["status"] == "succeeded"
    assert not site.outlet(3)

    code, result = await outlet(site, "on", "pdu1:3")
    assert code == 0, result
    assert site.outlet(3)

    sets_before = len(site.simulator["pdu1"].pdu.set_log)
    code, result = await outlet(site, "cycle", "pdu1:3")
    assert code == 0, result
    assert result["status"] == "succeeded"
    assert site.outlet(3)
    cycle_sets = [(r.oid, r.value) for r in site.simulator["pdu1"].pdu.set_log[sets_before:]]
    control = "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.3"
    assert cycle_sets == [(control, 2), (control, 1)]  # explicit off then on, never the native reboot (3)


async def test_cycle_of_an_off_outlet(site: Site) -> None:
    code, result = await outlet(site, "off", "pdu1:2")
    assert code == 0, result
    sets_before = len(site.simulator["pdu1"].pdu.set_log)
    code, result = await outlet(site, "cycle", "pdu1:2")
    assert code != 0, result
    assert result["status"] == "rejected"
    assert "target is off" in result["message"]
    assert not site.outlet(2)
    assert len(site.simulator["pdu1"].pdu.set_log) == sets_before  # nothing was sent


async def test_pending_command_is_reported(site: Site) -> None:
    site.simulator["pdu1"].pdu.command(1, Op.OFF, delay=120.0)  # someone scheduled a delayed off at the PDU
    code, result = await outlet(site, "off", "pdu1:1")
    assert code != 0, result
    assert result["status"] == "failed"
    assert "pending" in json.dumps(result)
    assert site.outlet(1)  # nothing stacked on top of the pending command


async def test_pdu_that_stops_answering_mid_cycle(site: Site) -> None:
    pdu = site.simulator["pdu1"].pdu
    pdu.timing.switch = 0.0
    task = asyncio.create_task(outlet(site, "cycle", "pdu1:4"))
    await wait_for(lambda: not pdu.outlets[4].on, "outlet 4 off")
    pdu.faults.silent = True  # the management card hangs between off and on
    code, result = await task
    assert code != 0, result
    assert result["status"] == "failed"
    assert "DeviceTimeoutError" in json.dumps(result) or "no response" in json.dumps(result)
    assert not pdu.outlets[4].on
    pdu.faults.silent = False
