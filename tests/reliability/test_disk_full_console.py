"""A full console log dir: the daemon holds console output in memory, says so (log line and MQTT event), does not
crash, and when space returns writes the held output in order with the times it arrived; past the bound it says
exactly how many bytes were not logged, and over what time.

The console log dir is a 512 KiB tmpfs filled to ENOSPC; the console is the console-server simulator; the daemon,
the broker and the MQTT subscriber are the real ones.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import pytest_asyncio
from rackd_sim.console_server.harness import wait_for
from rackd_sim.console_server.machine import LoginState
from rackd_sim.console_server.server import ConsoleServerSim

from rackd.console.logfile import HOLD_BYTES
from rackd.console.logformat import device_bytes, markers, parse_lines
from rackd.testing.broker import Mosquitto
from rackd.testing.processes import DaemonProcess
from rackd.testing.small_disk import fill, mounted_tmpfs
from rackd.testing.watcher import MqttWatcher, Received

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs as the console log dir"),
]

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "schemas" / "event.schema.json").read_text())
FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
STAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z [|#%] ")
TOPIC = "rackd/v1/lab/r1/gpu-01/event"
SENTINEL = "[ 4242.000001] Out of memory: Killed process 4711 (python3)"  # a console_pattern event: all read


@pytest.fixture
def small_disk() -> Iterator[Path]:
    with mounted_tmpfs("512k", prefix="rackd-console-full-") as disk:
        yield disk


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[ConsoleServerSim]:
    server = ConsoleServerSim(["node1"], baud=0, boot_speed=0)  # unpaced: the outage output arrives at once
    await server.start()
    yield server
    await server.close()


def event(kind: str) -> Callable[[Received], bool]:
    def matches(message: Received) -> bool:
        payload = message.json()
        return bool(payload["type"] == kind and payload["source"] == "console_log")

    return matches


def is_sentinel(message: Received) -> bool:
    payload = message.json()
    return bool(payload["type"] == "console_pattern" and payload["data"]["line"].endswith(SENTINEL))


def stamp_of(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, FORMAT).replace(tzinfo=dt.UTC)


def well_formed(content: bytes) -> None:
    for line in content.split(b"\n")[:-1]:
        assert STAMP.match(line), line[:80]


class Rig:
    """The daemon with one console on the simulator, its log on the small disk."""

    def __init__(self, sim: ConsoleServerSim, broker: Mosquitto, disk: Path, tmp_path: Path) -> None:
        self.endpoint = sim["node1"]
        self.console = self.endpoint.console
        self.disk = disk
        self.log = disk / "gpu-01.log"
        config = tmp_path / "rackd.toml"
        config.write_text(
            textwrap.dedent(f"""
            [site]
            name = "lab"
            [daemon]
            state_dir = "{tmp_path}/state"
            control_socket = "{tmp_path}/control.sock"
            console_log_dir = "{disk}"
            shutdown_grace = 5
            [mqtt]
            url = "mqtt://127.0.0.1:{broker.port}"
            [[node]]
            id = "gpu-01"
            rack = "r1"
            console = {{ url = "tcp://127.0.0.1:{self.endpoint.ports["raw"]}" }}
            """)
        )
        self.daemon = DaemonProcess(config, tmp_path / "daemon.log")

    async def started(self) -> None:
        self.daemon.start()
        await wait_for(lambda: bool(self.endpoint.records_of("raw")), within=30, what="rackd connected")
        self.console.power_on()
        await wait_for(lambda: self.console.state is LoginState.LOGIN, what="booted")
        await self.console.drained()
        await wait_for(lambda: self.log.exists() and b"login: " in self.log.read_bytes(), what="boot log written")
        self.console.println("")  # end the prompt's line: each outage line starts a line of its own
        await wait_for(lambda: self.log.read_bytes().endswith(b"login: \r\n"), what="prompt line ended")

    @property
    def sent(self) -> bytes:
        return bytes(self.endpoint.records_of("raw")[0].sent)

    async def logged(self, name: str, within: float = 30) -> dict[str, Any]:
        await wait_for(lambda: bool(self.daemon.logged(name)), within=within, what=f"{name} in the daemon log")
        return self.daemon.logged(name)[0]

    def alive(self) -> None:
        assert self.daemon.process is not None
        assert self.daemon.process.poll() is None


async def outage(rig: Rig, watcher: MqttWatcher, lines: list[str]) -> tuple[dt.datetime, dt.datetime, dict[str, Any]]:
    """Fill the disk, print `lines` and the sentinel, check the degraded mode, free the disk; returns its times."""
    filler = fill(rig.disk)
    filled_at = dt.datetime.now(dt.UTC)
    for line in lines:
        rig.console.println(line)
    rig.console.println(SENTINEL)
    await rig.console.drained()
    # The pattern event is raised after the line was handed to the log: every line before it was too.
    await watcher.wait_for(is_sentinel, within=30)
    failed = await rig.logged("console_log_write_failed")
    assert failed["level"] == "error"
    assert failed["node"] == "gpu-01"
    assert failed["error"] == "No space left on device"
    (degraded,) = await watcher.wait_for(event("unreachable"))
    payload = degraded.json()
    assert payload["severity"] == "warning"
    assert payload["data"]["error"] == "No space left on device"
    assert payload["data"]["hold_limit_bytes"] == HOLD_BYTES
    assert SENTINEL.encode() not in rig.log.read_bytes()  # held in memory, not written
    rig.alive()  # degraded, not dead
    freed_at = dt.datetime.now(dt.UTC)
    filler.unlink()
    # Nothing more is printed: the daemon's own retry writes the held output once there is room.
    (recovered,) = await watcher.wait_for(event("recovered"), within=30)
    assert SENTINEL.encode() in rig.log.read_bytes()
    rig.alive()
    # Once per episode, however many chunks the full disk refused.
    assert len(rig.daemon.logged("console_log_write_failed")) == 1
    assert len(watcher.matching(event("unreachable"))) == 1
    for message in (degraded, recovered):
        jsonschema.validate(message.json(), SCHEMA)
    return filled_at, freed_at, recovered.json()


async def test_output_during_a_full_console_disk_is_held_and_written_when_space_returns(
    broker: Mosquitto, sim: ConsoleServerSim, small_disk: Path, tmp_path: Path
) -> None:
    rig = Rig(sim, broker, small_disk, tmp_path)
    lines = [f"outage line {number:03d} " + "x" * 100 for number in range(150)]  # ~17 KiB: within the bound
    try:
        async with MqttWatcher(broker.port, TOPIC) as watcher:
            await rig.started()
            filled_at, freed_at, recovered = await outage(rig, watcher, lines)
            assert recovered["severity"] == "info"
            assert recovered["data"]["lost_bytes"] == 0
            logged = await rig.logged("console_log_write_recovered")
            assert logged["lost_bytes"] == 0
            content = rig.log.read_bytes()
            well_formed(content)
            assert device_bytes([content]) == rig.sent  # every byte, once, in order, none corrupted
            held = [line for line in parse_lines(content) if line.kind == "data" and b"outage line" in line.text]
            assert len(held) == len(lines)
            for line in held:  # stamped when they arrived, during the outage, not when written
                assert filled_at <= stamp_of(line.stamp.decode()) <= freed_at
            assert any(note.startswith("log writes failed from ") for note in markers([content]))
            assert not any("not logged" in note for note in markers([content]))
            assert rig.daemon.stop() == 0
    finally:
        rig.daemon.cleanup()
    assert device_bytes([rig.log.read_bytes()]) == rig.sent
    assert markers([rig.log.read_bytes()])[-1] == "rackd stopping: console no longer captured"


async def test_output_past_the_bound_is_counted_exactly_in_a_marker(
    broker: Mosquitto, sim: ConsoleServerSim, small_disk: Path, tmp_path: Path
) -> None:
    rig = Rig(sim, broker, small_disk, tmp_path)
    lines = [f"flood line {number:05d} " + "y" * 100 for number in range(4000)]  # ~460 KiB: past the bound
    try:
        async with MqttWatcher(broker.port, TOPIC) as watcher:
            await rig.started()
            filled_at, freed_at, recovered = await outage(rig, watcher, lines)
            dropped = await rig.logged("console_log_output_dropped")
            assert dropped["level"] == "warning"
            assert len(rig.daemon.logged("console_log_output_dropped")) == 1
            content = rig.log.read_bytes()
            well_formed(content)
            notes = [note for note in markers([content]) if "bytes not logged:" in note]
            assert len(notes) == 1, notes
            found = re.fullmatch(r"(\d+) bytes not logged: No space left on device from (\S+) to (\S+)", notes[0])
            assert found, notes[0]
            lost = int(found[1])
            assert recovered["severity"] == "warning"
            assert recovered["data"]["lost_bytes"] == lost
            assert (await rig.logged("console_log_write_recovered"))["lost_bytes"] == lost
            outage_bytes = sum(len(line) + 2 for line in lines) + len(SENTINEL) + 2
            # At most the bound is held (with timestamps), less what the file took before the disk was full.
            assert outage_bytes - HOLD_BYTES - (64 << 10) <= lost < outage_bytes - HOLD_BYTES // 2
            # Exactly `lost` bytes are missing, in one piece; the newest output of the outage was kept.
            sent, got = rig.sent, device_bytes([content])
            assert len(got) == len(sent) - lost
            kept = next((i for i, (a, b) in enumerate(zip(got, sent, strict=False)) if a != b), len(got))
            assert got == sent[:kept] + sent[kept + lost :]
            assert got.endswith(SENTINEL.encode() + b"\r\n")
            assert filled_at <= stamp_of(found[2]) <= stamp_of(found[3]) <= freed_at
            assert rig.daemon.stop() == 0
    finally:
        rig.daemon.cleanup()
