"""Console servers that expose ports over SSH (`ssh://user@host:port`), through asyncssh; BREAK per RFC 4335."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from rackd.errors import AuthError, DeviceProtocolError, DeviceUnreachableError
from rackd.secrets import Secret

READ_SIZE = 65536
BREAK_MSEC = 250


class SshStream:
    """An interactive session (with a pty) on a console server."""

    def __init__(self, connection: asyncssh.SSHClientConnection, process: Any, where: str) -> None:
        """Wrap the connection and its session."""
        self._connection = connection
        self._process = process
        self.where = where

    async def read(self) -> bytes:
        """Console output; b"" when the session ended."""
        try:
            data: bytes = await self._process.stdout.read(READ_SIZE)
        except (OSError, asyncssh.Error) as exc:
            raise DeviceUnreachableError(f"{self.where}: session lost ({exc})") from None
        return data

    async def write(self, data: bytes) -> None:
        """Send bytes to the console."""
        try:
            self._process.stdin.write(data)
            await self._process.stdin.drain()
        except (OSError, asyncssh.Error) as exc:
            raise DeviceUnreachableError(f"{self.where}: session lost ({exc})") from None

    async def send_break(self) -> None:
        """The SSH "break" channel request; console servers turn it into a serial BREAK."""
        try:
            self._process.channel.send_break(BREAK_MSEC)
        except (OSError, asyncssh.Error) as exc:
            raise DeviceUnreachableError(f"{self.where}: BREAK failed ({exc})") from None

    async def close(self) -> None:
        """Close the session and the connection; never raises."""
        with contextlib.suppress(OSError, asyncssh.Error):
            self._process.close()
            self._connection.close()
            await self._connection.wait_closed()


@dataclass(frozen=True, slots=True)
class SshTransport:
    """`ssh://user@host:port`; password or key from the node's console table, host key checked against known_hosts."""

    host: str
    port: int
    username: str
    password: Secret | None = None
    client_key: Path | None = None
    known_hosts: Path | None = None

    async def open_console(self) -> SshStream:
        """Log in and open an interactive session with a pty."""
        where = f"console ssh://{self.username}@{self.host}:{self.port}"
        # Without a known_hosts file asyncssh checks ~/.ssh/known_hosts: a console is never trusted blindly.
        options: dict[str, Any] = {"username": self.username}
        if self.known_hosts is not None:
            options["known_hosts"] = str(self.known_hosts)
        if self.password is not None:
            options["password"] = self.password.reveal()
        if self.client_key is not None:
            options["client_keys"] = [str(self.client_key)]
        try:
            connection = await asyncssh.connect(self.host, self.port, **options)
        except asyncssh.PermissionDenied:
            raise AuthError(f"{where}: login refused") from None
        except asyncssh.HostKeyNotVerifiable as exc:
            raise AuthError(f"{where}: host key not trusted ({exc.reason})") from None
        except (OSError, asyncssh.Error) as exc:
            raise DeviceUnreachableError(f"{where}: cannot connect ({exc})") from None
        try:
            process = await connection.create_process(term_type="vt100", encoding=None)
        except (OSError, asyncssh.Error) as exc:
            connection.close()
            raise DeviceProtocolError(f"{where}: no interactive session ({exc})") from None
        return SshStream(connection, process, where)
