"""SIGHUP: devices added, removed and changed without a restart; a broken config is refused and the old one kept."""

from __future__ import annotations

import signal
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess
from rackd.testing.watcher import MqttWatcher, Received

pytestmark = pytest.mark.integration
ROOT = "rackd/v1/lab/r1"


def config(port: int, home: Path, devices: str) -> str:
    return textwrap.dedent(f"""
        [site]
        name = "lab"
        [daemon]
        state_dir = "{home}/state"
        control_socket = "{home}/control.sock"
        [mqtt]
        url = "mqtt://127.0.0.1:{port}"
        [defaults]
        poll_interval = 0.3
    """) + textwrap.dedent(devices)


NODE = """
[[node]]
id = "{id}"
rack = "r1"
bmc = {{ driver = "fake", host = "{id}" }}
"""
PDU = """
[[pdu]]
id = "pdu-a"
rack = "r1"
driver = "fake"
host = "pdu-a"
poll_interval = {interval}
"""


def telemetry_of(device: str) -> Callable[[Received], bool]:
    return lambda m: m.topic == f"{ROOT}/{device}/telemetry"


async def test_sighup_adds_removes_and_changes_devices_and_keeps_the_rest(broker: Mosquitto, tmp_path: Path) -> None:
    path = tmp_path / "rackd.toml"
    path.write_text(
        config(broker.port, tmp_path, NODE.format(id="gpu-01") + NODE.format(id="gpu-02") + PDU.format(interval=0.3))
    )
    daemon = DaemonProcess(path, tmp_path / "daemon.log")
    daemon.start()
    try:
        async with MqttWatcher(broker.port, "rackd/#") as watcher:
            for device in ("gpu-01", "gpu-02", "pdu-a"):
                await watcher.wait_for(telemetry_of(device))
            path.write_text(
                config(
                    broker.port,
                    tmp_path,
                    NODE.format(id="gpu-01") + NODE.format(id="gpu-03") + PDU.format(interval=0.5),
                )
            )
            daemon.send_signal(signal.SIGHUP)
            (reloaded,) = daemon.wait_for_log("config_reloaded")
            assert reloaded["added"] == ["gpu-03"]
            assert reloaded["removed"] == ["gpu-02"]
            assert reloaded["changed"] == ["pdu-a"]
            assert reloaded["unchanged"] == 1
            await watcher.wait_for(telemetry_of("gpu-03"))
            # The removed device's retained state is deleted (an empty retained message).
            await watcher.wait_for(lambda m: m.topic == f"{ROOT}/gpu-02/state" and m.payload == b"")
            seen_01 = len(watcher.matching(telemetry_of("gpu-01")))
            await watcher.wait_for(telemetry_of("gpu-01"), count=seen_01 + 3)

            # A broken config is refused with its errors; the running config keeps working.
            path.write_text(config(broker.port, tmp_path, NODE.format(id="gpu-01") + "\n[[node]]\nid = 7\n"))
            daemon.send_signal(signal.SIGHUP)
            (rejected,) = daemon.wait_for_log("config_reload_rejected")
            assert any("node[1].id" in str(error) for error in rejected["errors"])
            seen_03 = len(watcher.matching(telemetry_of("gpu-03")))
            await watcher.wait_for(telemetry_of("gpu-03"), count=seen_03 + 3)
        opened = [e["device"] for e in daemon.logs() if e.get("event") == "session_opened"]
        assert opened.count("gpu-01") == 1  # the unchanged device kept its one session through both reloads
        assert opened.count("pdu-a") == 2  # the changed one was reopened once
        logs = daemon.logs()
        after = logs[next(i for i, e in enumerate(logs) if e.get("event") == "config_reloaded") :]
        assert "gpu-02" not in {e.get("device") for e in after}  # the removed device is no longer polled
    finally:
        assert daemon.stop() == 0
