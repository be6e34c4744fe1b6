"""Fixtures of the virtual-rack tests: a headless `rackd demo` on the small, fast rack spec."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SMALL_RACK = Path(__file__).with_name("small-rack.toml")
READY_TIMEOUT = 90.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (and is not a zombie we could still reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class HeadlessDemo:
    """`python -m rackd.cli.demo --headless` with its ready line parsed."""

    home: Path
    process: subprocess.Popen[bytes] | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    output: bytes = b""

    def start(self) -> None:
        """Start the demo and wait (bounded) for its JSON ready line."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rackd.cli.demo", "--headless", "--spec", str(SMALL_RACK), "--dir", str(self.home)],
            stdout=subprocess.PIPE,
            stderr=(self.home.parent / "demo.stderr").open("ab"),
            start_new_session=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while True:
                for line in self.output.splitlines():
                    if line.startswith(b"{"):
                        self.ready = json.loads(line)
                        return
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise TimeoutError(f"demo not ready within {READY_TIMEOUT} s; output so far: {self.output!r}")
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"demo exited before it was ready: {self.output!r}")
                self.output += chunk

    @property
    def config(self) -> Path:
        """The daemon's generated config."""
        return Path(self.ready["config"])

    def child_pids(self) -> list[int]:
        """Every process the demo started (daemon, rack, its BMCs, broker)."""
        ready = self.ready
        pids = [ready["daemon_pid"], ready["rack_pid"], ready["broker_pid"], *ready["bmc_pids"]]
        return [int(pid) for pid in pids if pid]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the demo by its PID and wait for it."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def kill_leftovers(self) -> None:
        """Teardown after a failure: kill, by PID, whatever the demo left running."""
        for pid in self.child_pids():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def headless_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadlessDemo]:
    """One headless demo for the whole module (the tests leave the rack healthy for the next one)."""
    home = tmp_path_factory.mktemp("demo") / "home"
    demo = HeadlessDemo(home)
    demo.start()
    try:
        yield demo
    finally:
        if demo.process is not None and demo.process.poll() is None:
            demo.stop()
        demo.kill_leftovers()
