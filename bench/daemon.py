"""A `rackd run` process for the benchmarks: a generated config, info-level logs to a file, stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.cpu import process_cpu, rss_mib


def toml_value(value: Any) -> str:
    """A Python value as TOML (strings, numbers, booleans, lists and inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def render(sections: dict[str, dict[str, Any]], arrays: dict[str, list[dict[str, Any]]]) -> str:
    """Tables, then arrays of tables (`[[node]]`, `[[pdu]]`)."""
    lines: list[str] = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
    for name, entries in arrays.items():
        for entry in entries:
            lines.append(f"[[{name}]]")
            lines.extend(f"{key} = {toml_value(value)}" for key, value in entry.items())
    return "\n".join(lines) + "\n"


def base_sections(workdir: Path, broker_url: str, interval: float, call_timeout: float) -> dict[str, dict[str, Any]]:
    """[site], [daemon], [mqtt], [defaults] of a benchmark site."""
    return {
        "site": {"name": "bench"},
        "daemon": {
            "instance": "bench",
            "state_dir": str(workdir / "state"),
            "console_log_dir": str(workdir / "console"),
            "control_socket": str(workdir / "control.sock"),
            "shutdown_grace": 5.0,
        },
        "mqtt": {"url": broker_url},
        "defaults": {"poll_interval": interval, "call_timeout": call_timeout},
    }


@dataclass
class Daemon:
    """`python -m rackd --log-level LEVEL --log-format json run -c CONFIG`, its own session."""

    config: Path
    log_path: Path
    level: str = "info"
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start it."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rackd", "--log-level", self.level, "--log-format", "json", "run", "-c",
             str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        """The daemon's PID."""
        assert self.process is not None
        return self.process.pid

    def cpu(self) -> float:
        """CPU seconds the daemon used so far (all threads)."""
        return process_cpu(self.pid)

    def rss(self) -> float:
        """Resident MiB now."""
        return rss_mib(self.pid)

    def alive(self) -> bool:
        """True while it runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL after 20 s."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def events(self, name: str) -> list[dict[str, Any]]:
        """Log entries with this event name."""
        found = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if f'"{name}"' in line:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("event") == name:
                    found.append(entry)
        return found
