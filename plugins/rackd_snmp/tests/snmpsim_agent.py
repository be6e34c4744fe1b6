"""snmpsim (an independent SNMP agent) serving recorded PDU walks on a free loopback port, stopped by its PID."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RECORDINGS = Path(__file__).parent / "data" / "recordings"
LOOPBACK = "127.0.0.1"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class SnmpsimAgent:
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self, recordings: list[Path], v3_options: tuple[str, ...] = ()) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True)
        for recording in recordings:
            shutil.copyfile(recording, data / recording.name)  # a symlink would get community "../data/NAME"
        self.port = free_udp_port()
        log = (self.workdir / "snmpsim.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "snmpsim-command-responder"),
                *v3_options,  # positional: they must come before --data-dir, or snmpsim builds a second engine
                f"--data-dir={data}",
                f"--cache-dir={self.workdir / 'cache'}",
                f"--agent-udpv4-endpoint={LOOPBACK}:{self.port}",
                "--log-level=error",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"},
            start_new_session=True,
        )

    def wait_ready(self, community: str, deadline: float = 60.0, v3: tuple[str, ...] = ()) -> None:
        """Poll with net-snmp's snmpget until the agent answers (it indexes its data files first)."""
        assert self.process is not None
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            if self.process.poll() is not None:
                raise RuntimeError(f"snmpsim exited: {(self.workdir / 'snmpsim.log').read_text(errors='replace')}")
            answer = subprocess.run(
                ["snmpget", *(v3 or ("-v2c", "-c", community)), "-t", "0.5", "-r", "0", f"{LOOPBACK}:{self.port}",
                 "1.3.6.1.2.1.1.2.0"],
                capture_output=True,
                check=False,
            )
            if answer.returncode == 0:
                return
            time.sleep(0.1)  # polling interval of the readiness check (bounded by the deadline)
        raise TimeoutError(f"snmpsim did not answer on {LOOPBACK}:{self.port} within {deadline} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
