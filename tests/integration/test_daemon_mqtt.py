"""End to end: `rackd run` as a subprocess with the fake driver, against a real mosquitto on loopback."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest

from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess, wait_until
from rackd.testing.watcher import MqttWatcher, Received, on_topic

pytestmark = pytest.mark.integration

OUTAGE = float(os.environ.get("RACKD_SOAK_OUTAGE", "10"))  # seconds of broker outage (the soak uses 60)
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
ROOT = "rackd/v1/lab"


def config_text(port: int, state_dir: Path, interval: float = 0.25) -> str:
    return textwrap.dedent(
        f"""
        [site]
        name = "lab"
        [daemon]
        instance = "it"
        state_dir = "{state_dir}"
        control_socket = "{state_dir}/control.sock"
        shutdown_grace = 5
        [mqtt]
        url = "mqtt://127.0.0.1:{port}"
        [defaults]
        poll_interval = {interval}
        call_timeout = 2
        backoff_initial = 0.2
        backoff_max = 1
        [[pdu]]
        id = "pdu-a1"
        rack = "r1"
        driver = "fake"
        feed = "A"
        host = "pdu-a1"
        targets = ["1", "2"]
        readings = [{{ sensor = "total_power", kind = "power", value = 4200.0 }},
                    {{ sensor = "outlet1_power", kind = "power", value = 900.0 }}]
        [[node]]
        id = "gpu-01"
        rack = "r1"
        outlets = ["pdu-a1:1"]
        bmc = {{ driver = "fake", host = "gpu-01", log_entries_per_poll = 1 }}
        """
    )


def schema(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[[int], DaemonProcess]]:
    daemons: list[DaemonProcess] = []

    def make(port: int) -> DaemonProcess:
        config = tmp_path / "rackd.toml"
        config.write_text(config_text(port, tmp_path / "state"))
        daemon = DaemonProcess(config, tmp_path / f"daemon-{len(daemons)}.log")
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.cleanup()


def is_event(m: Received) -> bool:
    return m.topic == f"{ROOT}/r1/gpu-01/event" and m.json()["type"] == "log_entry"


def spooled(state_dir: Path) -> int:
    path = state_dir / "spool.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            count: int = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
        return count


async def test_status_telemetry_and_state_arrive_and_validate(
    broker: Mosquitto, make_daemon: Callable[[int], DaemonProcess]
) -> None:
    daemon = make_daemon(broker.port)
    async with MqttWatcher(broker.port, f"{ROOT}/#") as watcher:
        daemon.start()
        (status,) = await watcher.wait_for(
            lambda m: m.topic.endswith("/_daemon/it/status") and m.json()["state"] == "online"
        )
        schema("daemon_status").validate(status.json())
        for device in ("gpu-01", "pdu-a1"):
            telemetry = await watcher.wait_for(on_topic(f"{ROOT}/r1/{device}/telemetry"), count=2)
            states = await watcher.wait_for(on_topic(f"{ROOT}/r1/{device}/state"))
            for message in telemetry:
                schema("telemetry").validate(message.json())
            for message in states:
                schema("state").validate(message.json())
        (rack,) = await watcher.wait_for(lambda m: m.topic == f"{ROOT}/r1/_rack/telemetry")
        schema("rack_telemetry").validate(rack.json())
        assert rack.json()["total_power"] == 4200.0
        assert rack.json()["nodes"]["gpu-01"]["outlet_power"] == 900.0
        events = await watcher.wait_for(is_event, count=3)
        for message in events:
            schema("event").validate(message.json())
        node_state = watcher.matching(lambda m: m.topic == f"{ROOT}/r1/gpu-01/state")[-1].json()
        assert node_state["power"] == {"chassis": "on"}
        assert node_state["sources"]["bmc"]["availability"] == "up"
        assert node_state["inventory"]["model"] == "FakeServer 9000"
        pdu_state = watcher.matching(lambda m: m.topic == f"{ROOT}/r1/pdu-a1/state")[-1].json()
        assert pdu_state["power"] == {"1": "on", "2": "on"}
        assert pdu_state["kind"] == "pdu"
        node_telemetry = watcher.matching(lambda m: m.topic == f"{ROOT}/r1/gpu-01/telemetry")[-1]
        sensors = {r["sensor"]: r for r in node_telemetry.json()["readings"]}
        assert sensors["system_power"]["unit"] == "W"
    assert daemon.stop() == 0


async def test_sigterm_leaves_offline_retained_and_exits_zero(
    broker: Mosquitto, make_daemon: Callable[[int], DaemonProcess]
) -> None:
    daemon = make_daemon(broker.port)
    daemon.start()
    async with MqttWatcher(broker.port, f"{ROOT}/_daemon/+/status") as watcher:
        await watcher.wait_for(lambda m: m.json()["state"] == "online")
    assert daemon.stop(signal.SIGTERM) == 0
    names = [entry["event"] for entry in daemon.logs()]
    assert "shutdown_requested" in names
    assert "daemon_stopped" in names
    async with MqttWatcher(broker.port, f"{ROOT}/_daemon/+/status") as late:
        (retained,) = await late.wait_for(lambda m: m.retain)
        assert retained.json()["state"] == "offline"
        schema("daemon_status").validate(retained.json())


async def test_broker_outage_loses_no_events(tmp_path: Path, make_daemon: Callable[[int], DaemonProcess]) -> None:
    broker = Mosquitto(persistence=True)  # the watcher's durable session must survive the broker restart
    broker.start()
    try:
        daemon = make_daemon(broker.port)
        async with MqttWatcher(broker.port, f"{ROOT}/+/+/event", client_id="watcher", persistent=True) as watcher:
            daemon.start()
            await watcher.wait_for(is_event, count=5)
            broker.stop()
            # OUTAGE s of events (one per 0.25 s poll) pile up in the daemon's spool while the broker is gone.
            wait_until(lambda: spooled(tmp_path / "state") >= OUTAGE * 4, "events spooled", within=OUTAGE * 3 + 30)
            broker.start()
            back = time.monotonic()
            held = spooled(tmp_path / "state")
            before = len(watcher.matching(is_event))
            await watcher.wait_for(is_event, count=before + held + 5, within=30 + OUTAGE)
            drained = time.monotonic() - back
        async with MqttWatcher(broker.port, f"{ROOT}/r1/+/telemetry") as fresh:
            await fresh.wait_for(lambda m: True)
            resumed = time.monotonic() - back
        async with MqttWatcher(broker.port, f"{ROOT}/r1/+/state") as late:
            retained = await late.wait_for(lambda m: m.retain, count=2)
            assert {m.json()["device"] for m in retained} == {"gpu-01", "pdu-a1"}
            assert all(m.json()["sources"][next(iter(m.json()["sources"]))]["availability"] == "up" for m in retained)
        print(
            f"outage {OUTAGE:g} s: {held} events spooled, delivered {drained:.1f} s after the broker returned, "
            f"telemetry seen {resumed:.1f} s after"
        )
        assert daemon.stop() == 0
        events = [m.json() for m in watcher.matching(is_event)]
        seqs = [e["data"]["seq"] for e in events]
        ids = [e["id"] for e in events]
        unique = list(dict.fromkeys(seqs))
        # Nothing lost, in order: every record from the first to the last, each first seen in sequence.
        missing = sorted(set(range(unique[0], unique[-1] + 1)) - set(unique))
        assert not missing, f"lost {missing}"
        assert unique == sorted(unique), "out of order"
        # QoS 1 is at-least-once: only a message in flight when the broker died may arrive twice.
        assert len(ids) - len(set(ids)) <= 1
        logs = [entry["event"] for entry in daemon.logs()]
        # Each outage is logged once, not per retry (retries log at debug level as mqtt_connect_failed).
        assert logs.count("mqtt_unavailable") >= 1
        assert logs.count("mqtt_unavailable") == logs.count("mqtt_connected") - 1, logs
    finally:
        broker.cleanup()


async def test_restart_delivers_events_spooled_by_the_previous_run(
    tmp_path: Path, make_daemon: Callable[[int], DaemonProcess]
) -> None:
    broker = Mosquitto()  # not started yet: the first run has no broker
    first = make_daemon(broker.port)
    first.start()
    wait_until(lambda: spooled(tmp_path / "state") >= 8, "events spooled with no broker")
    assert first.stop() == 0
    left = spooled(tmp_path / "state")
    assert left >= 8
    broker.start()
    try:
        async with MqttWatcher(broker.port, f"{ROOT}/+/+/event") as watcher:
            second = make_daemon(broker.port)
            second.start()
            await watcher.wait_for(is_event, count=left + 3)
            assert second.stop() == 0
        boots = list(dict.fromkeys(m.json()["data"]["boot"] for m in watcher.matching(is_event)))
        assert len(boots) == 2  # the first run's events, then the second run's
        first_run = [
            m.json()["data"]["seq"] for m in watcher.matching(is_event) if m.json()["data"]["boot"] == boots[0]
        ]
        assert len(first_run) == left  # every spooled event of the first run, once
        assert first_run == list(range(first_run[0], first_run[0] + len(first_run)))
        assert spooled(tmp_path / "state") == 0
    finally:
        broker.cleanup()
