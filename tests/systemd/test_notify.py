"""The sd_notify protocol of `rackd run` against a fake $NOTIFY_SOCKET: READY, STATUS, WATCHDOG, STOPPING."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rackd.testing.broker import Mosquitto, free_port
from rackd.testing.processes import DaemonProcess


@dataclass(frozen=True)
class Datagram:
    """One notify message: its KEY=VALUE fields and when the test received it (its own monotonic clock)."""

    at: float
    fields: dict[str, str]

    def has(self, key: str, value: str | None = None) -> bool:
        return key in self.fields and (value is None or self.fields[key] == value)


@dataclass
class NotifyListener:
    """Binds a datagram socket as systemd would; `address` is what goes into NOTIFY_SOCKET ('@…' = abstract)."""

    abstract: bool
    received: list[Datagram] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        if self.abstract:
            name = f"rackd-test-notify-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
            self._dir: str | None = None
        else:
            # A short private directory: sun_path is limited to 108 bytes, pytest's tmp_path may be longer.
            self._dir = tempfile.mkdtemp(prefix="rackd-notify-")
            self.address = str(Path(self._dir) / "notify.sock")
            self.sock.bind(self.address)

    def close(self) -> None:
        self.sock.close()
        if self._dir is not None:
            Path(self.address).unlink(missing_ok=True)
            Path(self._dir).rmdir()

    def _receive(self, timeout: float) -> Datagram | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
        datagram = Datagram(time.monotonic(), fields)
        self.received.append(datagram)
        return datagram

    def wait_for(self, match: Callable[[Datagram], bool], within: float, what: str) -> Datagram:
        """The first datagram from now on that matches (a deadline, never a fixed sleep)."""
        deadline = time.monotonic() + within
        while (remaining := deadline - time.monotonic()) > 0:
            datagram = self._receive(remaining)
            if datagram is not None and match(datagram):
                return datagram
        seen = [d.fields for d in self.received[-10:]]
        raise TimeoutError(f"{what}: no such notify message within {within} s (last received: {seen})")

    def collect(self, seconds: float) -> list[Datagram]:
        """Everything that arrives in the next `seconds` (measured here), e.g. to count watchdog pings."""
        deadline = time.monotonic() + seconds
        window: list[Datagram] = []
        while (remaining := deadline - time.monotonic()) > 0:
            datagram = self._receive(remaining)
            if datagram is not None:
                window.append(datagram)
        return window

    def drain(self) -> list[Datagram]:
        """What is already queued in the socket, without waiting."""
        drained = []
        while (datagram := self._receive(0.001)) is not None:
            drained.append(datagram)
        return drained


class WatchdogDaemon(DaemonProcess):
    """`rackd run` whose WATCHDOG_PID is its own pid, as systemd sets it (the shell exec()s, keeping its pid)."""

    def start(self) -> None:
        env = {**os.environ, **self.env}
        self.process = subprocess.Popen(
            [
                "/bin/sh",
                "-c",
                'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"',
                "sh",
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
        )


def process_state(pid: int) -> str:
    """The one-letter state of a process from /proc (T = stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def wait_for_state(pid: int, state: str, within: float) -> None:
    deadline = time.monotonic() + within
    while process_state(pid) != state:
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} not in state {state} within {within} s")
        time.sleep(0.01)  # polling another process's state under a deadline


# --------------------------------------------------------------------------------------------------- tests

pytestmark = pytest.mark.integration

WATCHDOG_USEC = 400_000  # systemd would kill us after 0.4 s without a ping; rackd pings every 0.2 s


def config_text(port: int, work: Path) -> str:
    # Two healthy fake devices and two that never answer: device health must not touch the watchdog.
    return textwrap.dedent(
        f"""
        [site]
        name = "lab"
        [daemon]
        instance = "sd"
        state_dir = "{work}/state"
        console_log_dir = "{work}/console"
        control_socket = "{work}/control.sock"
        shutdown_grace = 3
        [mqtt]
        url = "mqtt://127.0.0.1:{port}"
        [defaults]
        poll_interval = 0.3
        call_timeout = 0.5
        open_timeout = 0.5
        backoff_initial = 0.2
        backoff_max = 0.5
        [[pdu]]
        id = "pdu-a1"
        rack = "r1"
        driver = "fake"
        host = "pdu-a1"
        targets = ["1", "2"]
        [[node]]
        id = "gpu-01"
        rack = "r1"
        bmc = {{ driver = "fake", host = "gpu-01" }}
        [[node]]
        id = "gpu-02"
        rack = "r1"
        bmc = {{ driver = "fake", host = "gpu-02", fault = "unreachable" }}
        [[node]]
        id = "gpu-03"
        rack = "r1"
        bmc = {{ driver = "fake", host = "gpu-03", fault = "hang" }}
        """
    )


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Iterator[NotifyListener]:
    sock = NotifyListener(abstract=request.param == "abstract")
    yield sock
    sock.close()


@pytest.fixture
def start_daemon(tmp_path: Path, listener: NotifyListener) -> Iterator[Callable[[int], WatchdogDaemon]]:
    daemons: list[WatchdogDaemon] = []

    def start(port: int) -> WatchdogDaemon:
        config = tmp_path / "rackd.toml"
        config.write_text(config_text(port, tmp_path))
        env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        daemon = WatchdogDaemon(config, tmp_path / "daemon.log", env)
        daemons.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in daemons:
        if daemon.process is not None and daemon.process.poll() is None:
            os.kill(daemon.pid, signal.SIGCONT)  # a failed test may leave it stopped; SIGKILL works either way
        daemon.cleanup()


def control_socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(str(path))
        except OSError:
            return False
        return True


def logged_events(daemon: WatchdogDaemon, until: str) -> list[str]:
    """The daemon's log events, once `until` was logged (it is written just after the notify datagram is sent)."""
    deadline = time.monotonic() + 10
    while until not in (events := [entry["event"] for entry in daemon.logs()]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{until} not logged within 10 s")
        time.sleep(0.02)  # polling another process's log file under a deadline
    return events


def is_watchdog(d: Datagram) -> bool:
    return d.has("WATCHDOG", "1")


def test_ready_status_watchdog_and_stopping(
    broker: Mosquitto, listener: NotifyListener, start_daemon: Callable[[int], WatchdogDaemon], tmp_path: Path
) -> None:
    daemon = start_daemon(broker.port)

    # READY=1 only once the control socket listens and the first broker connection was attempted: with a
    # broker up, that attempt has succeeded by then, and the READY datagram's own STATUS says so.
    ready = listener.wait_for(lambda d: d.has("READY", "1"), within=30, what="READY=1")
    assert control_socket_answers(tmp_path / "control.sock")
    assert ready.fields["STATUS"].endswith("devices reachable, broker connected"), ready.fields
    assert not any(d.has("READY") for d in listener.received[:-1]), "READY=1 sent twice"
    events = logged_events(daemon, until="daemon_ready")
    assert events.index("control_socket_listening") < events.index("mqtt_connected") < events.index("daemon_ready")

    # STATUS= follows the counts: the two healthy devices come up, the two silent ones never do.
    listener.wait_for(
        lambda d: d.fields.get("STATUS") == "2/4 devices reachable, broker connected", within=20, what="STATUS 2/4"
    )

    # WATCHDOG=1 at about twice per WATCHDOG_USEC while two devices keep failing. Counted over a window of the
    # test's own clock, with wide bounds: systemd needs at least one ping per 0.4 s; a flood would be a bug too.
    window = 2.0
    pings = [d for d in listener.collect(window) if is_watchdog(d)]
    expected = window / (WATCHDOG_USEC / 1e6 / 2)  # 10
    assert expected * 0.4 <= len(pings) <= expected * 2.5, f"{len(pings)} pings in {window} s"
    assert any(d.fields.get("STATUS", "").startswith("2/4") for d in listener.received), "device health changed"

    # A frozen daemon (its loop cannot turn) sends nothing: absence over a bounded wait, then pings resume.
    os.kill(daemon.pid, signal.SIGSTOP)
    wait_for_state(daemon.pid, "T", within=5)
    listener.drain()  # pings sent before it stopped
    frozen = listener.collect(1.0)
    assert not [d for d in frozen if is_watchdog(d)], f"pings while stopped: {frozen}"
    os.kill(daemon.pid, signal.SIGCONT)
    listener.wait_for(is_watchdog, within=10, what="WATCHDOG=1 after SIGCONT")
    # Let the backlog of the frozen second drain (and check the pings keep coming) before stopping. SIGTERM
    # right after SIGCONT, while queued QoS 1 publishes complete, can hang the shutdown: Python 3.11's
    # asyncio.wait_for (in aiomqtt's publish) may swallow the bus sender's cancellation — a bus bug, reported.
    resumed = [d for d in listener.collect(1.0) if is_watchdog(d)]
    assert len(resumed) >= 2, f"{len(resumed)} pings in the second after SIGCONT"

    # SIGTERM: STOPPING=1, then a clean exit 0.
    daemon.send_signal(signal.SIGTERM)
    listener.wait_for(lambda d: d.has("STOPPING", "1"), within=10, what="STOPPING=1")
    assert daemon.stop(timeout=30) == 0
    assert "daemon_stopped" in [entry["event"] for entry in daemon.logs()]


@pytest.mark.parametrize("listener", ["path"], indirect=True)
def test_ready_with_the_broker_down_after_the_attempt(
    listener: NotifyListener, start_daemon: Callable[[int], WatchdogDaemon], tmp_path: Path
) -> None:
    # Nothing listens on this port: the first attempt fails fast, and READY=1 must still come (the daemon
    # spools and keeps retrying) — after the failed attempt, saying the broker is disconnected.
    daemon = start_daemon(free_port())
    ready = listener.wait_for(lambda d: d.has("READY", "1"), within=30, what="READY=1")
    assert ready.fields["STATUS"].endswith("broker disconnected"), ready.fields
    assert control_socket_answers(tmp_path / "control.sock")
    events = logged_events(daemon, until="daemon_ready")
    assert events.index("control_socket_listening") < events.index("mqtt_unavailable") < events.index("daemon_ready")
    listener.wait_for(is_watchdog, within=5, what="WATCHDOG=1 with the broker down")
    assert daemon.stop(signal.SIGTERM, timeout=30) == 0
    assert any(d.has("STOPPING", "1") for d in listener.drain() + listener.received)
