"""A node whose console is `ipmi-sol`: the daemon's console service streams Serial-over-LAN from the BMC simulator
through the IPMI driver, logs it, raises pattern events, and borrows the poller's BMC session."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from rackd_sim.bmc.process import BmcProcess

from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess, wait_until
from rackd.testing.watcher import MqttWatcher

pytestmark = pytest.mark.integration


async def test_ipmi_sol_console_is_logged_and_matched(broker: Mosquitto, tmp_path: Path) -> None:
    bmc = BmcProcess("--power-on-delay", "0.2", "--boot-delay", "0.3", log_path=tmp_path / "bmc.log")
    endpoint = bmc.start()
    (tmp_path / "bmc.pw").write_text(endpoint.password + "\n")
    table = (
        f'{{ driver = "ipmi", host = "127.0.0.1", port = {endpoint.port}, username = "{endpoint.username}", '
        f'password = {{ file = "{tmp_path}/bmc.pw" }} }}'
    )
    config = tmp_path / "rackd.toml"
    config.write_text(
        textwrap.dedent(f"""
        [site]
        name = "lab"
        [daemon]
        state_dir = "{tmp_path}/state"
        control_socket = "{tmp_path}/control.sock"
        console_log_dir = "{tmp_path}/console"
        [mqtt]
        url = "{broker.url}"
        [defaults]
        poll_interval = 1
        [[node]]
        id = "gpu-01"
        rack = "r1"
        console = {{ url = "ipmi-sol" }}
        bmc = {table}
    """)
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    daemon.start()
    log = tmp_path / "console" / "gpu-01.log"
    try:
        async with MqttWatcher(broker.port, "rackd/v1/lab/r1/gpu-01/#") as watcher:
            wait_until(lambda: bmc.status().get("open_sessions", 0) >= 1, "the daemon logged in")
            await watcher.wait_for(lambda m: m.topic.endswith("/telemetry"), within=60)
            wait_until(lambda: bool(bmc.control("console")["sol_active"]), "SOL activated by the console service")
            # The node's retained state reports the console beside the BMC.
            await watcher.wait_for(
                lambda m: (
                    m.topic.endswith("/state")
                    and m.json()["sources"].get("console", {}).get("availability") == "up"
                    and m.json()["sources"]["bmc"]["availability"] == "up"
                )
            )
            bmc.control("console", text="[ 12.3] NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus\r\n")
            (event,) = await watcher.wait_for(
                lambda m: m.topic.endswith("/event") and m.json()["type"] == "console_pattern", within=30
            )
            assert event.json()["data"]["pattern"] == "nvidia_xid"
            wait_until(lambda: log.exists() and b"fallen off the bus" in log.read_bytes(), "SOL output logged")
            # The console borrows the poller's driver session; pyghmi's SOL console still logs in once by itself,
            # so a node with ipmi-sol holds two of its BMC's sessions (of typically four), never more.
            assert bmc.status()["open_sessions"] == 2
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
        bmc.stop()
