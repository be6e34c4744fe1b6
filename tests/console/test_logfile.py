"""The console log: byte-exact under random chunking, markers and rotation; 0640; reopen after logrotate."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
from pathlib import Path

from rackd.console.logfile import ConsoleLog
from rackd.console.logformat import device_bytes, log_files, markers, output_since, parse_lines
from rackd.testing.clock import ManualClock

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
STAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z [|#%] ")


def contents(path: Path) -> list[bytes]:
    return [p.read_bytes() for p in log_files(path)]


def test_random_chunks_markers_and_rotations_keep_every_byte(tmp_path: Path) -> None:
    rng = random.Random(7)
    clock = ManualClock()
    path = tmp_path / "gpu-01.log"
    console_log = ConsoleLog(path, clock, FORMAT, rotate_bytes=4096, rotate_keep=1000)
    sent = bytearray()
    for step in range(3000):
        kind = rng.random()
        if kind < 0.05:
            console_log.mark(f"marker {step}")
        else:
            alphabet = b"ab \r\n\xff\x00|#%" if kind < 0.5 else b"x"  # long lines force split rotations
            chunk = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 200)))
            console_log.write_device(chunk)
            sent += chunk
        clock._now += 0.001
    console_log.close()
    files = log_files(path)
    assert len(files) > 10  # several rotations happened
    assert device_bytes(contents(path)) == bytes(sent)
    for content in contents(path):
        for line in content.split(b"\n")[:-1]:
            assert STAMP.match(line), line[:60]
    notes = markers(contents(path))
    assert sum(n.startswith("log rotated") for n in notes) == len(files) - 1
    assert any(line.kind == "break" for c in contents(path) for line in parse_lines(c))  # some split a line


def test_files_are_0640_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        console_log = ConsoleLog(tmp_path / "n.log", ManualClock(), FORMAT, 4096, 3)
        console_log.write_device(b"hello\n")
        console_log.rotate()
        console_log.write_device(b"again\n")
    finally:
        os.umask(old)
    for path in log_files(tmp_path / "n.log"):
        assert path.stat().st_mode & 0o777 == 0o640


def test_marker_inside_a_console_line_is_marked_as_an_interruption(tmp_path: Path) -> None:
    path = tmp_path / "n.log"
    console_log = ConsoleLog(path, ManualClock(), FORMAT, 1 << 20, 3)
    console_log.write_device(b"login: ")
    console_log.mark("power: cycle requested by alice")
    console_log.write_device(b"root\r\n")
    kinds = [(line.kind, line.text) for line in parse_lines(path.read_bytes())]
    assert kinds == [("data", b"login: \n"), ("break", b"power: cycle requested by alice\n"), ("data", b"root\r\n")]
    assert device_bytes([path.read_bytes()]) == b"login: root\r\n"


def test_a_previous_run_that_stopped_mid_line_is_continued_correctly(tmp_path: Path) -> None:
    path = tmp_path / "n.log"
    first = ConsoleLog(path, ManualClock(), FORMAT, 1 << 20, 3)
    first.write_device(b"partial")
    first.close()
    second = ConsoleLog(path, ManualClock(), FORMAT, 1 << 20, 3)
    second.mark("connected")
    second.write_device(b" line\n")
    assert device_bytes([path.read_bytes()]) == b"partial line\n"


def test_reopen_after_an_external_rename_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "n.log"
    console_log = ConsoleLog(path, ManualClock(), FORMAT, 1 << 20, 3)
    console_log.write_device(b"one\ntw")
    path.rename(tmp_path / "n.log.1")  # what logrotate (create mode) does before sending SIGHUP
    console_log.write_device(b"o\n")  # still goes to the renamed file: nothing is lost before the signal
    console_log.reopen()
    console_log.write_device(b"three\n")
    assert path.exists()
    assert device_bytes(contents(path)) == b"one\ntwo\nthree\n"
    assert "log reopened (SIGHUP)" in markers([(tmp_path / "n.log.1").read_bytes()])


async def test_output_since_reads_back_through_rotated_files_from_a_time(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "n.log"
    console_log = ConsoleLog(path, clock, FORMAT, rotate_bytes=4096, rotate_keep=100)
    for minute in range(60):
        console_log.write_device(f"minute {minute:02d} ".encode() + b"x" * 200 + b"\r\n")
        console_log.mark(f"tick {minute}")
        await clock.advance(60)
    console_log.write_device(b"unfinished")
    assert len(log_files(path)) > 2
    since = clock.epoch + dt.timedelta(minutes=50)
    out = output_since(log_files(path), since, FORMAT, limit=1 << 20)
    assert out.startswith(b"minute 50 ")
    assert out.endswith(b"minute 59 " + b"x" * 200 + b"\r\nunfinished")
    assert output_since(log_files(path), since, FORMAT, limit=10) == b"unfinished"
