"""rackd.systemd.Notifier on its own: addresses (path and abstract '@'), watchdog settings, no-op without systemd."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackd.systemd import Notifier


@pytest.fixture
def path_socket() -> Iterator[tuple[socket.socket, str]]:
    directory = Path(tempfile.mkdtemp(prefix="rackd-notify-"))  # short: sun_path holds 108 bytes
    address = str(directory / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    yield sock, address
    sock.close()
    Path(address).unlink()
    directory.rmdir()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"rackd-test-notifier-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    yield sock, "@" + name
    sock.close()


@pytest.mark.parametrize("kind", ["path_socket", "abstract_socket"])
def test_fields_arrive_in_one_datagram(kind: str, request: pytest.FixtureRequest) -> None:
    sock, address = request.getfixturevalue(kind)
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    notifier.notify("READY=1", "STATUS=1/2 devices reachable, broker connected")
    assert sock.recv(4096) == b"READY=1\nSTATUS=1/2 devices reachable, broker connected"


def test_without_notify_socket_it_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.notify("READY=1")  # nothing to send to, nothing raised


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).notify("WATCHDOG=1")


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),  # WatchdogSec=30: ping every 15 s
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(os.getpid())}, 0.2),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(env: dict[str, str], interval: float | None) -> None:
    assert Notifier({"NOTIFY_SOCKET": "@x", **env}).watchdog_interval == interval
