"""The control plane end to end: a real daemon, a real mosquitto, MQTT 5 request/response and the control socket."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import jsonschema
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from rackd.control.signing import sign
from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess
from rackd.testing.users import AS_NOBODY, nobody_env, why_not_as_nobody
from rackd.testing.watcher import MqttWatcher, Received

pytestmark = pytest.mark.integration

ROOT = "rackd/v1/lab"
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def config_text(port: int, home: Path, cycle_off_time: float = 0.5, bulk_threshold: int = 5, extra: str = "") -> str:
    return extra + textwrap.dedent(
        f"""
        [site]
        name = "lab"
        [daemon]
        instance = "it"
        state_dir = "{home}/state"
        control_socket = "{home}/control.sock"
        shutdown_grace = 3
        [mqtt]
        url = "mqtt://127.0.0.1:{port}"
        [defaults]
        poll_interval = 0.5
        call_timeout = 1
        power_timeout = 10
        [actions]
        min_interval = 0
        cycle_off_time = {cycle_off_time}
        verify_interval = 0.1
        stagger = 0.2
        bulk_threshold = {bulk_threshold}
        [control]
        viewers = ["@nogroup"]
        [[pdu]]
        id = "pdu-a"
        rack = "r1"
        driver = "fake"
        host = "pdu-a"
        targets = ["1", "2", "3"]
        [[pdu]]
        id = "pdu-b"
        rack = "r1"
        driver = "fake"
        host = "pdu-b"
        targets = ["1", "2", "3"]
        [[node]]
        id = "gpu-01"
        rack = "r1"
        outlets = ["pdu-a:1", "pdu-b:1"]
        bmc = {{ driver = "fake", host = "bmc-01", fault_file = "{home}/bmc-01.fault" }}
        [[node]]
        id = "gpu-02"
        rack = "r1"
        outlets = ["pdu-a:2", "pdu-b:2"]
        bmc = {{ driver = "fake", host = "bmc-02", power = "off" }}
        [[node]]
        id = "gpu-03"
        rack = "r1"
        outlets = ["pdu-a:3", "pdu-b:3"]
        bmc = {{ driver = "fake", host = "bmc-03", power = "off" }}
        """
    )


@dataclass
class Site:
    broker: Mosquitto
    home: Path
    daemon: DaemonProcess

    @property
    def socket(self) -> Path:
        return self.home / "control.sock"

    def restart_daemon(self) -> DaemonProcess:
        self.daemon = DaemonProcess(self.daemon.config, self.home / "daemon-2.log")
        self.daemon.start()
        return self.daemon


@pytest.fixture
def home() -> Iterator[Path]:
    # Another user (nobody) must reach the control socket: pytest's tmp_path parents are private to root.
    path = Path(tempfile.mkdtemp(prefix="rackd-cp-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_site(broker: Mosquitto, home: Path, **options: float | str) -> Site:
    config = home / "rackd.toml"
    config.write_text(config_text(broker.port, home, **options))  # type: ignore[arg-type]
    return Site(broker, home, DaemonProcess(config, home / "daemon.log"))


@pytest.fixture
async def site(broker: Mosquitto, home: Path) -> AsyncIterator[Site]:
    the_site = make_site(broker, home)
    the_site.daemon.start()
    async with MqttWatcher(broker.port, f"{ROOT}/_daemon/+/status") as watcher:
        await watcher.wait_for(lambda m: m.json()["state"] == "online")
        await watcher.wait_for(lambda m: m.json()["counts"].get("reachable") == 5)
    yield the_site
    the_site.daemon.cleanup()


def rackd(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = AS_NOBODY if user == "nobody" else []
    env = nobody_env()
    return subprocess.run(
        [*prefix, sys.executable, "-m", "rackd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


async def request(
    port: int,
    device: str,
    payload: dict[str, object] | bytes,
    reply_to: str | None = None,
    correlation: bytes | None = None,
) -> None:
    properties = None
    if reply_to is not None:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ResponseTopic = reply_to
        properties.CorrelationData = correlation or b""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.publish(f"{ROOT}/r1/{device}/cmd", body, qos=1, properties=properties)


def is_final(m: Received) -> bool:
    return m.json()["status"] in {"succeeded", "failed", "rejected", "interrupted"}


async def test_mqtt_command_answers_on_the_response_topic_and_never_acts_twice(site: Site) -> None:
    reply_to = f"{ROOT}/_reply/{uuid.uuid4()}"
    command = {"v": 1, "id": "cycle-1", "action": "power.cycle", "requested_by": "ops", "reason": "hung"}
    schema = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "command_result.schema.json").read_text()))
    async with (
        MqttWatcher(site.broker.port, reply_to) as replies,
        MqttWatcher(site.broker.port, f"{ROOT}/r1/gpu-01/event") as events,
    ):
        await request(site.broker.port, "gpu-01", command, reply_to, b"corr-1")
        (final,) = await replies.wait_for(is_final)
        statuses = [m.json()["status"] for m in replies.messages]
        assert statuses == ["accepted", "running", "succeeded"]
        for message in replies.messages:
            schema.validate(message.json())
        assert "cycled" in final.json()["message"]
        # QoS 1 redelivery / a client retry: the same id answers with the stored result and does not act.
        await request(site.broker.port, "gpu-01", command, reply_to, b"corr-1")
        await replies.wait_for(is_final, count=2)
        assert replies.matching(is_final)[1].json()["steps"] == final.json()["steps"]
        started = await events.wait_for(lambda m: m.json()["type"] == "action_started")
        await events.wait_for(lambda m: m.json()["type"] == "action_finished")
        power = [m.json()["data"] for m in events.matching(lambda m: m.json()["type"] == "power_changed")]
        assert [(p["from"], p["to"]) for p in power] == [("on", "off"), ("off", "on")]
        assert len(started) == 1
    audit = [json.loads(line) for line in (site.home / "state" / "audit.jsonl").read_text().splitlines()]
    assert [(r["command_id"], r["status"]) for r in audit] == [("cycle-1", "running"), ("cycle-1", "succeeded")]
    assert audit[-1]["origin"]["via"] == "mqtt"
    assert audit[-1]["reason"] == "hung"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"{" * 5000 + b"}" * 5000, "malformed request"),
        (b'{"v": 1, "id": "x1", "action": "power.cycle", "bogus": true}', "bogus"),
        (b"[1, 2, 3]", "malformed request"),
        (b"x" * 70_000, "exceeds"),
    ],
)
async def test_malformed_requests_are_rejected_with_a_reason(site: Site, payload: bytes, expected: str) -> None:
    async with MqttWatcher(site.broker.port, f"{ROOT}/r1/gpu-01/cmd/result") as results:
        await request(site.broker.port, "gpu-01", payload)
        (result,) = await results.wait_for(lambda m: True)
        body = result.json()
        assert body["status"] == "rejected"
        assert expected in body["message"]
    assert site.daemon.process is not None
    assert site.daemon.process.poll() is None  # still running


async def test_cli_cycle_over_the_socket_and_a_viewer_is_refused(site: Site) -> None:
    done = await asyncio.to_thread(rackd, "power", "cycle", "gpu-01", "--socket", str(site.socket), "--reason", "t")
    assert done.returncode == 0, done.stderr
    assert "gpu-01: succeeded: cycled: off observed, on observed" in done.stdout
    assert "sent off to gpu-01/chassis" in done.stdout  # live progress
    if why_not_as_nobody() is not None:
        pytest.skip(str(why_not_as_nobody()))
    os.chown(site.socket, 0, 65534)  # the socket group admits nogroup, as a deployment's socket group would
    status = await asyncio.to_thread(rackd, "status", "--socket", str(site.socket), "--json", user="nobody")
    assert status.returncode == 0, status.stderr
    assert {row["device"] for row in json.loads(status.stdout)} >= {"gpu-01", "pdu-a"}
    refused = await asyncio.to_thread(rackd, "power", "off", "gpu-01", "--socket", str(site.socket), user="nobody")
    assert refused.returncode == 1
    assert "needs role operator" in refused.stdout
    audit = [json.loads(line) for line in (site.home / "state" / "audit.jsonl").read_text().splitlines()]
    denied = [r for r in audit if r.get("status") == "rejected"]
    assert denied
    assert denied[-1]["origin"]["who"].startswith("nobody (uid 65534")
    assert denied[-1]["action"] == "power.off"


async def test_escalation_from_a_hung_bmc_completes_through_the_outlets(site: Site) -> None:
    (site.home / "bmc-01.fault").write_text("hang")
    done = await asyncio.to_thread(
        rackd, "power", "cycle", "gpu-01", "--escalate", "--via", "bmc", "--socket", str(site.socket), "--json"
    )
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert result["message"].startswith("via PDU outlets")
    messages = [s["message"] for s in result["steps"]]
    assert any("escalating to PDU outlets pdu-a/1, pdu-b/1" in m for m in messages)
    assert {m for m in messages if m.startswith("observed pdu-")} >= {
        "observed pdu-a/1 off",
        "observed pdu-b/1 off",
        "observed pdu-a/1 on",
        "observed pdu-b/1 on",
    }


async def test_rack_power_on_is_staggered_and_bulk_needs_confirmation(broker: Mosquitto, home: Path) -> None:
    the_site = make_site(broker, home, bulk_threshold=1)
    the_site.daemon.start()
    try:
        async with MqttWatcher(broker.port, f"{ROOT}/_daemon/+/status") as watcher:
            await watcher.wait_for(lambda m: m.json()["counts"].get("reachable") == 5)
        unconfirmed = await asyncio.to_thread(
            rackd, "power", "on", "gpu-02", "gpu-03", "--socket", str(the_site.socket)
        )
        assert unconfirmed.returncode == 1
        assert "exceed the confirmation threshold of 1" in unconfirmed.stderr
        done = await asyncio.to_thread(
            rackd, "power", "on", "gpu-02", "gpu-03", "--yes", "--socket", str(the_site.socket)
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "staggered: waiting 0.2 s" in done.stdout
        assert "gpu-02: succeeded" in done.stdout
        assert "gpu-03: succeeded" in done.stdout
    finally:
        the_site.daemon.cleanup()


async def test_sigkill_mid_cycle_is_reported_interrupted_after_restart(broker: Mosquitto, home: Path) -> None:
    the_site = make_site(broker, home, cycle_off_time=30)
    the_site.daemon.start()
    reply_to = f"{ROOT}/_reply/{uuid.uuid4()}"
    try:
        async with (
            MqttWatcher(broker.port, reply_to) as replies,
            MqttWatcher(broker.port, f"{ROOT}/r1/gpu-01/event") as events,
        ):
            async with MqttWatcher(broker.port, f"{ROOT}/_daemon/+/status") as watcher:
                await watcher.wait_for(lambda m: m.json()["counts"].get("reachable") == 5)
            command = {"v": 1, "id": "kill-1", "action": "power.cycle"}
            await request(broker.port, "gpu-01", command, reply_to, b"k")
            await events.wait_for(lambda m: m.json()["type"] == "power_changed")  # off observed, now waiting
            assert the_site.daemon.stop(signal.SIGKILL) == -signal.SIGKILL
            the_site.restart_daemon()
            async with MqttWatcher(broker.port, f"{ROOT}/r1/gpu-01/cmd/result") as results:
                (interrupted,) = await results.wait_for(lambda m: m.json()["status"] == "interrupted", within=30)
            body = interrupted.json()
            assert body["id"] == "kill-1"
            assert "not resumed" in body["message"]
            assert "observed: chassis" in body["message"]
            # The same id sent again (a client retrying) gets the interrupted result, and nothing acts.
            await request(broker.port, "gpu-01", command, reply_to, b"k")
            await replies.wait_for(lambda m: m.json()["status"] == "interrupted")
            assert len(events.matching(lambda m: m.json()["type"] == "action_started")) == 1
    finally:
        the_site.daemon.cleanup()


async def test_signed_commands_only_when_signing_is_on(broker: Mosquitto, home: Path) -> None:
    (home / "alice.key").write_text("alice-shared-key\n")
    signing = f'[control.signing]\nkeys = {{ alice = {{ file = "{home}/alice.key" }} }}\nmax_skew = 60\n'
    the_site = make_site(broker, home, extra=signing)
    the_site.daemon.start()
    now = dt.datetime.now(dt.UTC)
    base = {"v": 1, "action": "power.off"}
    try:
        async with MqttWatcher(broker.port, f"{ROOT}/r1/+/cmd/result") as results:
            async with MqttWatcher(broker.port, f"{ROOT}/_daemon/+/status") as watcher:
                await watcher.wait_for(lambda m: m.json()["counts"].get("reachable") == 5)
            await request(broker.port, "gpu-01", {**base, "id": "unsigned-1", "requested_by": "alice"})
            signed = sign({**base, "id": "tampered-1"}, "alice", "alice-shared-key", now)
            await request(broker.port, "gpu-01", {**signed, "action": "power.cycle"})
            stale = sign({**base, "id": "stale-1"}, "alice", "alice-shared-key", now - dt.timedelta(seconds=600))
            await request(broker.port, "gpu-01", stale)
            good = sign({**base, "id": "good-1"}, "alice", "alice-shared-key", now)
            await request(broker.port, "gpu-01", good)
            await results.wait_for(lambda m: m.json()["id"] == "good-1" and is_final(m))
            await request(broker.port, "gpu-01", good)  # replayed verbatim: answered from the store, no action
            await results.wait_for(lambda m: m.json()["id"] == "good-1" and is_final(m), count=2)
            finals = {m.json()["id"]: m.json() for m in results.matching(is_final)}
        assert "unsigned command refused" in finals["unsigned-1"]["message"]
        assert "bad signature" in finals["tampered-1"]["message"]
        assert "stale" in finals["stale-1"]["message"]
        assert finals["good-1"]["status"] == "succeeded"
        assert all(finals[i]["status"] == "rejected" for i in ("unsigned-1", "tampered-1", "stale-1"))
        audit = [json.loads(line) for line in (home / "state" / "audit.jsonl").read_text().splitlines()]
        acted = [r for r in audit if r.get("command_id") == "good-1"]
        assert [r["status"] for r in acted] == ["running", "succeeded"]  # once, despite the replay
        assert acted[-1]["origin"]["who"] == "alice"  # authenticated, not merely claimed
        assert sum(1 for r in audit if r["kind"] == "denied") == 3
    finally:
        the_site.daemon.cleanup()
