"""The console log on a real full disk (a small tmpfs filled to ENOSPC): output held in memory with its original
timestamps and written in order when space returns; a short write neither repeats nor splits bytes; past the
bound the oldest held output is dropped and a marker says exactly how much; the file is retried at most every
second; rotation and a SIGHUP reopen wait for the held output.

The daemon-level proof (events on MQTT, the structured log) is tests/reliability/test_disk_full_console.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackd.console.logfile import RETRY_INTERVAL, ConsoleLog, Outage
from rackd.console.logformat import device_bytes, log_files, markers, parse_lines
from rackd.testing.clock import ManualClock
from rackd.testing.small_disk import PAGE, fill, mounted_tmpfs


def holding(console_log: ConsoleLog) -> bool:
    """`console_log.failing`, read afresh (mypy would keep an asserted property narrowed across the writes)."""
    return console_log.failing


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
STAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z [|#%] ")


@pytest.fixture
def disk() -> Iterator[Path]:
    with mounted_tmpfs("128k", prefix="rackd-console-full-") as mount_point:
        yield mount_point


def contents(path: Path) -> list[bytes]:
    return [p.read_bytes() for p in log_files(path)]


def assert_well_formed(path: Path) -> None:
    for content in contents(path):
        for line in content.split(b"\n")[:-1]:
            assert STAMP.match(line), line[:80]


class Recorder:
    def __init__(self, console_log: ConsoleLog) -> None:
        self.failing: list[str] = []
        self.recovered: list[Outage] = []
        console_log.on_failing = self.failing.append
        console_log.on_recovered = self.recovered.append


async def test_held_output_is_written_in_order_with_its_own_timestamps(disk: Path) -> None:
    clock = ManualClock()
    path = disk / "gpu-01.log"
    console_log = ConsoleLog(path, clock, FORMAT, 1 << 20, 3)
    seen = Recorder(console_log)
    sent = bytearray(b"before the disk filled\r\n")
    console_log.write_device(bytes(sent))
    filler = fill(disk)
    size_before = path.stat().st_size
    # More than the slack left in the file's last page: the kernel takes part of it, then says ENOSPC.
    stamps: dict[bytes, str] = {}
    for number in range(40):
        line = f"held {number:02d} ".encode() + b"x" * 200 + b"\r\n"
        stamps[line] = clock.now().strftime(FORMAT)
        console_log.write_device(line)
        sent += line
        await clock.advance(0.1)
    console_log.mark("power: cycle requested by alice")
    assert holding(console_log)
    assert seen.failing == ["No space left on device"]  # once per episode, not once per write
    size_failed = path.stat().st_size
    assert size_failed > size_before  # the short write really happened…
    assert size_failed % PAGE == 0  # …up to the end of the last page
    filler.unlink()
    await clock.advance(RETRY_INTERVAL)
    console_log.write_device(b"after\r\n")
    sent += b"after\r\n"
    assert not holding(console_log)
    assert console_log.held_bytes == 0
    assert len(seen.recovered) == 1
    assert seen.recovered[0].lost_bytes == 0
    content = path.read_bytes()
    assert_well_formed(path)
    assert device_bytes([content]) == bytes(sent)  # nothing repeated, split or lost
    notes = markers([content])
    assert notes[0] == "power: cycle requested by alice"
    assert re.fullmatch(
        r"log writes failed from \S+ to \S+ \(No space left on device\): output held in memory, written late", notes[1]
    )
    assert len(notes) == 2
    for parsed in parse_lines(content):
        if parsed.kind == "data" and parsed.text in stamps:
            assert parsed.stamp.decode() == stamps[parsed.text]  # stamped when it arrived, not when written


async def test_a_full_disk_is_retried_at_most_every_second(disk: Path) -> None:
    clock = ManualClock()
    path = disk / "n.log"
    console_log = ConsoleLog(path, clock, FORMAT, 1 << 20, 3)
    console_log.write_device(b"start\n")
    filler = fill(disk)
    console_log.write_device(b"y" * 3 * PAGE)  # fills the last page, then fails
    assert holding(console_log)
    size = path.stat().st_size
    filler.unlink()  # room again, but the file is not tried before a second has passed
    await clock.advance(RETRY_INTERVAL / 2)
    console_log.write_device(b"z\n")
    assert holding(console_log)
    assert path.stat().st_size == size
    await clock.advance(RETRY_INTERVAL / 2)
    console_log.retry()  # what the session's timer does for a console that went quiet
    assert not holding(console_log)
    assert device_bytes([path.read_bytes()]) == b"start\n" + b"y" * 3 * PAGE + b"z\n"


async def test_past_the_bound_the_oldest_output_is_dropped_and_counted(disk: Path) -> None:
    clock = ManualClock()
    path = disk / "n.log"
    console_log = ConsoleLog(path, clock, FORMAT, 1 << 20, 3, hold_bytes=16 * 1024)
    seen = Recorder(console_log)
    console_log.write_device(b"before\n")
    filler = fill(disk)
    sent = bytearray(b"before\n")
    when: list[str] = []
    for number in range(400):
        line = f"line {number:03d} ".encode() + b"o" * 90 + b"\n"
        when.append(clock.now().strftime(FORMAT))
        console_log.write_device(line)
        sent += line
        await clock.advance(0.01)
    assert console_log.held_bytes <= 16 * 1024
    filler.unlink()
    await clock.advance(RETRY_INTERVAL)
    console_log.retry()
    assert not holding(console_log)
    content = path.read_bytes()
    assert_well_formed(path)
    note, summary = markers([content])
    assert summary.endswith(" bytes not logged (see above)")
    found = re.fullmatch(r"(\d+) bytes not logged: No space left on device from (\S+) to (\S+)", note)
    assert found, note
    lost = int(found[1])
    got = device_bytes([content])
    # Exactly `lost` bytes are missing, in one piece: what was written before, then the newest held output.
    assert len(got) == len(sent) - lost
    common = next((i for i, (a, b) in enumerate(zip(got, sent, strict=False)) if a != b), len(got))
    kept = sent.rfind(b"\n", 0, common) + 1  # whole held pieces are dropped: here, whole lines
    assert got == bytes(sent[:kept]) + bytes(sent[kept + lost :])
    assert lost >= len(sent) - 16 * 1024
    # The time span is that of the dropped lines: from the first to the last dropped one.
    first_dropped = sent[kept : kept + lost]
    numbers = sorted({int(n) for n in re.findall(rb"line (\d{3}) ", bytes(first_dropped))})
    assert found[2] == when[numbers[0]]
    assert found[3] == when[numbers[-1]]
    assert len(seen.recovered) == 1
    assert seen.recovered[0].lost_bytes == lost


async def test_rotation_and_a_sighup_reopen_wait_for_the_held_output(disk: Path) -> None:
    clock = ManualClock()
    path = disk / "n.log"
    console_log = ConsoleLog(path, clock, FORMAT, rotate_bytes=8192, rotate_keep=3)
    console_log.write_device(b"old file\n")
    filler = fill(disk)
    sent = bytearray(b"old file\n")
    for number in range(100):  # well past rotate_bytes: no rotation while output is held
        chunk = f"{number:03d} ".encode() + b"r" * 120 + b"\n"
        console_log.write_device(chunk)
        sent += chunk
    assert holding(console_log)
    assert log_files(path) == [path]
    path.rename(disk / "n.log.1")  # logrotate renames the file and sends SIGHUP
    console_log.reopen()
    assert not path.exists()  # the held output belongs in the renamed file: reopen waits for it
    filler.unlink()
    await clock.advance(RETRY_INTERVAL)
    console_log.retry()
    assert not holding(console_log)
    console_log.write_device(b"new file\n")
    sent += b"new file\n"
    assert_well_formed(path)
    assert device_bytes(contents(path)) == bytes(sent)
    old = (disk / "n.log.1").read_bytes()
    assert b"r" * 120 + b"\n" in old
    assert "log reopened (SIGHUP)" in markers([old])
    assert b"new file" in path.read_bytes()


async def test_close_while_the_disk_is_full_says_what_is_lost(disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    path = disk / "n.log"
    console_log = ConsoleLog(path, clock, FORMAT, 1 << 20, 3)
    console_log.write_device(b"start\n")
    fill(disk)
    console_log.write_device(b"q" * 3 * PAGE)
    console_log.close()
    assert console_log.held_bytes == 0
    assert "console_log_unwritten_at_close" in capsys.readouterr().out
    assert_well_formed(path)
