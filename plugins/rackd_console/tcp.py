"""Raw TCP console-server ports (`tcp://host:port`): bytes as they are, no BREAK."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

from rackd.errors import DeviceUnreachableError, UnsupportedError

READ_SIZE = 65536


async def connect(host: str, port: int, what: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TCP connection with TCP_NODELAY (keystrokes must not wait for Nagle); errors say where."""
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
    except ConnectionRefusedError:
        raise DeviceUnreachableError(f"{what} {host}:{port}: connection refused") from None
    except OSError as exc:
        raise DeviceUnreachableError(f"{what} {host}:{port}: {exc.strerror or exc}") from None
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


class SocketStream:
    """A console byte stream over an asyncio TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str) -> None:
        """Wrap an open connection; `where` names it in error messages."""
        self._reader = reader
        self._writer = writer
        self.where = where

    async def read_raw(self) -> bytes:
        """The next bytes from the socket; b"" at EOF."""
        try:
            return await self._reader.read(READ_SIZE)
        except ConnectionError as exc:
            raise DeviceUnreachableError(f"{self.where}: connection lost ({exc.strerror or exc})") from None

    async def write_raw(self, data: bytes) -> None:
        """Send bytes as they are."""
        try:
            self._writer.write(data)
            await self._writer.drain()
        except ConnectionError as exc:
            raise DeviceUnreachableError(f"{self.where}: connection lost ({exc.strerror or exc})") from None

    async def read(self) -> bytes:
        """Console output; b"" at EOF."""
        return await self.read_raw()

    async def write(self, data: bytes) -> None:
        """Send bytes to the console."""
        await self.write_raw(data)

    async def send_break(self) -> None:
        """A raw TCP port has no way to carry a BREAK."""
        raise UnsupportedError(f"{self.where}: a raw TCP console cannot carry a BREAK (use telnet:// or rfc2217://)")

    async def close(self) -> None:
        """Close the connection; never raises."""
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


@dataclass(frozen=True, slots=True)
class TcpTransport:
    """`tcp://host:port`."""

    host: str
    port: int

    async def open_console(self) -> SocketStream:
        """Connect."""
        reader, writer = await connect(self.host, self.port, "console tcp")
        return SocketStream(reader, writer, f"console tcp://{self.host}:{self.port}")
