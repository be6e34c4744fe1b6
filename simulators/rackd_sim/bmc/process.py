"""Run `rackd sim bmc` as a child process (one BMC per process) and script it through its control channel."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from rackd.testing.children import die_with_parent


@dataclass(frozen=True, slots=True)
class BmcEndpoint:
    """Where a simulated BMC listens and how to log in (from its ready line)."""

    host: str
    port: int
    username: str
    password: str
    control_host: str
    control_port: int
    pid: int


class BmcProcess:
    """A simulated BMC in its own process: start, wait for the ready line, control, stop by PID."""

    def __init__(self, *args: str, log_path: Path | None = None, ready_timeout: float = 20.0) -> None:
        """Prepare `rackd sim bmc ARGS…` (not started yet)."""
        self.args = list(args)
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint: BmcEndpoint | None = None
        self._log_file: IO[bytes] | None = None
        self._control: socket.socket | None = None
        self._control_reader: IO[bytes] | None = None

    def start(self) -> BmcEndpoint:
        """Start the process and wait (bounded) for its JSON ready line."""
        stderr: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            self._log_file = self.log_path.open("ab")
            stderr = self._log_file
        command = [sys.executable, "-m", "rackd", "--log-level", "warning", "sim", "bmc", *self.args]
        # Started from the main thread (the tests), the child dies with its parent even when pytest-timeout kills
        # it: two BMCs once outlived such a run. Not from other threads: the kernel ties PR_SET_PDEATHSIG to the
        # thread that forked, and the benchmark fleets start children from short-lived pool threads.
        on_main_thread = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(  # noqa: S603 - runs this interpreter with our own arguments
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=die_with_parent if on_main_thread else None,  # noqa: PLW1509 - only prctl, safe before exec
        )
        assert self.proc.stdout is not None
        line = self._read_line(self.proc.stdout, self.ready_timeout)
        ready = json.loads(line)
        control_host, _, control_port = str(ready["control"]).rpartition(":")
        self.endpoint = BmcEndpoint(
            host=ready["host"],
            port=int(ready["port"]),
            username=ready["username"],
            password=ready["password"],
            control_host=control_host,
            control_port=int(control_port),
            pid=int(ready["pid"]),
        )
        return self.endpoint

    def _read_line(self, stream: IO[bytes], timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self.stop()
                    raise TimeoutError(f"simulated BMC not ready within {timeout} s")
                chunk = os.read(stream.fileno(), 4096)
                if not chunk:
                    self.stop()
                    raise RuntimeError("simulated BMC exited before it was ready")
                buffer += chunk
        return buffer.split(b"\n", 1)[0]

    def control(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one control request and return the answer (raises RuntimeError on `ok: false`)."""
        assert self.endpoint is not None, "start() first"
        if self._control is None:
            self._control = socket.create_connection(
                (self.endpoint.control_host, self.endpoint.control_port), timeout=10
            )
            self._control_reader = self._control.makefile("rb")
        assert self._control_reader is not None
        self._control.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
        reply: dict[str, Any] = json.loads(self._control_reader.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"control {op}: {reply.get('error')}")
        return reply

    def status(self) -> dict[str, Any]:
        """The BMC's status (power, sessions, login counters, faults)."""
        return self.control("status")

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0, interval: float = 0.02
    ) -> dict[str, Any]:
        """Poll the status until `predicate` holds; AssertionError with the last status at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if predicate(status):
                return status
            if time.monotonic() >= deadline:
                raise AssertionError(f"simulated BMC: condition not met within {timeout} s; last status: {status}")
            time.sleep(interval)

    def stop(self) -> None:
        """Stop the process by its PID (TERM, then KILL) and release everything."""
        if self._control_reader is not None:
            self._control_reader.close()
            self._control_reader = None
        if self._control is not None:
            self._control.close()
            self._control = None
        proc = self.proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        """Start on entering a with-block."""
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop on leaving it."""
        self.stop()
