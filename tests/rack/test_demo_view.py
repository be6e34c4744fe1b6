"""The demo's live view in a real terminal (tmux): live figures within seconds, keys work, `q` leaves nothing behind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import SMALL_RACK, pid_alive

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

LIVE_ROW = re.compile(r"gpu-01\s+on\s+[\d,]+\s+[\d,]+\s+\d+ C\s+\w+\s+up\s+login")
RACK_ROW = re.compile(r"RACK\s+[\d,]+ of 30,000 W budget\s+\d+%")
FEED_ROW = re.compile(r"^\s+A\s+[\d,]+\s+\d+%\s+L1 [\d.]+", re.MULTILINE)


class Terminal:
    """A tmux server of our own (own socket) with one 160x50 window."""

    def __init__(self, socket_name: str) -> None:
        self.socket_name = socket_name

    def tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-L", self.socket_name, *args], capture_output=True, text=True, check=True)
        return result.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "demo")

    def press_until(self, key: str, condition: Callable[[str], bool], what: str, tries: int = 3) -> str:
        """Press `key` until `condition` shows: a key pressed while the view is busy redrawing can be missed."""
        for attempt in range(1, tries + 1):
            self.tmux("send-keys", "-t", "demo", key)
            try:
                return self.wait_for(condition, 10, what)
            except AssertionError:
                if attempt == tries:
                    raise
        raise AssertionError(what)

    def pane_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", "demo", "#{pane_pid}").strip())

    def wait_for(self, condition: Callable[[str], bool], within: float, what: str) -> str:
        deadline = time.monotonic() + within
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not on screen within {within} s; screen:\n{screen}")
            time.sleep(0.2)  # polling the terminal under the deadline above, not synchronising


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(f"rackd-test-{os.getpid()}")
    home = tmp_path / "home"
    # After the demo, the pane shows its exit status and stays open (cat waits on the terminal) for the test.
    command = (
        f"{sys.executable} -m rackd.cli.demo --spec {SMALL_RACK} --dir {home} 2>{tmp_path / 'demo.stderr'};"
        " echo demo exited: $?; exec cat"
    )
    term.tmux("new-session", "-d", "-s", "demo", "-x", "160", "-y", "50", command)
    started = term.pane_pid()
    seen: set[int] = set()
    try:
        yield term
    finally:
        seen |= descendants(started)
        subprocess.run(["tmux", "-L", term.socket_name, "kill-server"], check=False, capture_output=True)
        for pid in seen:
            if pid_alive(pid):
                os.kill(pid, 9)


def test_view_shows_live_figures_and_quits_leaving_no_process(terminal: Terminal) -> None:
    # A capture can land mid-redraw: wait until the whole screen (figures and the hints below them) is there.
    terminal.wait_for(
        lambda s: bool(
            LIVE_ROW.search(s)
            and RACK_ROW.search(s)
            and FEED_ROW.search(s)
            and "mosquitto_sub -h 127.0.0.1 -p" in s
            and "rackd status -c" in s
        ),
        60,
        "live figures and the hints",
    )
    children = descendants(terminal.pane_pid())
    assert len(children) >= 5, children  # mosquitto, rack, 2 BMCs, daemon
    # A key injects a fault through the rack: a GPU Xid on gpu-01's console comes back as a rackd event.
    terminal.press_until("f", lambda s: "fault: 1 BMC hang" in s, "the fault menu")
    terminal.tmux("send-keys", "-t", "demo", "6")
    terminal.wait_for(lambda s: bool(re.search(r"gpu-01\s+critical console_pattern", s)), 30, "the Xid event")
    # A PDU fault from the keyboard: rackd reports the silent PDU unreachable.
    terminal.press_until("p", lambda s: "PDU fault: 1 pdu-a timeout" in s, "the PDU fault menu")
    terminal.tmux("send-keys", "-t", "demo", "2")
    terminal.wait_for(lambda s: bool(re.search(r"pdu-b\s+warning\s+unreachable", s)), 30, "pdu-b unreachable")
    terminal.tmux("send-keys", "-t", "demo", "q")
    terminal.wait_for(lambda s: "demo exited: 0" in s, 60, "the demo's exit")
    deadline = time.monotonic() + 30
    while alive := [pid for pid in children if pid_alive(pid)]:
        assert time.monotonic() < deadline, f"left behind: {alive}"
        time.sleep(0.2)  # children are reaped by the demo as it stops; polled under the deadline above
