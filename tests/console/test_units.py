"""Small parts: pattern detection and its rate limit (manual clock), ring buffer, escape keys, --since, config."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from rackd.cli.console_cmd import EscapeParser, add_parser, parse_since, socket_path
from rackd.console.config import ConsoleConfig, ConsoleSettings, PatternConfig
from rackd.console.frames import Kind
from rackd.console.patterns import DEFAULT_PATTERNS, PatternDetector, clean_line
from rackd.console.ring import RingBuffer
from rackd.console.session import Attachment
from rackd.control.peers import Peer
from rackd.control.protocol import Role
from rackd.model import Severity
from rackd.testing.clock import ManualClock


def detector(clock: ManualClock, interval: float = 60.0) -> PatternDetector:
    return PatternDetector(DEFAULT_PATTERNS, context_lines=3, interval=interval, clock=clock)


@pytest.mark.parametrize(
    ("line", "name"),
    [
        (b"[  12.3] Kernel panic - not syncing: Fatal exception\r\n", "kernel_panic"),
        (b"[  12.3] Oops: 0002 [#1] PREEMPT SMP NOPTI\r\n", "kernel_oops"),
        (b"watchdog: BUG: soft lockup - CPU#12 stuck for 22s! [python3:4711]\r\n", "soft_lockup"),
        (b"INFO: task kworker/3:1:123 blocked for more than 120 seconds.\r\n", "hung_task"),
        (b"mce: [Hardware Error]: Machine check events logged\r\n", "machine_check"),
        (b"python3 invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP)\r\n", "oom_killer"),
        (b"NVRM: Xid (PCI:0000:3b:00): 79, pid=4711, name=python3, GPU has fallen off the bus.\r\n", "nvidia_xid"),
        (b"\x1b[0mgpu-01 login: ", "login_prompt"),  # no newline after a prompt: matched while unfinished
    ],
)
async def test_default_patterns(line: bytes, name: str) -> None:
    (match,) = detector(ManualClock()).feed(line)
    assert match.name == name


async def test_repeats_are_held_back_then_counted_in_the_next_event() -> None:
    clock = ManualClock()
    patterns = detector(clock, interval=60)
    xid = b"NVRM: Xid (PCI:0000:3b:00): 48, DBE\r\n"
    assert len(patterns.feed(b"before 1\nbefore 2\n" + xid)) == 1
    assert patterns.feed(xid * 5) == []
    await clock.advance(61)
    (match,) = patterns.feed(xid)
    assert match.suppressed == 5
    assert match.severity is Severity.CRITICAL


async def test_lines_split_across_chunks_and_context_and_prompt_fires_once() -> None:
    patterns = detector(ManualClock())
    assert patterns.feed(b"boot ok\r\nKernel pa") == []
    (panic,) = patterns.feed(b"nic - not syncing: x\r\n")
    assert panic.line == "Kernel panic - not syncing: x"
    assert panic.context == ("boot ok",)
    (prompt,) = patterns.feed(b"gpu-01 login: ")
    assert prompt.name == "login_prompt"
    assert patterns.feed(b"root\r\n") == []  # the completed prompt line does not fire again


def test_clean_line_strips_escapes_and_overwritten_text() -> None:
    assert clean_line(b"\x1b[1;32m[  OK  ]\x1b[0m Started\r") == "[  OK  ] Started"
    assert clean_line(b"10%\r50%\r100%") == "100%"


def test_configured_patterns_override_defaults_by_name() -> None:
    settings = ConsoleSettings(patterns=[PatternConfig(name="nvidia_xid", regex=r"Xid .*: (?:48|79)\b")])
    assert settings.patterns[0].severity is Severity.WARNING
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        PatternConfig(name="bad", regex="(")


def test_ring_buffer_keeps_the_newest_bytes() -> None:
    ring = RingBuffer(10)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ring.append(t0, b"abc\ndef\n")
    ring.append(t0 + dt.timedelta(seconds=5), b"ghi\njk")
    assert ring.contents() == b"def\nghi\njk"
    assert len(ring) == 10
    assert ring.tail(1) == b"jk"
    assert ring.tail(2) == b"ghi\njk"
    assert ring.since(t0 + dt.timedelta(seconds=1)) == b"ghi\njk"
    ring.append(t0, b"x" * 25)
    assert ring.contents() == b"x" * 10


def test_escape_keys() -> None:
    parser = EscapeParser("&")
    assert parser.feed(b"ls && echo &x") == [(Kind.INPUT, b"ls & echo &x")]
    assert parser.feed(b"a&") == [(Kind.INPUT, b"a")]
    assert parser.feed(b".") == [(Kind.DETACH, b"")]  # an escape split across reads still works
    assert parser.feed(b"&B&l&W&F&?") == [
        (Kind.BREAK, b""),
        (Kind.REPLAY, b""),
        (Kind.WHO, b""),
        (Kind.TAKE, b""),
        ("help", b""),
    ]


def test_since_accepts_relative_and_absolute_times() -> None:
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert parse_since("5m", now) == "2026-01-01T11:55:00+00:00"
    assert parse_since("2026-01-01T10:00:00") == "2026-01-01T10:00:00+00:00"


@pytest.mark.parametrize("url", ["ipmi-sol", "tcp://10.0.2.5:7001", "rfc2217://h:7001?baud=9600", "ssh://c@h:22"])
def test_console_urls_accepted(url: str) -> None:
    assert ConsoleConfig(url=url).url == url


@pytest.mark.parametrize(("url", "problem"), [("ftp://h:1", "must be 'ipmi-sol'"), ("tcp://h", "host and port")])
def test_console_urls_refused(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        ConsoleConfig(url=url)


def test_settings_refuse_a_timestamp_that_would_break_the_log_format() -> None:
    with pytest.raises(ValidationError, match="separate the log"):
        ConsoleSettings(timestamp_format="%H:%M | %S")


def test_socket_is_found_from_the_config_without_reading_its_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rackd.toml"
    config.write_text('[daemon]\ncontrol_socket = "/run/x/control.sock"\n[mqtt]\npassword = { file = "/nope" }\n')
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_parser(sub)
    monkeypatch.delenv("RACKD_DAEMON__CONTROL_SOCKET", raising=False)
    assert socket_path(parser.parse_args(["console", "n1", "-c", str(config)])) == Path("/run/x/control.sock")
    assert socket_path(parser.parse_args(["console", "n1"])) == Path("/run/rackd/control.sock")
    monkeypatch.setenv("RACKD_DAEMON__CONTROL_SOCKET", "/tmp/e.sock")
    assert socket_path(parser.parse_args(["console", "n1", "-c", str(config)])) == Path("/tmp/e.sock")
    assert socket_path(parser.parse_args(["console", "n1", "--socket", "/s"])) == Path("/s")


def test_a_watcher_that_falls_too_far_behind_is_cut_off_not_buffered_without_bound() -> None:
    peer = Peer(pid=1, uid=0, gid=0, groups=frozenset(), user="root", role=Role.ADMIN)
    attachment = Attachment(peer, 0.0, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), limit=100)
    attachment.send(Kind.OUTPUT, b"x" * 50)
    assert not attachment.overflowed.is_set()
    attachment.send(Kind.OUTPUT, b"y" * 50)  # 2 x (5 header + 50) > 100
    assert attachment.overflowed.is_set()
    assert attachment.queue.qsize() == 1
