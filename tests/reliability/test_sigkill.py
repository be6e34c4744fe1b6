"""The daemon SIGKILLed at random points, again and again: it restarts clean, the spool and the command store stay
intact, no action runs twice, and no event spooled before a kill is lost. RACKD_SOAK_KILLS sets the count (CI: 10)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import textwrap
from pathlib import Path

import aiomqtt
import pytest

from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess
from rackd.testing.watcher import MqttWatcher, Received

pytestmark = pytest.mark.integration
KILLS = int(os.environ.get("RACKD_SOAK_KILLS", "10"))
ROOT = "rackd/v1/lab/r1/gpu-01"


def integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        result: str = db.execute("PRAGMA integrity_check").fetchone()[0]
        return result


def is_record(m: Received) -> bool:
    return m.topic == f"{ROOT}/event" and m.json()["type"] == "log_entry"


async def test_repeated_sigkill_loses_nothing_and_never_repeats_an_action(broker: Mosquitto, tmp_path: Path) -> None:
    rng = random.Random(20261122)
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
        [defaults]
        poll_interval = 0.1
        [actions]
        min_interval = 0
        cycle_off_time = 0.3
        verify_interval = 0.05
        [[node]]
        id = "gpu-01"
        rack = "r1"
        bmc = {{ driver = "fake", host = "a", log_entries_per_poll = 1 }}
    """)
    )
    commands = []
    async with MqttWatcher(broker.port, f"{ROOT}/#") as watcher:
        for run in range(KILLS):
            daemon = DaemonProcess(config, tmp_path / f"daemon-{run}.log")
            daemon.start()
            try:
                daemon.wait_for_log("daemon_ready")
                command_id = f"kill-{run}"
                commands.append(command_id)
                async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
                    await client.publish(
                        f"{ROOT}/cmd", json.dumps({"v": 1, "id": command_id, "action": "power.cycle"}), qos=1
                    )
                # A random kill point: after 0..6 more records, i.e. mid-poll, mid-cycle or mid-spool-write.
                seen = len(watcher.matching(is_record))
                await watcher.wait_for(is_record, count=seen + rng.randint(0, 6))
            finally:
                daemon.stop(signal.SIGKILL)
        final = DaemonProcess(config, tmp_path / "daemon-final.log")
        final.start()
        final.wait_for_log("daemon_ready")
        await watcher.wait_for(
            lambda m: (
                m.topic == f"{ROOT}/cmd/result"
                and m.json()["id"] == commands[-1]
                and m.json()["status"] in {"succeeded", "interrupted", "failed", "rejected"}
            )
        )
        assert final.stop() == 0
    state = tmp_path / "state"
    assert integrity(state / "spool.sqlite3") == "ok"
    assert integrity(state / "commands.sqlite3") == "ok"
    # Every command has a final outcome and was carried out at most once.
    with contextlib.closing(sqlite3.connect(state / "commands.sqlite3")) as db:
        statuses = dict(db.execute("SELECT id, status FROM commands").fetchall())
    # A command killed before the daemon read it off the broker is not queued for later — a stale power action
    # is worse than none; its client sees no result and retries with the same id. Every command the daemon did
    # read has a final outcome.
    assert set(statuses) <= set(commands)
    assert len(statuses) >= len(commands) // 2
    assert set(statuses.values()) <= {"succeeded", "interrupted", "failed", "rejected"}
    audit = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines() if line.strip()]
    runs = [r["command_id"] for r in audit if r.get("status") == "running"]
    assert len(runs) == len(set(runs)), "an action ran twice"
    started = [
        m.json()["data"]["command_id"]
        for m in watcher.matching(lambda m: m.topic == f"{ROOT}/event" and m.json()["type"] == "action_started")
    ]
    assert len(started) == len(set(started)), "an action started twice"
    # Per daemon run (boot), the delivered records have no holes.
    by_boot: dict[str, list[int]] = {}
    for message in watcher.matching(is_record):
        data = message.json()["data"]
        by_boot.setdefault(data["boot"], []).append(data["seq"])
    for boot, seqs in by_boot.items():
        unique = sorted(set(seqs))
        assert unique == list(range(unique[0], unique[-1] + 1)), f"records lost in run {boot}"
