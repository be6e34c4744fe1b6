"""RFC 2217 console ports (`rfc2217://host:port?baud=N`): asyncio-native subset — baud rate and BREAK, no thread."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from rackd.errors import DeviceUnreachableError, UnsupportedError
from rackd_console.tcp import connect
from rackd_console.telnet import TelnetStream
from rackd_console.telnet_codec import Option, Subnegotiation, subnegotiation

log = structlog.get_logger(__name__)

# COM-PORT-OPTION commands (client → server); the server answers with the same code + 100.
SET_BAUDRATE = 1
SET_CONTROL = 5
CONTROL_BREAK_ON = 5
CONTROL_BREAK_OFF = 6
SERVER_OFFSET = 100
BREAK_SECONDS = 0.25  # the length Linux's tcsendbreak(fd, 0) uses


class Rfc2217Stream(TelnetStream):
    """A telnet stream that also speaks COM-PORT-OPTION; server answers are tracked as they are read."""

    LOCAL_OPTIONS = frozenset({Option.BINARY, Option.SGA, Option.COM_PORT})

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str) -> None:
        """Wrap an open connection."""
        super().__init__(reader, writer, where)
        self.baudrate: int | None = None  # as last confirmed by the server
        # Values of the server's SET-CONTROL answers, in order. ser2net 4.3 answers both break-on and
        # break-off with the value 5, so callers count answers rather than trust the value.
        self.control_answers: list[int] = []
        self._changed = asyncio.Event()

    def on_subnegotiation(self, signal: Subnegotiation) -> bytes:
        """Record the server's answers to SET-BAUDRATE and SET-CONTROL; NOTIFY-* messages are ignored."""
        payload = signal.payload
        if len(payload) < 2 or payload[0] != Option.COM_PORT:
            return b""
        code, value = payload[1], payload[2:]
        if code == SERVER_OFFSET + SET_BAUDRATE and len(value) == 4:
            self.baudrate = int.from_bytes(value, "big")
        elif code == SERVER_OFFSET + SET_CONTROL and value:
            self.control_answers.append(value[0])
        self._changed.set()
        self._changed = asyncio.Event()
        return b""

    async def set_baudrate(self, baud: int) -> None:
        """Ask the server to set the serial line's speed; `baudrate` shows what it confirmed."""
        self._require_com_port()
        await self.write_raw(subnegotiation(bytes((Option.COM_PORT, SET_BAUDRATE)) + baud.to_bytes(4, "big")))

    async def wait_changed(self) -> None:
        """Until the server answers another COM-PORT-OPTION request (the caller puts a deadline on it)."""
        await self._changed.wait()

    async def send_break(self) -> None:
        """BREAK as SET-CONTROL break-on, then break-off after the usual 250 ms."""
        self._require_com_port()
        await self.write_raw(subnegotiation(bytes((Option.COM_PORT, SET_CONTROL, CONTROL_BREAK_ON))))
        # The pause is the break itself (the line held in the break condition), not a retry or a schedule.
        await asyncio.sleep(BREAK_SECONDS)
        await self.write_raw(subnegotiation(bytes((Option.COM_PORT, SET_CONTROL, CONTROL_BREAK_OFF))))

    def _require_com_port(self) -> None:
        if self.negotiator.local.get(Option.COM_PORT) is False:
            raise UnsupportedError(f"{self.where}: the server refused RFC 2217 (COM-PORT-OPTION)")


@dataclass(frozen=True, slots=True)
class Rfc2217Transport:
    """`rfc2217://host:port`, optionally `?baud=N` sent at every connect."""

    host: str
    port: int
    baud: int | None = None

    async def open_console(self) -> Rfc2217Stream:
        """Connect, negotiate, set the baud rate if one was configured."""
        reader, writer = await connect(self.host, self.port, "console rfc2217")
        stream = Rfc2217Stream(reader, writer, f"console rfc2217://{self.host}:{self.port}")
        try:
            await stream.start()
            if self.baud is not None:
                await stream.set_baudrate(self.baud)
        except DeviceUnreachableError:
            await stream.close()
            raise
        return stream
