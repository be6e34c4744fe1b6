"""End to end: `rackd run` with a console on the simulator, a real mosquitto: pattern events on MQTT, SIGHUP reopen."""

from __future__ import annotations

import json
import signal
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import jsonschema
import pytest
import pytest_asyncio
from rackd_sim.console_server.harness import wait_for
from rackd_sim.console_server.machine import LoginState
from rackd_sim.console_server.server import ConsoleServerSim

from rackd.console.logformat import device_bytes, markers
from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess
from rackd.testing.watcher import MqttWatcher, Received

pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
TOPIC = "rackd/v1/lab/r1/gpu-01/event"


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[ConsoleServerSim]:
    server = ConsoleServerSim(["node1"], baud=115200, boot_speed=0)  # paced at the real line rate
    await server.start()
    yield server
    await server.close()


def pattern(name: str) -> Callable[[Received], bool]:
    def matches(message: Received) -> bool:
        payload = message.json()
        return bool(payload["type"] == "console_pattern" and payload["data"]["pattern"] == name)

    return matches


async def test_panic_and_xid_each_produce_exactly_one_mqtt_event(
    broker: Mosquitto, sim: ConsoleServerSim, tmp_path: Path
) -> None:
    endpoint = sim["node1"]
    console = endpoint.console
    config = tmp_path / "rackd.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [site]
            name = "lab"
            [daemon]
            instance = "it"
            state_dir = "{tmp_path}/state"
            control_socket = "{tmp_path}/control.sock"
            console_log_dir = "{tmp_path}/console"
            shutdown_grace = 5
            [mqtt]
            url = "mqtt://127.0.0.1:{broker.port}"
            [[node]]
            id = "gpu-01"
            rack = "r1"
            console = {{ url = "telnet://127.0.0.1:{endpoint.ports["telnet"]}" }}
            """
        )
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    validator = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "event.schema.json").read_text()))
    try:
        async with MqttWatcher(broker.port, TOPIC) as watcher:
            daemon.start()
            await wait_for(lambda: bool(endpoint.records_of("telnet")), within=20, what="rackd connected")
            console.power_on()
            await watcher.wait_for(pattern("login_prompt"))
            await wait_for(lambda: console.state is LoginState.LOGIN, what="booted")
            console.inject_xid(79)
            console.inject_xid(79)  # the same error again within the interval: held back, not a second event
            console.inject_panic()  # its closing "---[ end Kernel panic" line matches again: held back too
            console.println("[ 1234.5] Out of memory: Killed process 4711 (python3)")  # a later, different event
            await watcher.wait_for(pattern("oom_killer"))
            # Events leave the daemon in order, so everything before the OOM line has arrived by now.
            xids = watcher.matching(pattern("nvidia_xid"))
            panics = watcher.matching(pattern("kernel_panic"))
            assert len(xids) == 1
            assert len(panics) == 1
            for message in watcher.messages:
                validator.validate(message.json())
            panic = panics[0].json()
            assert panic["severity"] == "critical"
            assert panic["source"] == "console"
            assert panic["data"]["line"].endswith("Kernel panic - not syncing: sysrq triggered crash")
            assert panic["data"]["context"][-1].endswith("sysrq: Trigger a crash")
            assert "NVRM: Xid (PCI:0000:3b:00): 79" in xids[0].json()["data"]["line"]

        # External logrotate: rename the file, SIGHUP, and the daemon continues in a new file, losing nothing.
        log = tmp_path / "console" / "gpu-01.log"
        log.rename(tmp_path / "console" / "gpu-01.log.1")
        daemon.send_signal(signal.SIGHUP)
        await wait_for(log.exists, what="log reopened after SIGHUP")
        console.println("after logrotate")
        await console.drained()
        await wait_for(lambda: b"after logrotate" in log.read_bytes(), what="new output in the new file")
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
    files = [(tmp_path / "console" / "gpu-01.log.1").read_bytes(), log.read_bytes()]
    assert device_bytes(files) == bytes(endpoint.records_of("telnet")[0].sent)
    assert markers(files)[-1] == "rackd stopping: console no longer captured"
    names = [entry["event"] for entry in daemon.logs()]
    assert "console_logs_reopened" in names
