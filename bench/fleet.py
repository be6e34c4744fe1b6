"""Fleets of simulators in their own processes (so their CPU is never counted as rackd's), stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from rackd_sim.bmc.process import BmcProcess

# Fast power timings: the site benchmark measures a verified cycle's overhead beyond these device delays.
BMC_TIMINGS = (
    "--power-on-delay",
    "0.2",
    "--power-off-delay",
    "0.1",
    "--boot-delay",
    "0.3",
    "--shutdown-delay",
    "0.2",
    "--cycle-off-time",
    "0.2",
)


def unwind_on_sigterm() -> None:
    """Make SIGTERM (what `timeout` and service managers send) unwind like Ctrl-C, so every simulator is stopped.

    The fleets stop their processes by PID in `finally` blocks, which a default SIGTERM skips: interrupted site runs
    left 2,500 `ipmi_sim` processes behind. (PR_SET_PDEATHSIG, which the tests use, is tied to the thread that
    started the child, and the fleets start children from short-lived pool threads.)
    """

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, interrupt)


@contextlib.contextmanager
def bmc_fleet(count: int, workdir: Path, extra: Sequence[str] = ()) -> Iterator[list[BmcProcess]]:
    """`count` simulated BMCs (`rackd sim bmc`, one process each), started a few at a time."""
    bmcs = [
        BmcProcess(*BMC_TIMINGS, *extra, log_path=workdir / f"bmc{i}.log", ready_timeout=120.0) for i in range(count)
    ]
    try:
        # Python start-up dominates; a few at a time keeps a shared 2-core machine responsive.
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda bmc: bmc.start(), bmcs))
        yield bmcs
    finally:
        for bmc in bmcs:
            bmc.stop()


class JsonLineProcess:
    """A simulator that prints one JSON ready line on stdout (`rackd sim pdu`, `rackd sim console-server`)."""

    def __init__(self, argv: Sequence[str], log_path: Path, stdin_pipe: bool = False) -> None:
        """Nothing runs until `start()`."""
        self.argv = list(argv)
        self.log_path = log_path
        self.stdin_pipe = stdin_pipe
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 120.0) -> dict[str, Any]:
        """Start and return the parsed ready line."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rackd", "--log-level", "warning", *self.argv],
            stdin=subprocess.PIPE if self.stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.stop()
                    raise TimeoutError(f"{self.argv[:2]} not ready within {timeout} s")
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    self.stop()
                    raise RuntimeError(f"{self.argv[:2]} exited: {self.log_path.read_text(errors='replace')[-2000:]}")
                buffer += chunk
        self.ready = json.loads(buffer.split(b"\n", 1)[0])
        return self.ready

    def command(self, line: str) -> None:
        """Write one command line to the simulator's stdin (console-server commands)."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    @property
    def pid(self) -> int:
        """The simulator's PID."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
