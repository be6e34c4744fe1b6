"""console.send and console.break through the action engine (MQTT), against the console-server simulator."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import pytest
import pytest_asyncio
from rackd_sim.console_server.harness import wait_for
from rackd_sim.console_server.server import ConsoleServerSim

from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess
from rackd.testing.watcher import MqttWatcher, Received

pytestmark = pytest.mark.integration
RESULTS = "rackd/v1/lab/r1/gpu-01/cmd/result"


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[ConsoleServerSim]:
    server = ConsoleServerSim(["node1"], baud=115200, boot_speed=0)
    await server.start()
    yield server
    await server.close()


def final(command_id: str) -> Callable[[Received], bool]:
    def matches(m: Received) -> bool:
        body = m.json()
        return bool(body["id"] == command_id and body["status"] in {"succeeded", "failed", "rejected"})

    return matches


async def test_console_send_and_break_reach_the_device_and_keystrokes_stay_out_of_the_records(
    broker: Mosquitto, sim: ConsoleServerSim, tmp_path: Path
) -> None:
    node = sim["node1"]
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
        url = "mqtt://127.0.0.1:{broker.port}"
        [[node]]
        id = "gpu-01"
        rack = "r1"
        console = {{ url = "rfc2217://127.0.0.1:{node.ports["rfc2217"]}" }}
    """)
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        await wait_for(lambda: bool(node.records_of("rfc2217")), within=20, what="rackd connected")
        # Ready means subscribed to commands: a request published before that reaches no one.
        await wait_for(lambda: bool(daemon.logged("daemon_ready")), within=20, what="rackd ready")
        async with MqttWatcher(broker.port, RESULTS) as results:
            async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
                send = {"v": 1, "id": "c-send", "action": "console.send", "args": {"text": "s3cret-typed\r"}}
                await client.publish("rackd/v1/lab/r1/gpu-01/cmd", json.dumps(send), qos=1)
                brk = {"v": 1, "id": "c-break", "action": "console.break"}
                await client.publish("rackd/v1/lab/r1/gpu-01/cmd", json.dumps(brk), qos=1)
                empty = {"v": 1, "id": "c-empty", "action": "console.send", "args": {}}
                await client.publish("rackd/v1/lab/r1/gpu-01/cmd", json.dumps(empty), qos=1)
            (sent,) = await results.wait_for(final("c-send"))
            (broke,) = await results.wait_for(final("c-break"))
            (refused,) = await results.wait_for(final("c-empty"))
        assert sent.json()["status"] == "succeeded"
        assert sent.json()["message"] == "sent 13 characters"
        assert broke.json()["status"] == "succeeded"
        assert refused.json()["status"] == "rejected"
        record = node.records_of("rfc2217")[0]
        await wait_for(lambda: b"s3cret-typed" in bytes(record.received), what="input delivered")
        await wait_for(lambda: record.breaks == 1, what="BREAK delivered")
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
    for path in [
        tmp_path / "daemon.log",
        tmp_path / "state" / "audit.jsonl",
        *(tmp_path / "console").glob("*"),
        *(tmp_path / "state").glob("*.sqlite3"),
    ]:
        assert b"s3cret-typed" not in path.read_bytes(), f"console input leaked into {path.name}"
