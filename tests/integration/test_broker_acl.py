"""The shipped example mosquitto ACL (systemd/mosquitto/rackd.acl), enforced by a real mosquitto."""

from __future__ import annotations

import json
import shutil
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess
from rackd.testing.watcher import MqttWatcher

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "systemd" / "mosquitto"
USERS = {"rackd": "daemon-pw", "viewer": "viewer-pw", "operator-r12": "op-pw", "oncall": "oncall-pw"}


@pytest.fixture
def secured_broker() -> Iterator[Mosquitto]:
    broker = Mosquitto()
    broker.require_passwords(USERS)
    acl = broker.workdir / "rackd.acl"
    shutil.copy(EXAMPLES / "rackd.acl", acl)  # the shipped file, as an operator would install it
    acl.chmod(0o644)
    broker.extra_config += f"acl_file {acl}\n"
    broker.start()
    yield broker
    broker.cleanup()


class Publisher:
    """A paho client that reports the broker's PUBACK reason code (aiomqtt does not expose it)."""

    def __init__(self, port: int, user: str | None) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        if user is not None:
            self.client.username_pw_set(user, USERS[user])
        self.acks: dict[int, ReasonCode] = {}
        self.connected = threading.Event()
        self.connect_code: ReasonCode | None = None
        self.client.on_publish = lambda c, u, mid, code, props: self.acks.__setitem__(mid, code)

        def on_connect(c: object, u: object, flags: object, code: ReasonCode, props: object) -> None:
            self.connect_code = code
            self.connected.set()

        self.client.on_connect = on_connect
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connected.wait(10)

    def publish(self, topic: str, payload: dict[str, object]) -> ReasonCode:
        info = self.client.publish(topic, json.dumps(payload), qos=1)
        info.wait_for_publish(10)
        return self.acks[info.mid]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def test_example_acl_lets_operators_command_only_their_racks(secured_broker: Mosquitto, tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").write_text("daemon-pw\n")
    config = tmp_path / "rackd.toml"
    config.write_text(
        textwrap.dedent(f"""
        [site]
        name = "lab"
        [daemon]
        state_dir = "{tmp_path}/state"
        control_socket = "{tmp_path}/control.sock"
        [mqtt]
        url = "mqtt://127.0.0.1:{secured_broker.port}"
        username = "rackd"
        password = {{ file = "{tmp_path}/mqtt-password" }}
        [defaults]
        poll_interval = 0.5
        [actions]
        min_interval = 0
        cycle_off_time = 0
        verify_interval = 0.1
        [[node]]
        id = "gpu-01"
        rack = "r12"
        bmc = {{ driver = "fake", host = "a" }}
        [[node]]
        id = "gpu-09"
        rack = "r13"
        bmc = {{ driver = "fake", host = "b" }}
    """)
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    daemon.start()
    viewer = Publisher(secured_broker.port, "viewer")
    operator = Publisher(secured_broker.port, "operator-r12")
    try:
        async with MqttWatcher(secured_broker.port, "rackd/#", username="oncall", password=USERS["oncall"]) as oncall:
            await oncall.wait_for(lambda m: m.topic.endswith("/status") and m.json()["state"] == "online")
            command = {"v": 1, "id": "acl-1", "action": "power.off"}
            assert viewer.publish("rackd/v1/lab/r12/gpu-01/cmd", command).value == 0x87  # not authorized
            assert operator.publish("rackd/v1/lab/r13/gpu-09/cmd", {**command, "id": "acl-2"}).value == 0x87
            assert operator.publish("rackd/v1/lab/r12/gpu-01/cmd", {**command, "id": "acl-3"}).value == 0
            await oncall.wait_for(
                lambda m: m.topic == "rackd/v1/lab/r12/gpu-01/cmd/result" and m.json()["status"] == "succeeded"
            )
        assert_refused_without_credentials(secured_broker.port)
    finally:
        viewer.close()
        operator.close()
        assert daemon.stop() == 0
    records = [json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    assert {r["command_id"] for r in records} == {"acl-3"}  # only the permitted command reached the daemon


def assert_refused_without_credentials(port: int) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    done = threading.Event()
    codes: list[ReasonCode] = []

    def on_connect(c: object, u: object, flags: object, code: ReasonCode, props: object) -> None:
        codes.append(code)
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10)
        assert codes[0].is_failure
    finally:
        client.loop_stop()
        client.disconnect()
