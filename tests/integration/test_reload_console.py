"""SIGHUP keeps the console of an unchanged node connected: its log is continuous, byte for byte."""

from __future__ import annotations

import signal
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from rackd_sim.console_server.harness import wait_for
from rackd_sim.console_server.server import ConsoleServerSim

from rackd.console.logformat import device_bytes, markers
from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[ConsoleServerSim]:
    server = ConsoleServerSim(["node1", "node2"], baud=115200, boot_speed=0)
    await server.start()
    yield server
    await server.close()


def config(port: int, home: Path, sim: ConsoleServerSim, *, second: bool, pdu_interval: float) -> str:
    text = f"""
        [site]
        name = "lab"
        [daemon]
        state_dir = "{home}/state"
        control_socket = "{home}/control.sock"
        console_log_dir = "{home}/console"
        [mqtt]
        url = "mqtt://127.0.0.1:{port}"
        [[pdu]]
        id = "pdu-a"
        rack = "r1"
        driver = "fake"
        poll_interval = {pdu_interval}
        [[node]]
        id = "gpu-01"
        rack = "r1"
        console = {{ url = "telnet://127.0.0.1:{sim["node1"].ports["telnet"]}" }}
    """
    if second:
        text += f"""
        [[node]]
        id = "gpu-02"
        rack = "r1"
        console = {{ url = "telnet://127.0.0.1:{sim["node2"].ports["telnet"]}" }}
        """
    return textwrap.dedent(text)


async def test_console_of_an_unchanged_node_survives_a_reload_without_a_gap(
    broker: Mosquitto, sim: ConsoleServerSim, tmp_path: Path
) -> None:
    path = tmp_path / "rackd.toml"
    path.write_text(config(broker.port, tmp_path, sim, second=False, pdu_interval=1))
    node1 = sim["node1"]
    daemon = DaemonProcess(path, tmp_path / "daemon.log")
    daemon.start()
    try:
        await wait_for(lambda: bool(node1.records_of("telnet")), within=20, what="rackd connected to node1")
        node1.console.power_on()
        log = tmp_path / "console" / "gpu-01.log"
        await wait_for(lambda: log.exists() and b"login:" in log.read_bytes(), within=30, what="node1 booted")
        path.write_text(config(broker.port, tmp_path, sim, second=True, pdu_interval=2))
        daemon.send_signal(signal.SIGHUP)
        (reloaded,) = daemon.wait_for_log("config_reloaded")
        assert reloaded["added"] == ["gpu-02"]
        assert reloaded["changed"] == ["pdu-a"]
        await wait_for(lambda: bool(sim["node2"].records_of("telnet")), within=20, what="gpu-02's console opened")
        node1.console.println("written after the reload")
        await node1.console.drained()
        await wait_for(lambda: b"written after the reload" in log.read_bytes(), what="output after the reload")
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
    (connection,) = node1.records_of("telnet")  # one connection from start to stop: never reconnected
    content = log.read_bytes()
    assert device_bytes([content]) == bytes(connection.sent)
    assert not [m for m in markers([content])[1:-1] if "disconnect" in m or "gap" in m]
