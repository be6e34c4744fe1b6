"""A full state dir: the daemon degrades (events held in memory, cursor in memory), says so, and loses nothing."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess, wait_until
from rackd.testing.small_disk import fill, mounted_tmpfs
from rackd.testing.watcher import MqttWatcher, Received

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs as the state dir"),
]


@pytest.fixture
def small_disk() -> Iterator[Path]:
    with mounted_tmpfs("512k") as disk:
        yield disk


def spooled(path: Path) -> int:
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            count: int = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
        return count


def is_record(m: Received) -> bool:
    return m.topic.endswith("/gpu-01/event") and m.json()["type"] == "log_entry"


async def test_full_state_dir_degrades_and_recovers_without_loss(small_disk: Path, tmp_path: Path) -> None:
    broker = Mosquitto(persistence=True)
    broker.start()
    config = tmp_path / "rackd.toml"
    config.write_text(
        textwrap.dedent(f"""
        [site]
        name = "lab"
        [daemon]
        state_dir = "{small_disk}"
        control_socket = "{tmp_path}/control.sock"
        [mqtt]
        url = "mqtt://127.0.0.1:{broker.port}"
        [defaults]
        poll_interval = 0.2
        [[node]]
        id = "gpu-01"
        rack = "r1"
        bmc = {{ driver = "fake", host = "a", log_entries_per_poll = 1 }}
    """)
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        async with MqttWatcher(broker.port, "rackd/v1/lab/+/+/event", client_id="w", persistent=True) as watcher:
            broker.stop()  # the watcher's durable session is saved; the daemon starts with no broker
            daemon.start()
            wait_until(lambda: spooled(small_disk / "spool.sqlite3") >= 5, "events spooled")
            filler = fill(small_disk)
            daemon.wait_for_log("spool_write_failed")
            daemon.wait_for_log("cursor_write_failed")
            assert daemon.process is not None
            assert daemon.process.poll() is None  # degraded, not dead
            filler.unlink()
            daemon.wait_for_log("spool_recovered")
            broker.start()
            await watcher.wait_for(is_record, count=spooled(small_disk / "spool.sqlite3") + 10, within=30)
        seqs = list(dict.fromkeys(m.json()["data"]["seq"] for m in watcher.matching(is_record)))
        missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
        assert not missing, f"lost {missing}"
        assert seqs == sorted(seqs)
    finally:
        daemon.cleanup()
        broker.cleanup()
