"""Starts a real mosquitto on a free loopback port (tests, demo) and stops it by its PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rackd.testing.children import die_with_parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until a TCP connect to host:port succeeds, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s") from None
            time.sleep(0.02)  # polling a condition with a deadline, not synchronising by sleep


@dataclass
class Mosquitto:
    """One mosquitto process; `restart()` brings it back on the same port (outage tests)."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rackd-mosquitto-")))
    persistence: bool = False
    anonymous: bool = True
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """mqtt:// URL of this broker."""
        return f"mqtt://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        """The broker config (one directive per line)."""
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            # Stay root: dropping to the mosquitto user would also clear the parent-death signal, and an
            # interrupted test run would then leave an orphaned broker behind.
            lines.append("user root")
        return "\n".join(lines) + "\n" + self.extra_config

    def require_passwords(self, users: Mapping[str, str]) -> Path:
        """Turn off anonymous access and accept these users (a mosquitto_passwd file); call before start()."""
        passwd = self.workdir / "passwd"
        for index, (user, password) in enumerate(users.items()):
            subprocess.run(  # noqa: S603 - fixed argv
                ["mosquitto_passwd", "-b", *(["-c"] if index == 0 else []), str(passwd), user, password],  # noqa: S607 - Debian's mosquitto tool on PATH
                check=True,
                capture_output=True,
            )
        passwd.chmod(0o644)
        self.anonymous = False
        self.extra_config += f"password_file {passwd}\n"
        return passwd

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts connections."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise FileNotFoundError("mosquitto is not installed (Debian package: mosquitto)")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text(), encoding="utf-8")
        self.workdir.chmod(0o777)
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [binary, "-c", str(conf)],
            stdout=(self.workdir / "mosquitto.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, safe before exec; no orphaned brokers
        )
        try:
            wait_for_port(self.port, timeout)
        except TimeoutError:
            self.stop()
            log = (self.workdir / "mosquitto.log").read_text(errors="replace")
            raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{log}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop this broker by its PID (SIGTERM saves persistence; SIGKILL does not)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and remove the work directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def running_mosquitto(**kwargs: object) -> Iterator[Mosquitto]:
    """A started broker for the duration of the block."""
    broker = Mosquitto(**kwargs)  # type: ignore[arg-type]  # forwarded dataclass fields
    broker.start()
    try:
        yield broker
    finally:
        broker.cleanup()
