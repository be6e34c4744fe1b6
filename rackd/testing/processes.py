"""A `rackd run` subprocess for end-to-end tests: started, signalled and reaped by its PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rackd.testing.children import die_with_parent


def wait_until(condition: Callable[[], bool], what: str, within: float = 30.0) -> None:
    """Block until `condition()` holds (another process's files or logs), or raise TimeoutError naming `what`."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {within} s")
        time.sleep(0.02)  # polling a condition outside this process, under a deadline


@dataclass
class DaemonProcess:
    """`python -m rackd run -c CONFIG` with JSON logs to a file."""

    config: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the daemon (its own session, so a test can signal it alone)."""
        env = {**os.environ, **self.env}
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [
                sys.executable,
                "-m",
                "rackd",
                "--log-level",
                "debug",
                "--log-format",
                "json",
                "run",
                "-c",
                str(self.config),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log_path.open("ab"),
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, safe before exec; no orphaned daemons
        )

    @property
    def pid(self) -> int:
        """The daemon's PID."""
        assert self.process is not None
        return self.process.pid

    def send_signal(self, sig: int) -> None:
        """Send a signal to the daemon's PID."""
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the daemon and wait for it; returns its exit status (kills it if it does not exit in time)."""
        process = self.process
        if process is None:
            raise RuntimeError("daemon was not started")
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
        return process.returncode

    def cleanup(self) -> None:
        """Kill the daemon if it still runs (test teardown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def logged(self, event: str) -> list[dict[str, Any]]:
        """The log entries with this event name so far."""
        return [entry for entry in self.logs() if entry.get("event") == event]

    def wait_for_log(self, event: str, count: int = 1, within: float = 30.0) -> list[dict[str, Any]]:
        """Wait until the daemon logged `event` at least `count` times; returns those entries."""
        wait_until(lambda: len(self.logged(event)) >= count, f"{event} x{count} in the daemon log", within)
        return self.logged(event)

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log line the daemon wrote so far."""
        entries = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"event": "unparsed", "line": line})
        return entries
