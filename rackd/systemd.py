"""sd_notify without libsystemd: READY, STATUS, WATCHDOG and STOPPING datagrams to $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends notify messages when running under systemd (Type=notify); a no-op otherwise."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        """Read NOTIFY_SOCKET and the watchdog settings from the environment."""
        env = dict(os.environ) if environ is None else environ
        address = env.get("NOTIFY_SOCKET")
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        self._address = address or None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        watchdog = usec is not None and usec.isdigit() and int(usec) > 0
        if watchdog and pid is not None and pid.isdigit() and int(pid) != os.getpid():
            watchdog = False  # the watchdog is meant for another process (e.g. our parent)
        self.watchdog_interval: float | None = int(usec) / 1e6 / 2 if watchdog and usec else None

    @property
    def enabled(self) -> bool:
        """True when $NOTIFY_SOCKET is set."""
        return self._address is not None

    def notify(self, *fields: str) -> None:
        """Send `KEY=VALUE` fields in one datagram; failures are logged, never raised."""
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            log.warning("sd_notify_failed", error=str(exc))
