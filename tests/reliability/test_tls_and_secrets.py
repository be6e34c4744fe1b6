"""MQTT over TLS with a test CA (and a wrong CA refused); secrets never appear in any output of a full run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess
from rackd.testing.tls import make_certificates
from rackd.testing.watcher import MqttWatcher

pytestmark = pytest.mark.integration


def tls_config(home: Path, port: int, ca: Path) -> Path:
    path = home / "rackd.toml"
    path.write_text(
        textwrap.dedent(f"""
        [site]
        name = "lab"
        [daemon]
        state_dir = "{home}/state"
        control_socket = "{home}/control.sock"
        [mqtt]
        url = "mqtts://127.0.0.1:{port}"
        ca_file = "{ca}"
        [defaults]
        poll_interval = 0.3
        [[node]]
        id = "gpu-01"
        rack = "r1"
        bmc = {{ driver = "fake", host = "a" }}
    """)
    )
    return path


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto()
    certs = make_certificates(broker.workdir)
    broker.extra_config = f"cafile {certs.ca}\ncertfile {certs.cert}\nkeyfile {certs.key}\n"
    broker.start()
    yield broker
    broker.cleanup()


async def test_mqtts_with_the_right_ca(tls_broker: Mosquitto, tmp_path: Path) -> None:
    daemon = DaemonProcess(
        tls_config(tmp_path, tls_broker.port, tls_broker.workdir / "rackd-test-ca.pem"), tmp_path / "daemon.log"
    )
    daemon.start()
    try:
        daemon.wait_for_log("mqtt_connected")
        daemon.wait_for_log("device_available")
    finally:
        assert daemon.stop() == 0


async def test_a_wrong_ca_is_refused_clearly_with_backoff_and_no_crash(tls_broker: Mosquitto, tmp_path: Path) -> None:
    other = make_certificates(tmp_path, name="other")
    daemon = DaemonProcess(tls_config(tmp_path, tls_broker.port, other.ca), tmp_path / "daemon.log")
    daemon.start()
    try:
        daemon.wait_for_log("mqtt_unavailable")
        daemon.wait_for_log("mqtt_connect_failed")  # it keeps retrying, quietly
        (refused,) = [e for e in daemon.logs() if e.get("event") == "mqtt_unavailable"]
        assert "certificate verify failed" in str(refused["error"]).lower()
        assert not any(e.get("event") == "mqtt_connected" for e in daemon.logs())
        assert daemon.process is not None
        assert daemon.process.poll() is None
    finally:
        assert daemon.stop() == 0


SECRETS = {"bmc": "bmc-Secret-9f3a1c", "mqtt": "mqtt-Secret-7d2e4b", "sign": "sign-Secret-c41d0e"}


async def test_secrets_never_appear_in_any_output(tmp_path: Path) -> None:
    broker = Mosquitto()
    broker.require_passwords({"rackd": SECRETS["mqtt"]})
    broker.start()
    (tmp_path / "mqtt.pw").write_text(SECRETS["mqtt"] + "\n")
    (tmp_path / "alice.key").write_text(SECRETS["sign"] + "\n")
    config = tmp_path / "rackd.toml"
    config.write_text(
        textwrap.dedent(f"""
        [site]
        name = "lab"
        [daemon]
        state_dir = "{tmp_path}/state"
        control_socket = "{tmp_path}/control.sock"
        [mqtt]
        url = "mqtt://127.0.0.1:{broker.port}"
        username = "rackd"
        password = {{ file = "{tmp_path}/mqtt.pw" }}
        [defaults]
        poll_interval = 0.3
        [actions]
        min_interval = 0
        cycle_off_time = 0
        verify_interval = 0.1
        [control.signing]
        keys = {{ alice = {{ file = "{tmp_path}/alice.key" }} }}
        [[node]]
        id = "gpu-01"
        rack = "r1"
        bmc = {{ driver = "fake", host = "a", username = "admin", password = {{ env = "BMC_PW" }} }}
        [[node]]
        id = "gpu-02"
        rack = "r1"
        bmc = {{ driver = "fake", host = "b", username = "admin", password = "{SECRETS["bmc"]}", fault = "auth" }}
    """)
    )
    outputs: list[str] = []
    env = {"BMC_PW": SECRETS["bmc"]}
    check = subprocess.run(
        [sys.executable, "-m", "rackd", "check-config", "-c", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    outputs += [check.stdout, check.stderr]
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env=env)
    daemon.start()
    try:
        async with MqttWatcher(broker.port, "#", username="rackd", password=SECRETS["mqtt"]) as watcher:
            await watcher.wait_for(lambda m: m.topic.endswith("gpu-01/telemetry"))
            await watcher.wait_for(lambda m: m.topic.endswith("gpu-02/event"))  # the auth failure, reported
            power = subprocess.run(
                [sys.executable, "-m", "rackd", "power", "cycle", "gpu-01", "--socket", str(tmp_path / "control.sock")],
                capture_output=True,
                text=True,
                check=False,
            )
            outputs += [power.stdout, power.stderr]
            status = subprocess.run(
                [sys.executable, "-m", "rackd", "status", "--json", "--socket", str(tmp_path / "control.sock")],
                capture_output=True,
                text=True,
                check=False,
            )
            outputs += [status.stdout, status.stderr]
            await watcher.wait_for(lambda m: m.topic.endswith("cmd/result") and m.json()["status"] == "succeeded")
            outputs += [m.payload.decode(errors="replace") for m in watcher.messages]
        daemon.send_signal(signal.SIGHUP)  # the reload path logs too
        daemon.wait_for_log("config_reloaded")
    finally:
        assert daemon.stop() == 0
        broker.cleanup()
    outputs.append((tmp_path / "daemon.log").read_text())
    outputs.append((tmp_path / "state" / "audit.jsonl").read_text())
    outputs += [p.read_bytes().decode(errors="replace") for p in (tmp_path / "state").glob("*.sqlite3")]
    assert check.returncode == 0, check.stderr
    assert power.returncode == 0, power.stdout + power.stderr
    assert "inline" in check.stderr  # the inline BMC password is flagged
    for name, secret in SECRETS.items():
        for output in outputs:
            assert secret not in output, f"the {name} secret leaked"
    assert json.loads(status.stdout)


async def test_broker_auth_failure_is_clear_backs_off_and_does_not_crash(tmp_path: Path) -> None:
    broker = Mosquitto()
    broker.require_passwords({"rackd": "right"})
    broker.start()
    (tmp_path / "mqtt.pw").write_text("wrong\n")
    config = tmp_path / "rackd.toml"
    config.write_text(
        textwrap.dedent(f"""
        [site]
        name = "lab"
        [daemon]
        state_dir = "{tmp_path}/state"
        control_socket = "{tmp_path}/control.sock"
        [mqtt]
        url = "mqtt://127.0.0.1:{broker.port}"
        username = "rackd"
        password = {{ file = "{tmp_path}/mqtt.pw" }}
    """)
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        (refused,) = daemon.wait_for_log("mqtt_unavailable")
        assert "not authorized" in str(refused["error"]).lower()
        daemon.wait_for_log("mqtt_connect_failed", count=2)  # retried with backoff, logged quietly
        assert len(daemon.logged("mqtt_unavailable")) == 1
        assert daemon.process is not None
        assert daemon.process.poll() is None
    finally:
        assert daemon.stop() == 0
        broker.cleanup()
